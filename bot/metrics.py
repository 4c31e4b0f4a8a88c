"""What a running bot tells its operator in numbers: Prometheus metrics, served at ``/metrics`` by ``serve``.

Each ``App`` has a ``Metrics`` of its own, on a registry of its own (never
prometheus-client's global one), so two apps in one process, such as two
tests, count apart. Counters move where things happen: a turn in the engine,
a CRM call in ``MeteredCrm``, a wrong TOTP code in the verification step.
What lives in the database (requests by status, work waiting in the outbox,
notifications not yet delivered) and the circuit breaker's state are read when
Prometheus scrapes, with three small queries, so replicas agree and nothing
has to be kept up to date in between.

Labels carry channels, operations and outcomes only: never a person's name or id.

    unlockbot_turns_total{channel,outcome}      outcome: ok, duplicate, failed (a reply said so), error (a bug),
                                                cancelled (the process stopped)
    unlockbot_turn_seconds{channel}             histogram
    unlockbot_crm_calls_total{op,outcome}       outcome: ok, refused (the CRM said no), unavailable, error
    unlockbot_crm_call_seconds{op}              histogram, retries included
    unlockbot_totp_failures_total               wrong or replayed codes
    unlockbot_unlock_requests{status}           requests in each status, now
    unlockbot_outbox_pending                    CRM work not yet carried out
    unlockbot_notifications_pending             notifications not yet delivered
    unlockbot_breaker_open                      1 while the CRM circuit breaker is open (or waiting for its trial)
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.crm.base import (
    Account,
    Capability,
    CrmBackend,
    LicenceInfo,
    LockEvent,
    LockStatus,
    PasswordReset,
    Reachability,
    SeatHolder,
    SystemStatus,
)
from bot.crm.resilient import BreakerState, CircuitBreaker
from bot.errors import CrmError, CrmUnavailable
from bot.requests.unlock_requests import Status
from bot.storage.db import Database
from bot.storage.models import Notification, OutboxItem, UnlockRequest

T = TypeVar("T")

# Where a Database handle carries its app's metrics, for code that has a session but no app (the TOTP step).
_INFO_KEY = "unlockbot.metrics"
# Outbox rows still to be carried out: waiting, or taken by a worker that has not finished.
_OUTBOX_WAITING = ("pending", "claimed")


class TurnOutcome:
    """The ``outcome`` label of ``unlockbot_turns_total``."""

    OK = "ok"
    DUPLICATE = "duplicate"  # a platform's redelivery, ignored
    FAILED = "failed"  # a BotError: the person was told what went wrong
    ERROR = "error"  # a bug: logged with its traceback
    CANCELLED = "cancelled"  # the process stopped during the turn


@dataclass(frozen=True, slots=True)
class DatabaseState:
    """What the database says now, read at scrape time."""

    requests: Mapping[str, int]
    outbox_pending: int
    notifications_pending: int


async def read_state(session: AsyncSession) -> DatabaseState:
    """Counts for the gauges; each query reads an index or a small table."""
    by_status = await session.execute(select(UnlockRequest.status, func.count()).group_by(UnlockRequest.status))
    outbox = await session.scalar(
        select(func.count()).select_from(OutboxItem).where(OutboxItem.status.in_(_OUTBOX_WAITING))
    )
    notifications = await session.scalar(
        select(func.count()).select_from(Notification).where(Notification.delivered_at.is_(None))
    )
    return DatabaseState(
        requests={status: int(count) for status, count in by_status.all()},
        outbox_pending=int(outbox or 0),
        notifications_pending=int(notifications or 0),
    )


class _StateCollector(Collector):
    """Yields the gauges from the snapshot taken for this scrape; nothing when the database did not answer."""

    def __init__(self, breaker: CircuitBreaker | None) -> None:
        self._breaker = breaker
        self.snapshot: DatabaseState | None = None

    def collect(self) -> Iterable[Metric]:
        breaker = GaugeMetricFamily(
            "unlockbot_breaker_open", "1 while the CRM circuit breaker is open or waiting for its trial call"
        )
        closed = self._breaker is None or self._breaker.state is BreakerState.CLOSED
        breaker.add_metric([], 0 if closed else 1)
        yield breaker
        state = self.snapshot
        if state is None:
            return
        requests = GaugeMetricFamily("unlockbot_unlock_requests", "Unlock requests in each status", labels=["status"])
        for status in Status:
            requests.add_metric([status.value], state.requests.get(status.value, 0))
        yield requests
        yield GaugeMetricFamily(
            "unlockbot_outbox_pending", "CRM work in the outbox not yet carried out", value=state.outbox_pending
        )
        yield GaugeMetricFamily(
            "unlockbot_notifications_pending", "Notifications not yet delivered", value=state.notifications_pending
        )


class Metrics:
    """One app's metrics, on a registry of its own."""

    def __init__(self, *, breaker: CircuitBreaker | None = None) -> None:
        self.registry = CollectorRegistry()
        self.turns = Counter(
            "unlockbot_turns", "Turns handled, by channel and outcome", ["channel", "outcome"], registry=self.registry
        )
        self.turn_seconds = Histogram(
            "unlockbot_turn_seconds", "How long a turn took, by channel", ["channel"], registry=self.registry
        )
        self.crm_calls = Counter(
            "unlockbot_crm_calls",
            "Calls to the CRM backend, by operation and outcome",
            ["op", "outcome"],
            registry=self.registry,
        )
        self.crm_call_seconds = Histogram(
            "unlockbot_crm_call_seconds", "How long a CRM call took, retries included", ["op"], registry=self.registry
        )
        self.totp_failures = Counter(
            "unlockbot_totp_failures", "TOTP codes refused as wrong or already used", registry=self.registry
        )
        self._state = _StateCollector(breaker)
        self.registry.register(self._state)

    def turn(self, channel: str, outcome: str, seconds: float) -> None:
        self.turns.labels(channel=channel, outcome=outcome).inc()
        self.turn_seconds.labels(channel=channel).observe(seconds)

    def crm_call(self, op: str, outcome: str, seconds: float) -> None:
        self.crm_calls.labels(op=op, outcome=outcome).inc()
        self.crm_call_seconds.labels(op=op).observe(seconds)

    def exposition(self, state: DatabaseState | None, accept: str = "") -> tuple[bytes, str]:
        """The scrape's body and content type (what ``accept`` asks for); ``state=None`` leaves out the gauges
        that come from the database, rather than showing old numbers."""
        encode, content_type = choose_encoder(accept)
        # No await between setting the snapshot and encoding: a concurrent scrape cannot interleave.
        self._state.snapshot = state
        try:
            return encode(self.registry), content_type
        finally:
            self._state.snapshot = None


