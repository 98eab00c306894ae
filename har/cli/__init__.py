"""The `har` command line. Thin: each command parses options, calls one library function, prints.

Every har error becomes a one-line ``Error: ...`` and a non-zero exit; ``--debug`` or
``HAR_DEBUG=1`` re-raises with the traceback."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from har import __version__
from har.errors import HarError


def _debug(ctx: click.Context | None) -> bool:
    if os.environ.get("HAR_DEBUG", "") not in ("", "0"):
        return True
    while ctx is not None:
        if ctx.obj and isinstance(ctx.obj, dict) and ctx.obj.get("debug"):
            return True
        ctx = ctx.parent
    return False


# Command name -> module under har.cli. Modules are imported only when their command runs (or
# when help lists them), so `har run` pays only for what it uses.
LAZY_COMMANDS: dict[str, str] = {
    "adapt": "cmd_adapt",
    "deploy": "cmd_deploy",
    "doctor": "cmd_doctor",
    "emulate": "cmd_emulate",
    "evaluate": "cmd_evaluate",
    "export": "cmd_import",
    "export-mcu": "cmd_push",
    "fleet": "cmd_fleet",
    "import": "cmd_import",
    "info": "cmd_info",
    "plot": "cmd_plot",
    "push": "cmd_push",
    "record": "cmd_record",
    "replay": "cmd_replay",
    "run": "cmd_run",
    "simulate": "cmd_simulate",
    "train": "cmd_train",
    "tune": "cmd_tune",
}


class HarGroup(click.Group):
    """A click group that loads its commands lazily and turns library errors into clean one-line
    messages."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(LAZY_COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            import importlib

            mod = importlib.import_module(f"{__name__}.{LAZY_COMMANDS[cmd_name]}")
            for obj in getattr(mod, "COMMANDS", ()):
                self.add_command(obj)
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HarError as e:
            if _debug(ctx):
                raise
            click.echo(f"Error: {e}", err=True)
            ctx.exit(e.exit_code)
        except (OSError, ValueError) as e:
            if _debug(ctx) or isinstance(e, click.exceptions.Exit):
                raise
            msg = f"{e.strerror}: {e.filename}" if isinstance(e, OSError) and e.filename else str(e)
            click.echo(f"Error: {msg}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            if _debug(ctx):
                raise
            click.echo("Interrupted.", err=True)
            ctx.exit(130)


@click.group(cls=HarGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="har")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors (or HAR_DEBUG=1).")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """har: record accelerometer streams, train an LSTM, deploy to TFLite, classify live.

    Typical path: har emulate | har record -> har train -> har deploy -> har run.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main() -> None:
    try:
        cli(prog_name="har")
    except BrokenPipeError:  # e.g. `har run ... | head`
        sys.stderr.close()
        sys.exit(0)
