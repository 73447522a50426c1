"""Bad input to any ``sts`` command is one line on stderr and exit status 2: never a stack
trace, never click's three-line usage block. Every option that takes a time or a number is
driven with a value too large for any column, a negative one and garbage.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from sts.cli import main

OVERFLOW = "99999999999999999999"

#: (command, arguments it needs, option) for every option that takes a time or a number.
TIME_AND_NUMBER_OPTIONS = [
    (["audit", "list"], [], "--since"),
    (["audit", "list"], [], "--limit"),
    (["audit", "touched"], ["--resource", "db://orders"], "--since"),
    (["audit", "touched"], ["--resource", "db://orders"], "--limit"),
    (["gc"], [], "--retention-days"),
    (["db", "upgrade"], [], "--wait"),
    (["rule", "create"], ["--actor", "web", "--target", "web", "--scope", "a"], "--max-depth"),
    (["rule", "create"], ["--actor", "web", "--target", "web", "--scope", "a"], "--max-ttl"),
    (["rule", "create"], ["--actor", "web", "--target", "web", "--scope", "a"], "--expires"),
    (["rule", "update"], ["rule_x"], "--max-depth"),
    (["rule", "update"], ["rule_x"], "--max-ttl"),
    (["rule", "update"], ["rule_x"], "--expires"),
    (["rule", "list"], [], "--limit"),
    (["rule", "list"], [], "--offset"),
    (["nhi", "list"], [], "--limit"),
    (["nhi", "list"], [], "--offset"),
    (["nhi", "secret", "rotate"], ["web"], "--grace"),
    (["serve"], [], "--port"),
    (["ssf", "pending"], ["stream-id"], "--limit"),
    (["ssf", "deliver"], [], "--interval"),
]
#: Values beyond what the option's own parser would see as out of range.
SPECIAL = {
    "--since": ["99999-01-01T00:00:00Z", "\u00b2", "\uff11\uff12"],  # digits str.isdigit() takes
    "--expires": ["9999-12-31T23:59:59-14:00", "99999-01-01T00:00:00Z", "-2099-01-01T00:00:00Z"],
}


@pytest.fixture
def sts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in list(os.environ):
        if name.startswith("STS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    env = {"STS_DATABASE_URL": f"sqlite:///{tmp_path / 'sts.db'}",
           "STS_KEYS_DIR": str(tmp_path / "keys")}  # fmt: skip

    def run(*args: str, code: int = 0) -> Result:
        result = CliRunner().invoke(main, list(args), env=env)
        assert result.exit_code == code, (result.output, result.exception)
        assert "Traceback" not in result.output
        return result

    run("db", "upgrade")
    run("nhi", "create", "web", "--kind", "service")
    return run


def walk(group: click.Group, path: list[str]) -> list[tuple[list[str], click.Command]]:
    found = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += walk(command, [*path, name])
        else:
            found.append(([*path, name], command))
    return found


def takes_time_or_number(param: click.Parameter) -> bool:
    named = {"--since", "--expires", "--until", "--before", "--after"} & set(param.opts)
    numeric = click.types.IntParamType | click.types.FloatParamType
    return bool(named) or isinstance(param.type, numeric)


def test_time_and_number_options_when_listed_then_every_one_is_driven_below():
    options = {
        (" ".join(path), opt)
        for path, command in walk(main, [])
        for param in command.params
        if takes_time_or_number(param)
        for opt in param.opts
    }
    assert options == {(" ".join(c), o) for c, _, o in TIME_AND_NUMBER_OPTIONS}


@pytest.mark.parametrize(
    ("command", "needs", "option", "value"),
    [
        (command, needs, option, value)
        for command, needs, option in TIME_AND_NUMBER_OPTIONS
        for value in [OVERFLOW, "-1", "x1", *SPECIAL.get(option, [])]
    ],
)
def test_option_when_overflow_negative_or_garbage_then_one_line_and_exit_2(
    sts: Any, command: list[str], needs: list[str], option: str, value: str
) -> None:
    result = sts(*command, *needs, option, value, code=2)
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(("Error: ", "error ("))
    assert option.lstrip("-").replace("-", " ") in result.stderr.replace("-", " ").replace(
        "_", " ")  # fmt: skip


def test_usage_error_when_any_then_one_line_naming_the_help(sts: Any) -> None:
    for args, message in [
        (["audit", "list", "--limit", "0"],
         "Error: Invalid value for '--limit': 0 is not in the range 1<=x<=10000. "
         "(see 'main audit list --help')\n"),
        (["nhi", "list", "--bogus"],
         "Error: No such option '--bogus'. (see 'main nhi list --help')\n"),
        (["revoke", "token"], "Error: Missing argument 'JTI'. (see 'main revoke token --help')\n"),
        (["nosuch"], "Error: No such command 'nosuch'. (see 'main --help')\n"),
    ]:  # fmt: skip
        result = sts(*args, code=2)
        assert (result.stdout, result.stderr) == ("", message)


def test_group_when_no_subcommand_then_its_help_as_before(sts: Any) -> None:
    result = sts("nhi", code=2)
    assert result.stdout == ""
    assert result.stderr.startswith("Usage: main nhi [OPTIONS] COMMAND [ARGS]...")


def test_bounds_when_at_the_edge_then_accepted(sts: Any) -> None:
    sts("audit", "list", "--since", "253402300799")
    sts("audit", "list", "--since", "0")
    sts("nhi", "list", "--offset", str(2**31 - 1))
    sts("nhi", "secret", "rotate", "web", "--grace", str(2**31 - 1))
    sts("gc", "--retention-days", "36500")
    created = sts("rule", "create", "--actor", "web", "--target", "web", "--scope", "a",
                  "--expires", "9999-12-31T23:59:59Z").stdout  # fmt: skip
    assert "expires 9999-12-31T23:59:59Z" in created
