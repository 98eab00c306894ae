"""The `har` command line. Thin: each command parses options, calls one library function, prints.

Every har error becomes a one-line ``Error: ...`` and a non-zero exit; ``--debug`` or
``HAR_DEBUG=1`` re-raises with the traceback."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from .. import __version__
from ..errors import HarError


def _debug(ctx: click.Context | None) -> bool:
    if os.environ.get("HAR_DEBUG", "") not in ("", "0"):
        return True
    while ctx is not None:
        if ctx.obj and isinstance(ctx.obj, dict) and ctx.obj.get("debug"):
            return True
        ctx = ctx.parent
    return False


class HarGroup(click.Group):
    """A click group that turns library errors into clean one-line messages."""

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


def _register() -> None:
    # Each command lives in its own module; modules import heavy libraries lazily so that
    # `har run` never pays for (or imports) TensorFlow.
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        if mod.name.startswith("cmd_"):
            m = importlib.import_module(f"{__name__}.{mod.name}")
            for obj in getattr(m, "COMMANDS", ()):
                cli.add_command(obj)


_register()


def main() -> None:
    try:
        cli(prog_name="har")
    except BrokenPipeError:  # e.g. `har run ... | head`
        sys.stderr.close()
        sys.exit(0)
