"""The ``kaudit`` command as a whole: what starting it costs, and what every command shares.

Startup is checked by import weight, not by time (timings on a shared machine are noise): a
command's ``--help`` must not import the libraries that take most of a start (polars,
pyarrow, DuckDB, numpy, altair, rich).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import click
import pytest

from kaudit_analytics.cli import _COMMANDS, main

#: What a ``--help`` must not import: together they were ~0.8 s of every start.
HEAVY = ("polars", "pyarrow", "duckdb", "numpy", "altair", "jinja2", "pyspark", "rich")


def _imported_by(args: list[str]) -> list[str]:
    code = (
        "import sys\n"
        "from kaudit_analytics.cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return list(eval(done.strip().splitlines()[-1]))  # noqa: S307 - our own printed list


@pytest.mark.parametrize(
    "args",
    [["--help"], ["describe", "--help"], ["top", "--help"], ["sql", "--help"], ["--version"]],
    ids=" ".join,
)
def test_help_imports_none_of_the_heavy_libraries(args: list[str]) -> None:
    assert _imported_by(args) == []


@pytest.mark.slow
def test_the_heavy_check_can_fail() -> None:
    # Running a command does import them: the check above sees imports.
    assert "polars" in _imported_by(["describe", "--lake", "/nonexistent"])


def _commands() -> Iterator[tuple[str, click.Command]]:
    ctx = click.Context(main)

    def walk(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
        yield path, command
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None, name
                yield from walk(sub, f"{path} {name}")

    yield from walk(main, "kaudit")


def test_the_listed_short_help_is_each_commands_own() -> None:
    """``kaudit --help`` reads the table; it must say what each command says of itself."""
    ctx = click.Context(main)
    for name, entry in _COMMANDS.items():
        command = main.get_command(ctx, name)
        assert command is not None
        assert entry.short_help == command.get_short_help_str(limit=1_000), name


def test_help_lists_every_command() -> None:
    text = main.get_help(click.Context(main, info_name="kaudit"))
    listed = text.split("Commands:", 1)[1]
    assert [line.split()[0] for line in listed.strip().splitlines()] == list(_COMMANDS)


def test_every_option_has_help_text() -> None:
    missing = [
        f"{path} {'/'.join(param.opts)}"
        for path, command in _commands()
        for param in command.params
        if isinstance(param, click.Option) and not param.help
    ]
    assert missing == []


def test_lake_is_one_option_everywhere() -> None:
    lakes = {
        path: param
        for path, command in _commands()
        for param in command.params
        if param.name == "lake"
    }
    assert len(lakes) >= 10
    for path, param in lakes.items():
        assert isinstance(param, click.Option), path
        # A string: a lake is a folder or an s3:// gs:// az:// URL; the library says which.
        assert param.type is click.STRING, path
        assert param.envvar == "KAUDIT_LAKE", path


@pytest.mark.parametrize("name", ["top", "timeline", "history", "sql"])
def test_every_exploration_command_has_json(name: str) -> None:
    command = main.get_command(click.Context(main), name)
    assert command is not None
    assert "--json" in {opt for param in command.params for opt in param.opts}
