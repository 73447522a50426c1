"""What every ``sts`` subcommand shares: settings, a transaction, output, error handling.

A service's refusal (:class:`~sts.services.errors.ServiceError`) becomes, here and only
here, one line on stderr, ``error (<code>): <message>``, and exit status
:data:`EXIT_REFUSED`; configuration, key-file and database faults are one-line click errors
(exit status 1), and so is bad usage (an unknown option, a value out of range: exit status 2).

Human output shows strings that clients and tokens supplied (a ``client_id``, a ``sub``, a
denial's target): every line goes through :func:`say`, which escapes control characters, so
no value can end a line, rewrite the terminal or forge an audit line. ``--json`` is JSON.
"""

from __future__ import annotations

import functools
import getpass
import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
from sqlalchemy.exc import DBAPIError

from sts.core.keys import KeyFileError
from sts.core.secrets import SecretHasher, load_hash_key
from sts.core.settings import Settings, SettingsError
from sts.services.errors import ServiceError
from sts.store.admin import AdminStore, admin_store
from sts.store.db import create_engine
from sts.store.migrate import MigrationRefused

F = TypeVar("F", bound=Callable[..., Any])
#: Exit status when the registry refuses the command's input (unknown, conflicting, invalid).
EXIT_REFUSED = 2
#: The latest time a command takes or prints: 9999-12-31T23:59:59Z.
MAX_TIME = 253_402_300_799
#: The largest count of seconds a command takes (a grace period): 68 years.
MAX_SECONDS = 2**31 - 1
#: The largest offset into a listing.
MAX_OFFSET = 2**31 - 1
#: ``context_settings`` of a command that takes an ID: generated IDs are base64url, and one in
#: 64 begins with ``-``. Such an argument is the ID, not an unknown option, and ``-h`` there
#: is not help (an ID may begin with it): ``--help`` is.
TAKES_IDS: dict[str, Any] = {"ignore_unknown_options": True, "help_option_names": ["--help"]}

#: C0 controls, DEL, C1 controls, the Unicode line and paragraph separators, and the
#: bidirectional formatting characters (which reorder what a terminal shows).
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _SHORT.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def printable(text: str) -> str:
    """``text`` on one line, its control characters escaped (``\\x1b``, ``\\r``, ``\\u2028``)."""
    return _UNSAFE.sub(_escaped, text)


def say(line: str = "", *, err: bool = False) -> None:
    """Print one line of human output (with ``err``, of progress on standard error, so that
    standard output stays the result); whatever a value holds, it stays one line."""
    click.echo(printable(line), err=err)


def now_seconds() -> int:
    """Now, in the seconds since the epoch the registry records."""
    return int(datetime.now(UTC).timestamp())


def iso_time(ts: int | None) -> str:
    """A recorded time for people (``-`` when there is none, the number when no calendar
    date can say it)."""
    if ts is None:
        return "-"
    if not 0 <= ts <= MAX_TIME:
        return str(ts)
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def administrator() -> str:
    """Who the audit trail names for a command run here: ``cli:<login>``."""
    try:
        return "cli:" + getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def load_settings() -> Settings:
    try:
        return Settings.load()
    except SettingsError as exc:
        raise click.ClickException(f"configuration error: {exc}") from None


@contextmanager
def open_store() -> Iterator[AdminStore]:
    """The registry's store for one command: one transaction, committed when it succeeds."""
    engine = create_engine(load_settings().database_url, hide_parameters=True)
    try:
        with admin_store(engine) as store:
            yield store
    finally:
        engine.dispose()


def secret_hasher(settings: Settings) -> SecretHasher:
    """Hashes new client secrets; outside production its key is created on first use."""
    return SecretHasher(load_hash_key(settings.keys_dir, create=not settings.is_production))


def emit(as_json: bool, data: Any, human: Callable[[], None]) -> None:
    """One JSON document for scripts, or the human form."""
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        human()


def handles_errors(fn: F) -> F:
    """The command's failures as one line and an exit status (see the module docstring)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ServiceError as exc:
            click.echo(printable(f"error ({exc.code}): {exc.message}"), err=True)
            sys.exit(EXIT_REFUSED)
        except (KeyFileError, SettingsError, MigrationRefused) as exc:
            raise click.ClickException(str(exc)) from None
        except DBAPIError as exc:
            # One line, never the statement or its parameters: the driver says what is wrong
            # (server unreachable, schema not migrated, ...).
            lines = str(exc.orig).strip().splitlines()
            raise click.ClickException(
                f"database error: {lines[0] if lines else type(exc.orig).__name__}"
            ) from None

    return wrapper  # type: ignore[return-value]


json_option: Callable[[F], F] = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON for scripts."
)


class OneLineError(click.ClickException):
    """A click error told in one line (click prints a usage error as the usage, a hint and the
    error: three lines a script cannot tell from output)."""

    def __init__(self, message: str) -> None:
        super().__init__(printable(message))


class OneLineUsageError(OneLineError):
    exit_code = 2


@contextmanager
def _errors_in_one_line() -> Iterator[None]:
    try:
        yield
    except (click.exceptions.NoArgsIsHelpError, OneLineError):
        raise  # a bare ``sts`` or ``sts nhi`` prints its help
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        raise OneLineUsageError(exc.format_message() + hint) from None
    except click.ClickException as exc:
        raise OneLineError(exc.format_message()) from None


class StsGroup(click.Group):
    """The ``sts`` command: every error of every subcommand is one line on stderr."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        with _errors_in_one_line():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with _errors_in_one_line():
            return super().invoke(ctx)