def use_metrics(database: Database, metrics: Metrics) -> None:
    """Let code that holds only a session of ``database`` count into ``metrics`` (see ``metrics_of``)."""
    database.info[_INFO_KEY] = metrics


def metrics_of(session: AsyncSession) -> Metrics | None:
    """The metrics of the app whose database opened ``session``, if it has any."""
    metrics = session.info.get(_INFO_KEY)
    return metrics if isinstance(metrics, Metrics) else None


class MeteredCrm:
    """Any ``CrmBackend``, counting and timing each call the bot makes through it.

    It wraps what flows, the outbox and the housekeeper use, outside the
    resilience layer: a call is measured as the person waits for it, retries
    included.
    """

    def __init__(self, backend: CrmBackend, metrics: Metrics) -> None:
        self._backend = backend
        self._metrics = metrics
        self.name = backend.name

    @property
    def backend(self) -> CrmBackend:
        return self._backend

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self._backend.capabilities

    async def _call(self, op: str, call: Callable[[], Awaitable[T]]) -> T:
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await call()
            outcome = "ok"
            return result
        except CrmUnavailable:
            outcome = "unavailable"
            raise
        except CrmError:
            outcome = "refused"  # it answered, if only to say no
            raise
        finally:
            self._metrics.crm_call(op, outcome, time.perf_counter() - started)

    async def find_account(self, query: str) -> Account | None:
        return await self._call("find_account", lambda: self._backend.find_account(query))

    async def lock_status(self, username: str) -> LockStatus:
        return await self._call("lock_status", lambda: self._backend.lock_status(username))

    async def unlock(self, username: str, *, idempotency_key: str) -> None:
        await self._call("unlock", lambda: self._backend.unlock(username, idempotency_key=idempotency_key))

    async def reset_password(self, username: str, *, idempotency_key: str) -> PasswordReset:
        return await self._call(
            "reset_password", lambda: self._backend.reset_password(username, idempotency_key=idempotency_key)
        )

    async def add_trusted_ip(self, username: str, ip: str, *, note: str) -> None:
        await self._call("add_trusted_ip", lambda: self._backend.add_trusted_ip(username, ip, note=note))

    async def licence(self, username: str) -> LicenceInfo | None:
        return await self._call("licence", lambda: self._backend.licence(username))

    async def all_licences(self) -> list[LicenceInfo]:
        return await self._call("all_licences", self._backend.all_licences)

    async def inactive_users(self, licence: str, *, limit: int) -> list[SeatHolder]:
        return await self._call("inactive_users", lambda: self._backend.inactive_users(licence, limit=limit))

    async def system_status(self) -> SystemStatus:
        return await self._call("system_status", self._backend.system_status)

    async def locks_since(self, since: datetime) -> int:
        return await self._call("locks_since", lambda: self._backend.locks_since(since))

    async def lock_events(self, since: datetime) -> list[LockEvent]:
        return await self._call("lock_events", lambda: self._backend.lock_events(since))

    async def probe(self) -> Reachability:
        started = time.perf_counter()
        outcome = "error"
        try:
            reach = await self._backend.probe()  # an unreachable CRM is an answer here, not an exception
            outcome = "ok" if reach.reachable else "unavailable"
            return reach
        finally:
            self._metrics.crm_call("probe", outcome, time.perf_counter() - started)

    async def aclose(self) -> None:
        await self._backend.aclose()
