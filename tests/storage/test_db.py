"""The database handle: what it creates on disk, with which permissions, and read-only use."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from bot.config import Settings
from bot.errors import ConfigError
from bot.storage.db import Database, upgrade


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def loose_umask() -> object:
    # The usual umask of a shell: files 0644 and folders 0755 unless the code asks for less.
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_a_sqlite_url_in_a_missing_folder_creates_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'typo' / 'deeper' / 'bot.db'}"
    with pytest.raises(ConfigError, match=r"typo.*does not exist.*db upgrade --create"):
        upgrade(url)
    with pytest.raises(ConfigError, match="does not exist"):
        Database(url)
    assert not (tmp_path / "typo").exists()


async def test_a_new_database_and_its_folders_are_private(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "data"
    url = f"sqlite:///{folder / 'bot.db'}"
    upgrade(url, create=True)
    assert mode(tmp_path / "new") == 0o700
    assert mode(folder) == 0o700
    database = Database(url)
    try:
        async with database.session() as session, session.begin():
            await session.execute(text("INSERT INTO bot_meta (key, value) VALUES ('k', 'v')"))
        # Write-ahead logging keeps two more files beside the database; they hold the same data.
        for name in ("bot.db", "bot.db-wal", "bot.db-shm"):
            assert mode(folder / name) == 0o600, name
    finally:
        await database.dispose()


async def test_a_database_in_an_existing_folder_is_created_private(tmp_path: Path) -> None:
    folder = tmp_path / "chosen"
    folder.mkdir(mode=0o755)
    url = f"sqlite:///{folder / 'bot.db'}"
    database = Database(url)
    try:
        await database.upgrade()
    finally:
        await database.dispose()
    assert mode(folder / "bot.db") == 0o600
    assert mode(folder) == 0o755  # a folder that was there is left as the operator made it


async def test_a_read_only_handle_writes_nothing(settings: Settings) -> None:
    upgrade(settings.database_url)
    database = Database(settings.database_url, read_only=True)
    try:
        async with database.session() as session:
            assert await session.scalar(text("SELECT count(*) FROM bot_meta")) == 0
        with pytest.raises(DBAPIError):
            async with database.session() as session, session.begin():
                await session.execute(text("INSERT INTO bot_meta (key, value) VALUES ('k', 'v')"))
    finally:
        await database.dispose()


async def test_a_read_only_handle_opens_a_copy_in_a_read_only_folder(tmp_path: Path) -> None:
    original = tmp_path / "bot.db"
    writer = Database(f"sqlite:///{original}")
    try:
        await writer.upgrade()
        async with writer.session() as session, session.begin():
            await session.execute(text("INSERT INTO bot_meta (key, value) VALUES ('k', 'v')"))
    finally:
        await writer.dispose()
    copy_dir = tmp_path / "copy"
    copy_dir.mkdir()
    (copy_dir / "bot.db").write_bytes(original.read_bytes())
    (copy_dir / "bot.db").chmod(0o444)
    copy_dir.chmod(0o555)
    try:
        database = Database(f"sqlite:///{copy_dir / 'bot.db'}", read_only=True)
        try:
            async with database.session() as session:
                assert await session.scalar(text("SELECT value FROM bot_meta")) == "v"
        finally:
            await database.dispose()
        # The copy is in write-ahead-log mode, which normally makes two files beside it: none were made.
        assert sorted(p.name for p in copy_dir.iterdir()) == ["bot.db"]
    finally:
        copy_dir.chmod(0o755)


def test_a_read_only_handle_never_creates_a_database(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no database"):
        Database(f"sqlite:///{tmp_path / 'missing.db'}", read_only=True)
    assert list(tmp_path.iterdir()) == []
