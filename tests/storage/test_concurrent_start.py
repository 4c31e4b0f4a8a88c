"""Replicas that start together on an empty PostgreSQL database all come up: migrations take turns."""

from __future__ import annotations

import asyncio
import sys

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from bot.config import Settings
from bot.storage.db import alembic_config, sync_url, table_names

# Each process imports everything, says "ready", and migrates only when told "go", so all three start at once.
MIGRATE = """
import sys
from bot.storage.db import upgrade
print("ready", flush=True)
sys.stdin.readline()
upgrade(sys.argv[1])
print("migrated", flush=True)
"""
STARTS = 3


def current_revisions(url: str) -> set[str]:
    from alembic.migration import MigrationContext

    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            return set(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()


async def test_three_processes_migrating_an_empty_database_at_once_all_succeed(settings: Settings) -> None:
    url = settings.database_url
    if make_url(url).get_backend_name() != "postgresql":
        pytest.skip("SQLite serves one process at a time; replicas share a PostgreSQL database")
    starts = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            MIGRATE,
            url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(STARTS)
    ]
    for start in starts:
        assert start.stdout is not None
        assert await start.stdout.readline() == b"ready\n"
    for start in starts:
        assert start.stdin is not None
        start.stdin.write(b"go\n")
        await start.stdin.drain()
    results = [await start.communicate() for start in starts]
    for start, (out, err) in zip(starts, results, strict=True):
        assert start.returncode == 0, err.decode()
        assert out == b"migrated\n"
    head = set(ScriptDirectory.from_config(alembic_config(url)).get_heads())
    assert current_revisions(url) == head
    assert {"audit_events", "leases", "channel_state"} <= table_names(url)
