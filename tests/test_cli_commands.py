"""The CLI loads its commands lazily: the name -> module table must list every command."""

from __future__ import annotations

import importlib
import pkgutil

from click.testing import CliRunner

import har.cli
from har.cli import LAZY_COMMANDS, cli


def test_lazy_table_lists_every_command() -> None:
    found: dict[str, str] = {}
    for mod in pkgutil.iter_modules(har.cli.__path__):
        if mod.name.startswith("cmd_"):
            m = importlib.import_module(f"har.cli.{mod.name}")
            for cmd in getattr(m, "COMMANDS", ()):
                found[cmd.name] = mod.name
    assert found == LAZY_COMMANDS


def test_help_lists_all_commands_and_each_help_works() -> None:
    runner = CliRunner()
    r = runner.invoke(cli, ["--help"])
    assert r.exit_code == 0, r.output
    for name in LAZY_COMMANDS:
        assert f"  {name} " in r.output
        sub = runner.invoke(cli, [name, "--help"])
        assert sub.exit_code == 0, (name, sub.output)
        assert "Usage: " in sub.output


def test_unknown_command_is_a_clean_error() -> None:
    r = CliRunner().invoke(cli, ["nosuchcommand"])
    assert r.exit_code == 2 and r.output.strip() == (
        "Error: har: no such command 'nosuchcommand' (har --help)"
    ), r.output
