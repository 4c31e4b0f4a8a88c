"""Databases for the tests: a fresh one per test, and the seeded demo built once per session and copied.

Migrating and seeding the demo took most of a test's second. ``DemoTemplates`` does both once per kind of
database (and per clock reading and keys, which the seeded rows depend on), then copies the result into
each test that asks for the demo: SQLite files are copied, a PostgreSQL database is created from the
template database (``CREATE DATABASE ... TEMPLATE``). A copy is what seeding the same settings at the
same moment would have written; the audit key it was signed with is copied into the data dir with it.

On PostgreSQL every test gets a database of its own, named after this process (``unlockbot_test_<pid>_<n>``),
so several runs, or pytest-xdist workers, can share one server without touching each other's tables. The
role in ``UNLOCKBOT_TEST_DATABASE_URL`` needs CREATEDB, and the server PostgreSQL 13 or newer (``DROP DATABASE
... WITH (FORCE)``).
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from bot import demo
from bot.app import App, open_app
from bot.clock import ManualClock
from bot.config import Settings
from bot.storage.db import sqlite_path

POSTGRES_ENV = "UNLOCKBOT_TEST_DATABASE_URL"
PREFIX = f"unlockbot_test_{os.getpid()}_"


def _secret(value: object) -> str | None:
    getter = getattr(value, "get_secret_value", None)
    return getter() if getter else None


@dataclass(frozen=True)
class _Fit:
    """What the seeded rows depend on besides the code: a template serves only settings that agree on these."""

    kind: str
    now: datetime
    secret_key: str | None
    secret_key_file: str | None
    audit_key: str | None
    audit_key_file: str | None
    totp: str
    crm_backend: str

    @classmethod
    def of(cls, settings: Settings, now: datetime) -> _Fit:
        security = settings.security
        return cls(
            make_url(settings.database_url).get_backend_name(),
            now,
            _secret(security.secret_key),
            str(security.secret_key_file) if security.secret_key_file else None,
            _secret(security.audit_key),
            str(security.audit_key_file) if security.audit_key_file else None,
            settings.totp.model_dump_json(),
            settings.crm.backend,
        )


class PostgresDatabases:
    """Creates and drops this process's databases on the server named by ``UNLOCKBOT_TEST_DATABASE_URL``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._numbers = itertools.count(1)
        self._admin: Engine | None = None

    def _engine(self) -> Engine:
        if self._admin is None:
            # CREATE and DROP DATABASE cannot run inside a transaction.
            self._admin = create_engine(self.url, isolation_level="AUTOCOMMIT")
        return self._admin

    def url_of(self, name: str) -> str:
        return make_url(self.url).set(database=name).render_as_string(hide_password=False)

    def new_name(self) -> str:
        return f"{PREFIX}{next(self._numbers)}"

    def create(self, name: str, *, template: str | None = None) -> None:
        """The database ``name``, empty or a copy of ``template``, in place of any earlier one of that name."""
        copy = f' TEMPLATE "{template}"' if template else ""
        try:
            with self._engine().connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                connection.execute(text(f'CREATE DATABASE "{name}"{copy}'))
        except ProgrammingError as exc:
            if "permission denied" not in str(exc):
                raise
            pytest.fail(f"{POSTGRES_ENV}: the tests make a database per test; give its role CREATEDB", pytrace=False)

    def drop(self, name: str) -> None:
        with self._engine().connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def drop_all(self) -> None:
        """Every database this process made (the templates too)."""
        if self._admin is None:
            return
        with self._admin.connect() as connection:
            # Not LIKE: its "_" would match any character, and another process's names with it.
            names = connection.scalars(
                text("SELECT datname FROM pg_database WHERE starts_with(datname, :prefix)"), {"prefix": PREFIX}
            ).all()
            for name in names:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._admin.dispose()
        self._admin = None


_POSTGRES: PostgresDatabases | None = None


def postgres_databases() -> PostgresDatabases | None:
    """This process's PostgreSQL databases, when ``UNLOCKBOT_TEST_DATABASE_URL`` names a server."""
    global _POSTGRES
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        return None
    if _POSTGRES is None or _POSTGRES.url != url:
        _POSTGRES = PostgresDatabases(url)
    return _POSTGRES


