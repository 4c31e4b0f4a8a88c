"""What ``serve_bench.py`` sets up around the bot: the database, its people, the settings file, the processes.

``prepare`` seeds the demo into the embedded CRM, adds one locked CRM account per benchmark person (their
lock copied from a demo user, round the reasons) and links each to their own Slack or Telegram account
with the function linking uses, so every person is a distinct, already linked CRM user. ``Processes``
runs ``unlockbot serve`` replicas or a bare app as subprocesses, waits until each answers, reads the CPU
time they used from /proc, and stops them with SIGTERM as an operator would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _bare_apps import TELEGRAM_PATH, TELEGRAM_SECRET  # noqa: E402

from bot import demo  # noqa: E402
from bot.app import open_app  # noqa: E402
from bot.channel_settings import TelegramSettings  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.crm.sql import SqlCrm  # noqa: E402
from bot.crm.sql_schema import CrmUser  # noqa: E402
from bot.identity.linking import link  # noqa: E402
from bot.requests.audit import AuditKey  # noqa: E402
from bot.storage.db import sync_url  # noqa: E402
from tests.fakes.slack_api import BOT_TOKEN, SIGNING_SECRET, TEAM  # noqa: E402
from tests.fakes.telegram_api import TOKEN  # noqa: E402

SLACK_PATH = "/slack/events"
BARE_APPS = Path(__file__).resolve().parent / "_bare_apps.py"


@dataclass(frozen=True)
class Person:
    """One benchmark person: a CRM account and the one chat account linked to it."""

    username: str
    channel: str  # "slack" or "telegram"
    user_id: str

    @property
    def team_id(self) -> str:
        return TEAM if self.channel == "slack" else ""


def crowd(channel: str, group: int, size: int) -> list[Person]:
    """``size`` people of their own for one measurement (a group number keeps them apart from the others)."""
    if channel == "slack":
        return [Person(f"bench_s{group}_{i}", channel, f"UB{group}{i:06d}") for i in range(size)]
    return [Person(f"bench_t{group}_{i}", channel, str(group * 1_000_000 + i + 1)) for i in range(size)]


@contextlib.contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A schema of this run's own on the server at ``url``, dropped at the end; the URL that uses only it."""
    schema = f"serve_bench_{os.getpid()}"
    engine = create_engine(sync_url(url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)
    finally:
        with engine.connect() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


def settings_for(
    data_dir: Path,
    database_url: str,
    crm_url: str,
    port: int,
    slack_api: str,
    telegram_api: str,
    keys: tuple[str, str],
    *,
    replicas: int = 1,
) -> dict[str, Any]:
    """The settings of one of ``replicas`` replicas: both chat channels on the fakes, over HTTP, on ``port``.

    The replicas share the Telegram token's 30 sends a second, as docs/deploy.md says to set them.
    """
    return {
        "bot": {"data_dir": str(data_dir), "default_locale": "en"},
        "database": {"url": database_url},
        "crm": {"backend": "sql", "sql": {"url": crm_url}},
        "security": {"secret_key": keys[0], "audit_key": keys[1]},
        "slack": {"bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET, "api_base_url": slack_api, "mode": "http"},
        "telegram": {
            "token": TOKEN,
            "base_url": telegram_api,
            "base_file_url": telegram_api.replace("/bot", "/file/bot"),
            "mode": "webhook",
            "secret_token": TELEGRAM_SECRET,
            "webhook_path": TELEGRAM_PATH,
            "messages_per_second": TelegramSettings().messages_per_second / replicas,
        },
        "http": {"host": "127.0.0.1", "port": port},
    }


def new_keys() -> tuple[str, str]:
    """A TOTP encryption key and an audit key, shared by every replica."""
    return Fernet.generate_key().decode(), AuditKey.generate_text()


def write_toml(path: Path, settings: dict[str, Any]) -> Path:
    """Settings as TOML: tables of strings and numbers only, which JSON's literals spell the same way."""
    lines: list[str] = []

    def table(name: str, values: dict[str, Any]) -> None:
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in values.items() if not isinstance(value, dict))
        for key, value in values.items():
            if isinstance(value, dict):
                table(f"{name}.{key}", value)

    for name, values in settings.items():
        table(name, values)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def prepare(settings: dict[str, Any], people: Sequence[Person]) -> None:
    """Seed the demo, then give every person a locked CRM account of their own, linked to their chat account."""
    async with open_app(Settings.model_validate(settings)) as app:
        await demo.seed(app, reset=True)
        assert isinstance(app.crm, SqlCrm)
        async with app.crm.database.session() as session, session.begin():
            models = list(await session.scalars(select(CrmUser).where(CrmUser.locked).order_by(CrmUser.id)))
            for number, person in enumerate(people):
                model = models[number % len(models)]
                session.add(
                    CrmUser(
                        username=person.username,
                        email=f"{person.username}@example.com",
                        display_name=person.username.replace("_", " ").title(),
                        licence_id=model.licence_id,
                        locked=True,
                        lock_reason=model.lock_reason,
                        locked_at=model.locked_at,
                        lock_detail=dict(model.lock_detail),
                    )
                )
        now = app.clock.now()
        async with app.database.session() as session, session.begin():
            for person in people:
                await link(
                    session,
                    now=now,
                    channel=person.channel,
                    team_id=person.team_id,
                    user_id=person.user_id,
                    username=person.username,
                    by="bench",
                )


def _environment() -> dict[str, str]:
    """This environment without UNLOCKBOT_ variables, which would override the settings file."""
    return {name: value for name, value in os.environ.items() if not name.startswith("UNLOCKBOT_")}


def serve_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "bot", "--config", str(config), "serve"]


