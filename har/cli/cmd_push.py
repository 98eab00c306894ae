"""`har push` (copy a bundle to a device over ssh) and `har export-mcu` (TFLite Micro sources)."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("push")
@click.argument("bundle", type=click.Path(path_type=Path), required=False)
@click.option("--to", "target", required=True, metavar="[USER@]HOST:/PATH", help="Where to copy the bundle.")
@click.option(
    "--ssh-option",
    "ssh_options",
    multiple=True,
    metavar="OPT",
    help="Passed to ssh/scp/rsync, repeatable: '-p 2222', '-i KEY', '-F CONFIG', 'StrictHostKeyChecking=accept-new'.",
)
@click.option("--install", is_flag=True,
              help="Also install har in a venv under PATH (wheel built here, runtime that works there) and keep "
              "bundles side by side under PATH/bundles with PATH/current the active one.")
@click.option("--offline", is_flag=True,
              help="With --install: download every wheel here for the device's platform and Python; the device "
              "installs with --no-index.")
@click.option("--runtime", type=click.Choice(["ai-edge-litert", "tflite-runtime"]), default=None,
              help="With --install: this runtime only  [default: ai-edge-litert, else tflite-runtime with numpy<2].")
@click.option("--rollback", is_flag=True, help="Make the previous bundle under PATH active again (no BUNDLE).")
@click.option("--service", is_flag=True, help="Also install a systemd unit running `har run` at boot (needs --port).")
@click.option("--port", type=str, help="The device's serial port, e.g. /dev/ttyUSB0 (doctor check and service).")
@click.option("--baud", type=int, default=115200, show_default=True, help="Serial baud rate for the service.")
@click.option("--remote-har", type=str, help="Path of `har` on the device if not on the ssh PATH or ~/.local/bin.")
@click.option("--remote-python", type=str, default="python3", show_default=True,
              help="With --install: the device's Python.")
@click.option("--wheelhouse", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="With --offline: take wheels from this local directory instead of the package index.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object at the end.")
def push_cmd(
    bundle: Path | None,
    target: str,
    ssh_options: tuple[str, ...],
    install: bool,
    offline: bool,
    runtime: str | None,
    rollback: bool,
    service: bool,
    port: str | None,
    baud: int,
    remote_har: str | None,
    remote_python: str,
    wheelhouse: Path | None,
    as_json: bool,
) -> None:
    """Copy BUNDLE to a device over ssh and check it there with `har doctor`.

    Verifies BUNDLE's checksums first, copies with rsync (scp when rsync is missing on either
    end), re-checks the sha256 sums on the device, then runs `har doctor --bundle PATH --json`
    there. Uses your ssh client, ~/.ssh/config and keys.

    With --install (or when PATH already holds an install): har goes into PATH/venv, the bundle
    into PATH/bundles/<sha>, and PATH/current is switched to it only after `har doctor` passed
    there; --service (re)starts `har run` on PATH/current (systemd, or a small supervisor where
    systemd is not running) and puts the previous bundle back if it does not come up.

    Without --install the remote directory must be new, empty or hold an earlier bundle (files not
    in BUNDLE are deleted there); --service copies a unit to PATH/../har.service and installs it as
    /etc/systemd/system/har.service (as root or with password-less sudo; else the commands are
    printed). Exit 1 if the device's doctor fails."""
    from har.deploy.push import push_bundle
    from har.errors import DeployError

    def say(msg: str) -> None:
        click.echo(msg, err=as_json)

    if (offline or runtime or wheelhouse) and not install:
        raise DeployError("--offline, --runtime and --wheelhouse go with --install")
    if rollback:
        if bundle is not None or install:
            raise DeployError("--rollback takes no BUNDLE and no --install")
        from har.deploy.install import rollback as do_rollback

        res = do_rollback(target, ssh_options, service=service, port=port, baud=baud, echo=say)
        _print_install(res, as_json)
        return
    if bundle is None:
        raise DeployError("give a BUNDLE to push (or --rollback)")
    if install:
        from har.deploy.install import install as do_install

        res = do_install(bundle, target, ssh_options, offline=offline, service=service, port=port, baud=baud,
                         runtime=runtime, python=remote_python, wheelhouse=wheelhouse, echo=say)
        _print_install(res, as_json)
        return
    res = push_bundle(
        bundle, target, ssh_options=ssh_options, service=service, port=port, echo=say, remote_har=remote_har, baud=baud
    )
    if as_json:
        click.echo(json.dumps(res.to_dict(), indent=2))
    if res.doctor_ok is False:
        raise DeployError(
            f"pushed to {res.remote_path}, but har doctor fails there: {'; '.join(res.doctor_failures())}"
        )


def _print_install(res: object, as_json: bool) -> None:
    from har.deploy.install import InstallResult

    assert isinstance(res, InstallResult)
    if as_json:
        click.echo(json.dumps(res.to_dict(), indent=2))
        return
    click.echo(f"har doctor on the device ({res.home}/current):")
    for c in (res.doctor or {}).get("checks", []):
        click.echo(f"  [{str(c.get('status', '?')).upper():4}] {c.get('name')}: {c.get('detail')}")


@click.command("export-mcu")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Directory for the C++ files.")
@click.option("--overwrite", is_flag=True, help="Replace existing C++ files in --out.  [default: refuse]")
def export_mcu_cmd(bundle: Path, out_dir: Path, overwrite: bool = False) -> None:
    """C++ sources for TensorFlow Lite Micro from an int8 BUNDLE.

    Writes har_model_data.h/.cc (the model as g_har_model[], 16-byte aligned) and
    har_model_config.h (classes, sample rate in Hz, window and hop in samples, axis order, units,
    normalisation mean/std per axis, input/output scale and zero point, tensor arena size in bytes)."""
    from har.deploy.mcu import export_mcu

    for p in export_mcu(bundle, out_dir, overwrite=overwrite):
        click.echo(f"wrote {p} ({p.stat().st_size} bytes)")


COMMANDS = [push_cmd, export_mcu_cmd]
