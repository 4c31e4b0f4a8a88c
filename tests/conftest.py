"""Shared fixtures: a database on SQLite (and PostgreSQL when configured), a seeded demo app, a clock."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

from bot import demo
from bot.app import App, open_app
from bot.clock import ManualClock
from bot.config import Settings
from tests import offline

POSTGRES_ENV = "UNLOCKBOT_TEST_DATABASE_URL"
# A Sunday morning, on a step boundary so TOTP windows are easy to reason about.
START = datetime(2026, 11, 29, 9, 0, 0, tzinfo=UTC)


def pytest_configure(config: pytest.Config) -> None:
    offline.install()


def pytest_sessionfinish(session: pytest.Session) -> None:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        return
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "unlockbot_test_{os.getpid()}" CASCADE'))
    engine.dispose()


def private_schema_url(url: str) -> str:
    """The PostgreSQL URL with a schema of this test process's own, emptied.

    Several people (or test runs) may share one database: each run works in
    its own schema, so nobody drops tables from under anybody else.
    """
    schema = f"unlockbot_test_{os.getpid()}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(bot database URL, embedded CRM URL) for each database the tests run on."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bot.db'}", f"sqlite:///{tmp_path / 'crm.db'}"
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"set {POSTGRES_ENV} to run the database tests on PostgreSQL too")
    private = private_schema_url(url)
    return private, private


@pytest.fixture
def settings(tmp_path: Path, database_urls: tuple[str, str]) -> Settings:
    bot_url, crm_url = database_urls
    return Settings.model_validate(
        {
            "bot": {"data_dir": str(tmp_path / "data")},
            "database": {"url": bot_url},
            "crm": {"sql": {"url": crm_url}},
            "security": {"secret_key": Fernet.generate_key().decode()},
            "admins": {"usernames": ["sam", "tina"]},
        }
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def app(settings: Settings, clock: ManualClock) -> AsyncIterator[App]:
    async with open_app(settings, clock=clock) as opened:
        await demo.seed(opened, reset=True)
        yield opened
