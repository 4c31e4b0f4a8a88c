"""Migrations build the schema on an empty database, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio

from sqlalchemy import create_engine, inspect

from bot.config import Settings
from bot.storage.db import Database, sync_url, table_names, upgrade
from bot.storage.models import Base

EXPECTED = {
    "bot_meta",
    "conversations",
    "chat_identities",
    "link_codes",
    "totp_enrolments",
    "unlock_requests",
    "outbox",
    "audit_events",
    "processed_events",
    "notifications",
    "request_cards",
    "lock_watches",
}


def test_upgrade_builds_every_table_and_can_run_again(settings: Settings) -> None:
    upgrade(settings.database_url)
    assert table_names(settings.database_url) >= EXPECTED
    assert "alembic_version" in table_names(settings.database_url)
    upgrade(settings.database_url)  # a second run finds nothing to do


def test_the_migrated_schema_matches_the_models(settings: Settings) -> None:
    upgrade(settings.database_url)
    engine = create_engine(sync_url(settings.database_url))
    try:
        inspector = inspect(engine)
        for table in Base.metadata.sorted_tables:
            migrated = {column["name"] for column in inspector.get_columns(table.name)}
            assert migrated == {column.name for column in table.columns}, table.name
    finally:
        engine.dispose()


async def test_the_database_handle_migrates_by_itself(settings: Settings) -> None:
    database = Database(settings.database_url)
    try:
        await database.upgrade()
        names = await asyncio.to_thread(table_names, settings.database_url)
        assert names >= EXPECTED
    finally:
        await database.dispose()
