"""Shared fixtures: a database on SQLite (and PostgreSQL when configured), a seeded demo app, a clock.

The demo is migrated and seeded once per session and copied into each test (``tests.databases``), and the
FAQ index, which only reads once built, is built once per knowledge folder: together they were most of
the time each test spent before its first line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from bot.app import App
from bot.clock import ManualClock
from bot.config import Settings
from tests import offline
from tests.databases import POSTGRES_ENV, DemoTemplates, demo_app, postgres_databases

# A Sunday morning, on a step boundary so TOTP windows are easy to reason about.
START = datetime(2026, 11, 29, 9, 0, 0, tzinfo=UTC)
# One key for the session: the seeded template's TOTP secrets are encrypted with it.
SECRET_KEY = Fernet.generate_key().decode()


def pytest_configure(config: pytest.Config) -> None:
    offline.install()


def pytest_report_header(config: pytest.Config) -> str:
    if postgres_databases() is None:
        return f"database tests: SQLite only (set {POSTGRES_ENV} to run them on PostgreSQL too)"
    return "database tests: SQLite and PostgreSQL"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without PostgreSQL its half of the database tests is left out (the header says so), not skipped one by one."""
    if postgres_databases() is not None:
        return
    left_out = [item for item in items if _on_postgres(item)]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if not _on_postgres(item)]


def _on_postgres(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    return callspec is not None and callspec.params.get("database_urls") == "postgresql"


def pytest_sessionfinish(session: pytest.Session) -> None:
    databases = postgres_databases()
    if databases is not None:
        databases.drop_all()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(bot database URL, embedded CRM URL) for each database the tests run on: new and empty."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bot.db'}", f"sqlite:///{tmp_path / 'crm.db'}"
        return
    databases = postgres_databases()
    if databases is None:
        pytest.skip(f"set {POSTGRES_ENV} to run the database tests on PostgreSQL too")
    name = databases.new_name()
    if "demo_templates" not in request.fixturenames:
        databases.create(name)  # the demo app makes it, as a copy of its template
    url = databases.url_of(name)
    yield url, url
    databases.drop(name)


@pytest.fixture
def settings(tmp_path: Path, database_urls: tuple[str, str]) -> Settings:
    bot_url, crm_url = database_urls
    return Settings.model_validate(
        {
            "bot": {"data_dir": str(tmp_path / "data")},
            "database": {"url": bot_url},
            "crm": {"sql": {"url": crm_url}},
            "security": {"secret_key": SECRET_KEY},
            "admins": {"usernames": ["sam", "tina"]},
        }
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture(scope="session")
def demo_templates(tmp_path_factory: pytest.TempPathFactory) -> DemoTemplates:
    return DemoTemplates(tmp_path_factory.mktemp("templates"))


@pytest.fixture
async def app(settings: Settings, clock: ManualClock, demo_templates: DemoTemplates) -> AsyncIterator[App]:
    async with demo_app(settings, clock, demo_templates) as opened:
        yield opened


@pytest.fixture(scope="session")
def seeded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where ``unlockbot demo seed --reset`` ran, once per session, as a person's first command would."""
    home = tmp_path_factory.mktemp("seeded-home")
    environ = {name: value for name, value in os.environ.items() if not name.startswith("UNLOCKBOT_")}
    seeded = subprocess.run(
        [sys.executable, "-m", "bot", "demo", "seed", "--reset"],
        capture_output=True,
        text=True,
        cwd=home,
        env=environ,
        timeout=60,
        check=False,
    )
    assert seeded.returncode == 0, seeded.stderr
    return home


@pytest.fixture
def demo_home(seeded_home: Path, tmp_path: Path) -> Path:
    """``tmp_path`` holding a copy of the seeded demo's ``.unlockbot`` (databases, keys, anchor, modes kept)."""
    shutil.copytree(seeded_home / ".unlockbot", tmp_path / ".unlockbot")
    return tmp_path
