"""What every ``sts`` subcommand shares: settings, a transaction, output, error handling."""

from __future__ import annotations

import functools
import getpass
import json
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

F = TypeVar("F", bound=Callable[..., Any])


def _now() -> int:
    return int(datetime.now(UTC).timestamp())


def _iso(ts: int | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _admin() -> str:
    try:
        return "cli:" + getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def _settings() -> Settings:
    try:
        return Settings.load()
    except SettingsError as exc:
        raise click.ClickException(f"configuration error: {exc}") from None


@contextmanager
def _transaction() -> Iterator[AdminStore]:
    """The registry's store for one command: one transaction, committed when it succeeds."""
    engine = create_engine(_settings().database_url, hide_parameters=True)
    try:
        with admin_store(engine) as store:
            yield store
    finally:
        engine.dispose()


def _hasher(settings: Settings) -> SecretHasher:
    return SecretHasher(load_hash_key(settings.keys_dir, create=not settings.is_production))


def _emit(as_json: bool, data: Any, human: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        human()


def handles_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ServiceError as exc:
            click.echo(f"error ({exc.code}): {exc.message}", err=True)
            sys.exit(2)
        except (KeyFileError, SettingsError) as exc:
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
