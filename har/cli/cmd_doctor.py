"""`har doctor`."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("doctor")
@click.option(
    "--bundle", type=click.Path(path_type=Path), help="Also verify this bundle and run one window through it."
)
@click.option("--port", type=str, help="Also check this serial port (exists, read/write access; never opened).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.pass_context
def doctor_cmd(ctx: click.Context, bundle: Path | None, port: str | None, as_json: bool) -> None:
    """Check that this machine can run a bundle (exit 1 if any check fails).

    Checks: Python version, TFLite runtime (ai-edge-litert, tflite-runtime or the tf.lite
    fallback, each tried in a child process: with --bundle it must load the model and run one
    inference there, so a runtime that crashes fails this check), numpy (tflite-runtime needs
    numpy < 2), TensorFlow (not needed), the bundle's sha256 checksums and one classified window,
    in a har home (`har push --install`) the active and previous bundles, serial port access
    (group 'dialout'), free disk space (warn under 100 MB, fail under 10 MB)."""
    from har.deploy.doctor import doctor

    rep = doctor(bundle=bundle, port=port)
    click.echo(json.dumps(rep.to_dict(), indent=2) if as_json else rep.format())
    if not rep.ok:
        ctx.exit(1)


COMMANDS = [doctor_cmd]
