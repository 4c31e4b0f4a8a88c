"""The database handle: one async engine, sessions for callers, and migrations.

Callers own their session and its transaction (``async with db.session() as s,
s.begin():``); functions that read or change data take that session and never
commit on their own. Migrations are Alembic's and run synchronously, before
the event loop does any work or in a thread; on PostgreSQL they take turns
under an advisory lock (``migrations/env.py``), so replicas may start
together on an empty database.

A SQLite database is created only in a folder that exists (a mistyped URL must
not start an empty database somewhere else); ``create=True``, which ``unlockbot
db upgrade --create`` asks for, makes the missing folders too. What is created
is private: folders 0700, the database file 0600 (SQLite gives its journal and
write-ahead log the database file's mode). A ``read_only`` handle never
creates, migrates or writes anything, so it can check a copy of a database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from bot.errors import ConfigError
from bot.storage.files import create_private_file, make_private_dir

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


def async_url(url: str) -> str:
    """The URL with an asyncio driver: ``sqlite`` → aiosqlite, ``postgresql`` → psycopg."""
    parsed = make_url(url)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in ("postgresql", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def sync_url(url: str) -> str:
    """The URL with a blocking driver, for Alembic."""
    parsed = make_url(url)
    if parsed.drivername == "sqlite+aiosqlite":
        parsed = parsed.set(drivername="sqlite")
    elif parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; ``None`` for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def prepare_sqlite_file(url: str, *, create: bool = False) -> None:
    """Make sure a SQLite URL's file exists (0600) before SQLite opens it, which would make it world-readable.

    The folder must exist unless ``create`` is given; then it is made, private.
    """
    path = sqlite_path(url)
    if path is None or path.exists():
        return
    folder = path.parent
    if not folder.is_dir():
        if not create:
            raise ConfigError(
                f"the SQLite database {path} does not exist and its folder {folder} does not exist either "
                "(a typo in the URL?); create the folder, or run `unlockbot db upgrade --create` "
                "to start a new database there"
            )
        make_private_dir(folder)
    create_private_file(path)


def _read_only_sqlite_url(path: Path) -> str:
    if not path.is_file():
        raise ConfigError(f"there is no database at {path} (a read-only check never creates one)")
    # With no write-ahead log beside it, no process has the database open, and SQLite may read the file
    # as it is, without making the lock and log files it otherwise needs (which a read-only copy cannot
    # hold). With a log there, the bot is running: read through it, or its newest commits would be missed.
    wal = path.with_name(path.name + "-wal")
    mode = "mode=ro" if wal.exists() else "immutable=1"
    return f"sqlite+aiosqlite:///file:{quote(str(path))}?{mode}&uri=true"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    # Write-ahead logging: readers do not wait for the writer, and a commit needs one sync, not two.
    # With NORMAL, a power cut may lose the last commits but never corrupts the file.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_read_only_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def _postgresql_read_only(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    cursor.close()
    # The SET ran in a transaction of its own; without a commit the pool's rollback would undo it.
    dbapi_connection.commit()


class Database:
    """An async engine and its session factory for one database URL.

    ``info`` is copied into every session's ``Session.info``: what services need with each
    session (the audit key) without each caller passing it. ``before_dispose`` registers the
    last writes of a process (the audit trail links the events it wrote), run by ``dispose``.
    """

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        create: bool = False,
        read_only: bool = False,
        pool: tuple[int, int] | None = None,
    ) -> None:
        self.url = url
        self.read_only = read_only
        self.info: dict[str, Any] = {}
        path = sqlite_path(url)
        if read_only and path is not None:
            engine_url = _read_only_sqlite_url(path)
        else:
            if not read_only:
                prepare_sqlite_file(url, create=create)
            engine_url = async_url(url)
        sizes: dict[str, Any] = {}
        if pool is not None and path is None:  # (pool_size, max_overflow), for a server; SQLite keeps its own
            sizes = {"pool_size": pool[0], "max_overflow": pool[1]}
        self.engine: AsyncEngine = create_async_engine(engine_url, echo=echo, **sizes)
        if self.engine.dialect.name == "sqlite":
            pragmas = _sqlite_read_only_pragmas if read_only else _sqlite_pragmas
            event.listen(self.engine.sync_engine, "connect", pragmas)
        elif read_only:
            event.listen(self.engine.sync_engine, "connect", _postgresql_read_only)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False, info=self.info)
        self._before_dispose: list[Callable[[], Awaitable[None]]] = []

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session:
            yield session

    def __repr__(self) -> str:
        return f"Database({make_url(self.url).render_as_string(hide_password=True)!r})"

    def before_dispose(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Have ``dispose`` await ``callback`` first, while the database can still be reached."""
        self._before_dispose.append(callback)

    async def dispose(self) -> None:
        callbacks, self._before_dispose = self._before_dispose, []
        for callback in callbacks:
            try:
                await callback()
            except Exception as exc:  # the database may be what failed; closing goes on
                log.warning("before closing the database: %s", exc)
        await self.engine.dispose()

    async def upgrade(self) -> None:
        """Bring the schema to the newest migration (safe to run on every start)."""
        if self.read_only:
            raise ConfigError("a read-only database handle cannot be migrated")
        await asyncio.to_thread(upgrade, self.url)


def alembic_config(url: str) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head", *, create: bool = False) -> None:
    """Migrate the database at ``url``; a new SQLite file is made only where its folder exists, or with ``create``."""
    prepare_sqlite_file(url, create=create)
    command.upgrade(alembic_config(url), revision)


def table_names(url: str) -> set[str]:
    engine = create_engine(sync_url(url))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