def bare_command(platform: str, port: int, api_url: str) -> list[str]:
    return [sys.executable, str(BARE_APPS), platform, "--port", str(port), "--api-url", api_url]


class Processes:
    """Subprocesses that serve HTTP on 127.0.0.1, each ready when its ``ready_path`` answers 200."""

    def __init__(self, commands: Sequence[list[str]], ports: Sequence[int], logs: Path, *, ready_path: str) -> None:
        self.commands = commands
        self.urls = [f"http://127.0.0.1:{port}" for port in ports]
        self._logs = [logs.with_name(f"{logs.name}-{number}.log") for number in range(len(commands))]
        self._ready_path = ready_path
        self._running: list[asyncio.subprocess.Process] = []

    async def __aenter__(self) -> Processes:
        for command, log in zip(self.commands, self._logs, strict=True):
            with log.open("wb") as sink:
                self._running.append(
                    await asyncio.create_subprocess_exec(
                        *command, cwd=ROOT, env=_environment(), stdout=asyncio.subprocess.DEVNULL, stderr=sink
                    )
                )
        try:
            await asyncio.gather(*(self._ready(number) for number in range(len(self._running))))
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def _ready(self, number: int, within: float = 120.0) -> None:
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as client:
            while self._running[number].returncode is None and time.monotonic() < deadline:
                with contextlib.suppress(aiohttp.ClientError):
                    async with client.get(self.urls[number] + self._ready_path) as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)
        tail = self._logs[number].read_text(encoding="utf-8", errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(self.commands[number])} never became ready; its log ends:\n{tail}")

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        for process in self._running:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in self._running:
            try:
                await asyncio.wait_for(process.wait(), timeout=30)
            except TimeoutError:
                process.kill()
                await process.wait()

    def cpu_seconds(self) -> float | None:
        """User and system CPU time the processes have used so far (Linux only)."""
        total = 0.0
        for process in self._running:
            try:
                fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                return None
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def errors(self) -> int:
        """Lines the processes logged at level ERROR (a failed turn, a failed send)."""
        return sum(log.read_text(encoding="utf-8", errors="replace").count(" ERROR ") for log in self._logs)
