"""The `har` command line. Thin: each command parses options, calls one library function, prints.

Every har error becomes a one-line ``Error: ...`` and a non-zero exit; ``--debug`` or
``HAR_DEBUG=1`` re-raises with the traceback. Click's usage errors (a bad option value, a missing
argument, an unknown option or command) are one line too, exit code 2 (:class:`OneLineUsageError`;
with ``--debug`` / ``HAR_DEBUG=1`` click's usage block as usual)."""

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


class OneLineUsageError(click.UsageError):
    """A click usage error shown as ONE line, ``Error: har train: invalid value for '--pooling':
    'foo' is not one of 'last', 'mean', 'attention' (har train --help)``, instead of click's usage
    block; exit code 2 like click's."""

    def __init__(self, original: click.UsageError, ctx: click.Context | None = None) -> None:
        super().__init__(original.format_message(), original.ctx or ctx)

    def format_message(self) -> str:
        msg = " ".join(self.message.split()).rstrip(".")
        if msg[:1].isupper() and msg[1:2].islower():  # "Invalid value for" -> "invalid value for"
            msg = msg[0].lower() + msg[1:]
        return msg

    def show(self, file: Any = None) -> None:
        path = self.ctx.command_path if self.ctx is not None else "har"
        click.echo(f"Error: {path}: {self.format_message()} ({path} --help)", file=file, err=file is None)


def _one_line(e: click.UsageError, ctx: click.Context | None) -> click.UsageError:
    """``e`` as a :class:`OneLineUsageError`; unchanged in debug mode and for click's "no
    arguments: show the help" signal."""
    no_args_help = getattr(click.exceptions, "NoArgsIsHelpError", ())
    if isinstance(e, (OneLineUsageError, no_args_help)) or _debug(ctx):
        return e
    return OneLineUsageError(e, ctx)


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

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as e:  # an option of `har` itself (--debug is not parsed yet: HAR_DEBUG only)
            one = _one_line(e, parent)
            if one is e:
                raise
            raise one from e

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as e:  # the subcommand's options and arguments are parsed in here
            one = _one_line(e, ctx)
            if one is e:
                raise
            raise one from e
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


@click.group(
    name="har", cls=HarGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
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