@dataclass(frozen=True)
class _Template:
    bot_db: Path | None  # SQLite files; None on PostgreSQL
    crm_db: Path | None
    database: str | None  # the PostgreSQL template database
    data_dir: Path


class DemoTemplates:
    """The seeded demo, built once per fit and copied into place for each test."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._built: dict[_Fit, _Template] = {}
        self._numbers = itertools.count(1)

    async def restore(self, settings: Settings, now: datetime) -> bool:
        """Put a seeded demo where ``settings`` point; ``False`` when these settings cannot take a copy."""
        fit = _Fit.of(settings, now)
        embedded = fit.crm_backend == "sql"
        if fit.kind == "sqlite":
            bot_db, crm_db = sqlite_path(settings.database_url), sqlite_path(settings.crm_database_url)
            if not embedded or bot_db is None or crm_db is None or bot_db == crm_db:
                return False
            if bot_db.exists() or crm_db.exists():
                return False
            template = await self._template(fit, settings, now)
            assert template.bot_db is not None
            assert template.crm_db is not None
            _copy_sqlite(template.bot_db, bot_db)
            _copy_sqlite(template.crm_db, crm_db)
        elif fit.kind == "postgresql":
            databases = postgres_databases()
            name = make_url(settings.database_url).database or ""
            if databases is None or not name.startswith(PREFIX):
                return False  # not a database of this run's: whoever made it seeds it
            if not embedded or settings.crm_database_url != settings.database_url:
                databases.create(name)  # the name was kept for a copy (see conftest): an empty one, to be seeded
                return False
            template = await self._template(fit, settings, now)
            assert template.database is not None
            databases.create(name, template=template.database)
        else:
            return False
        if template.data_dir.exists():
            shutil.copytree(template.data_dir, settings.bot.data_dir, dirs_exist_ok=True)
        return True

    async def _template(self, fit: _Fit, settings: Settings, now: datetime) -> _Template:
        if fit in self._built:
            return self._built[fit]
        folder = self._root / f"demo-{next(self._numbers)}"
        folder.mkdir(parents=True)
        if fit.kind == "sqlite":
            template = _Template(folder / "bot.db", folder / "crm.db", None, folder / "data")
            urls = (f"sqlite:///{template.bot_db}", f"sqlite:///{template.crm_db}")
        else:
            databases = postgres_databases()
            assert databases is not None
            name = databases.new_name()
            databases.create(name)
            template = _Template(None, None, name, folder / "data")
            urls = (databases.url_of(name), databases.url_of(name))
        placed = relocated(settings, urls, template.data_dir)
        async with open_app(placed, clock=ManualClock(now)) as app:
            await demo.seed(app, reset=True)
        # open_app has closed its connections: the template database can now be copied.
        self._built[fit] = template
        return template


def relocated(settings: Settings, urls: tuple[str, str], data_dir: Path) -> Settings:
    """``settings`` with the bot's database, the embedded CRM's and the data dir somewhere else."""
    tree = settings.model_dump()
    tree["bot"]["data_dir"] = data_dir
    tree["database"]["url"] = urls[0]
    tree["crm"]["sql"]["url"] = urls[1]
    return Settings.model_validate(tree)


def _copy_sqlite(source: Path, target: Path) -> None:
    # The template is closed, so its write-ahead log has been folded into the file; copy one if it was not.
    for suffix in ("", "-wal"):
        if (extra := source.with_name(source.name + suffix)).exists():
            shutil.copy2(extra, target.with_name(target.name + suffix))


@asynccontextmanager
async def demo_app(settings: Settings, clock: ManualClock, templates: DemoTemplates) -> AsyncIterator[App]:
    """``open_app`` on the seeded demo: a copy of the session's template where the settings allow, else seeded."""
    copied = await templates.restore(settings, clock.now())
    async with open_app(settings, clock=clock) as opened:
        if not copied:
            await demo.seed(opened, reset=True)
        yield opened
