"""Wiring: settings in, a ready engine and its parts out.

``open_app`` migrates the database, loads and checks the knowledge and
templates, builds the CRM backend and the services, and refuses to start
when TOTP secrets are stored but no key is configured to read them, or when
a demo database would meet a real (non-``sql``) CRM backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from pathlib import Path

from sqlalchemy import func, select

from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.crm import registry
from bot.crm.base import CrmBackend
from bot.crm.resilient import ResilientCrm
from bot.crm.sql import SqlCrm
from bot.engine import Engine
from bot.errors import ConfigError
from bot.flows import ACTIONS, Services
from bot.handlers.base import admin_destinations
from bot.identity.secrets import SecretBox, load_key
from bot.identity.totp import TotpVerifier
from bot.knowledge.commands import CommandMatcher
from bot.knowledge.reasons import load_reasons
from bot.knowledge.retrieval import FaqIndex
from bot.metrics import MeteredCrm, Metrics, use_metrics
from bot.rendering import Renderer, make_environment
from bot.requests.alerts import Alerts
from bot.requests.anchor import AuditTrail, open_trail
from bot.requests.housekeeping import Housekeeper
from bot.requests.outbox import OutboxWorker
from bot.requests.policy import Limits, UnlockPolicy
from bot.storage.db import Database
from bot.storage.meta import CLEAR_DEMO_COMMAND, DEMO_ADMINS, is_demo
from bot.storage.models import TotpEnrolment


def bundled_dir(name: str) -> Path:
    """``templates`` or ``knowledge`` as shipped with the code.

    A wheel carries them inside the package, as ``bot/data/<name>``; in a
    checkout (an editable install) they stay at the top of the repository.
    """
    package = Path(str(resources.files("bot")))
    if (package / "data" / name).is_dir():
        return package / "data" / name
    checkout = package.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / name).is_dir():
        return checkout / name
    raise ConfigError(
        f"bot.{name}_dir: unlockbot's {name}/ folder is not installed beside {package}; "
        f"reinstall unlockbot, or set [bot] {name}_dir to a copy"
    )


def templates_dir(settings: Settings) -> Path:
    return settings.bot.templates_dir or bundled_dir("templates")


def knowledge_dir(settings: Settings) -> Path:
    return settings.bot.knowledge_dir or bundled_dir("knowledge")


def build_crm(settings: Settings, clock: Clock, database: Database | None = None) -> SqlCrm | ResilientCrm:
    return registry.build_crm(settings, clock, database)


@dataclass
class App:
    settings: Settings
    clock: Clock
    database: Database
    crm: CrmBackend
    box: SecretBox | None
    totp: TotpVerifier
    renderer: Renderer
    engine: Engine
    outbox: OutboxWorker
    housekeeper: Housekeeper
    metrics: Metrics
    audit: AuditTrail


async def _admins(database: Database, settings: Settings) -> tuple[str, ...]:
    if settings.admins.usernames:
        return settings.admins.usernames
    async with database.session() as session:
        return DEMO_ADMINS if await is_demo(session) else ()


async def _refuse_demo_data(database: Database, settings: Settings) -> None:
    """A real CRM must never meet the demo: its admins would stay admins and its public secrets unlock people."""
    if settings.crm.backend == "sql":
        return
    async with database.session() as session:
        demo = await is_demo(session)
    if demo:
        raise ConfigError(
            f"crm.backend = {settings.crm.backend!r}: the database still holds the demo (its admins, and TOTP "
            f"secrets anyone can compute from the public code); run `{CLEAR_DEMO_COMMAND}` to empty it, "
            "or set [database] url to a new database"
        )


async def _check_key(database: Database, box: SecretBox | None) -> None:
    if box is not None:
        return
    async with database.session() as session:
        stored = await session.scalar(select(func.count()).select_from(TotpEnrolment))
    if stored:
        raise ConfigError(
            "security.secret_key: TOTP secrets are stored in the database but no key is configured to read them; "
            "set [security] secret_key or secret_key_file (or UNLOCKBOT_SECURITY__SECRET_KEY)"
        )


@asynccontextmanager
async def open_app(settings: Settings, *, clock: Clock | None = None) -> AsyncIterator[App]:
    clock = clock or SystemClock()
    database = Database(
        settings.database_url,
        echo=settings.database.echo,
        pool=(settings.database.pool_size, settings.database.max_overflow),
    )
    crm = build_crm(settings, clock, database)
    try:
        await database.upgrade()
        await _refuse_demo_data(database, settings)
        trail = await open_trail(settings, database)  # before anything is recorded: every event is signed
        await crm.create_schema()
        box = load_key(settings)
        await _check_key(database, box)
        metrics = Metrics(breaker=crm.breaker if isinstance(crm, ResilientCrm) else None)
        use_metrics(database, metrics)
        # What the bot asks of the CRM is counted; app.crm stays the backend itself, for the demo and the CLI.
        metered = MeteredCrm(crm, metrics)
        knowledge = knowledge_dir(settings)
        reasons = load_reasons(knowledge / "reasons.yaml")
        faq = FaqIndex.load(knowledge)
        templates = templates_dir(settings)
        renderer = Renderer(make_environment(templates, settings.bot.timezone, reasons, faq.topics), templates)
        totp = TotpVerifier(box, clock, settings.totp)
        services = Services(
            crm=metered,
            totp=totp,
            faq=faq,
            policy=UnlockPolicy(settings.policy),
            clock=clock,
            admins=await _admins(database, settings),
            issuer=settings.totp.issuer,
            limits=Limits(
                per_day=settings.requests.self_service_per_day,
                reset_cooldown=timedelta(minutes=settings.requests.reset_cooldown_minutes),
            ),
            request_lifetime=timedelta(hours=settings.requests.lifetime_hours),
            link_lifetime=timedelta(hours=settings.totp.link_code_hours),
            verify_grace=timedelta(minutes=settings.totp.grace_minutes),
            questions_per_day=settings.requests.questions_per_day,
            words=renderer.label,
            timezone=settings.bot.timezone,
        )
        commands = CommandMatcher.load(knowledge / "commands.yaml", ACTIONS.keys())
        outbox = OutboxWorker(database, metered, clock, admins=services.admins)
        engine = Engine(
            database,
            services,
            renderer,
            commands,
            default_locale=settings.bot.default_locale,
            outbox=outbox,
            idle_timeout=timedelta(minutes=settings.bot.idle_timeout_minutes),
            metrics=metrics,
        )
        housekeeper = Housekeeper(
            database,
            outbox,
            metered,
            clock,
            settings.requests,
            admins=services.admins,
            escalation=settings.admins.escalation,
            audit=trail,
            retention=settings.retention,
            weekly_digest=settings.admins.weekly_digest,
            admin_posts=admin_destinations(settings),
            alerts=Alerts(database, metered, clock, settings.alerts, services.policy, admins=services.admins),
        )
        yield App(settings, clock, database, crm, box, totp, renderer, engine, outbox, housekeeper, metrics, trail)
    finally:
        await crm.aclose()
        await database.dispose()
