"""Resilience for any CRM backend: a time limit on every call, retries where repeating is safe, a circuit breaker.

``ResilientCrm`` wraps a backend and keeps the promise made to the person: an
answer, or "the CRM is not answering", within ``timeout`` seconds. Calls that
change nothing (lookups, lock status, licence and system facts, the probe) are
tried again after a short jittered pause while time is left. Unlocks, password
resets and trusted addresses are tried once: the outbox tries them again later
under the same idempotency key, so repeating them here could only do harm.

After ``failure_threshold`` failures in a row the breaker opens and every call
fails at once with ``CrmUnavailable`` until ``cool_down`` has passed on the
injected clock; then a single trial call decides whether it closes again.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from bot.clock import Clock
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
from bot.errors import CrmError, CrmUnavailable, CrmUnsupported

log = logging.getLogger(__name__)

T = TypeVar("T")


class BreakerState(StrEnum):
    CLOSED = "closed"  # calls go through
    OPEN = "open"  # calls fail at once
    HALF_OPEN = "half_open"  # one trial call goes through


class CircuitBreaker:
    """Counts failures in a row; past the threshold, stops calls for a cool-down measured on the clock."""

    def __init__(self, clock: Clock, *, failure_threshold: int, cool_down: timedelta) -> None:
        self._clock = clock
        self._threshold = failure_threshold
        self._cool_down = cool_down
        self._failures = 0
        self._opened_at: datetime | None = None
        self._trial = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._trial or self._clock.now() >= self._opened_at + self._cool_down:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    @property
    def failures(self) -> int:
        return self._failures

    def admit(self) -> None:
        """Let a call through, or raise ``CrmUnavailable`` while the breaker is open."""
        if self._opened_at is None:
            return
        if self._trial:
            raise CrmUnavailable("the CRM is not answering; a trial call is under way")
        retry_at = self._opened_at + self._cool_down
        if self._clock.now() < retry_at:
            raise CrmUnavailable(
                f"the CRM failed {self._failures} times in a row; asking again after {retry_at:%H:%M:%S} UTC"
            )
        self._trial = True  # half open: this call is the trial

    def succeeded(self) -> None:
        if self._opened_at is not None:
            log.warning("CRM answers again after %d failed calls; the circuit breaker closes", self._failures)
        self._failures = 0
        self._opened_at = None
        self._trial = False

    def failed(self) -> None:
        self._failures += 1
        if self._trial or (self._opened_at is None and self._failures >= self._threshold):
            if self._opened_at is None:
                log.warning(
                    "CRM failed %d times in a row; the circuit breaker opens for %s", self._failures, self._cool_down
                )
            self._opened_at = self._clock.now()
        self._trial = False

    def abandoned(self) -> None:
        """The call ended in neither an answer nor an outage (cancelled, or a bug): free the trial."""
        self._trial = False


class ResilientCrm:
    """Any ``CrmBackend``, with time limits, safe retries and a circuit breaker."""

    def __init__(
        self,
        backend: CrmBackend,
        clock: Clock,
        *,
        timeout: float,
        retries: int = 2,
        backoff: float = 0.2,
        failure_threshold: int = 5,
        cool_down: timedelta = timedelta(seconds=30),
        rng: random.Random | None = None,
    ) -> None:
        self._backend = backend
        self.name = backend.name
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not secrecy)
        self.breaker = CircuitBreaker(clock, failure_threshold=failure_threshold, cool_down=cool_down)

    @property
    def backend(self) -> CrmBackend:
        return self._backend

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self._backend.capabilities

    async def create_schema(self) -> None:
        """Nothing to create: a remote CRM keeps its own storage (``open_app`` asks every backend)."""

    async def _call(
        self, what: str, operation: Callable[[], Awaitable[T]], *, retry: bool, needs: Capability | None = None
    ) -> T:
        if needs is not None and needs not in self.capabilities:
            raise CrmUnsupported(needs.value)  # refused here, so it never counts as an answer from the CRM
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        attempt = 0
        while True:
            self.breaker.admit()
            try:
                async with asyncio.timeout_at(deadline):
                    result = await operation()
            except CrmUnavailable as exc:
                self.breaker.failed()
                error = exc
            except TimeoutError as exc:
                self.breaker.failed()
                error = CrmUnavailable(f"the CRM did not answer ({what}) within {self._timeout:g} s")
                error.__cause__ = exc
            except CrmError:
                self.breaker.succeeded()  # it answered, if only to refuse
                raise
            except BaseException:
                self.breaker.abandoned()
                raise
            else:
                self.breaker.succeeded()
                return result
            attempt += 1
            pause = self._rng.uniform(0, self._backoff * 2 ** (attempt - 1))
            out_of_time = loop.time() + pause >= deadline
            if not retry or attempt > self._retries or out_of_time or self.breaker.state is not BreakerState.CLOSED:
                raise error
            log.info("CRM call %s failed (%s); trying again in %.0f ms", what, error, pause * 1000)
            await asyncio.sleep(pause)

    # --- calls that change nothing: retried -------------------------------------------------------------------

    async def find_account(self, query: str) -> Account | None:
        return await self._call("find_account", lambda: self._backend.find_account(query), retry=True)

    async def lock_status(self, username: str) -> LockStatus:
        return await self._call(
            "lock_status", lambda: self._backend.lock_status(username), retry=True, needs=Capability.LOCK_STATUS
        )

    async def licence(self, username: str) -> LicenceInfo | None:
        return await self._call(
            "licence", lambda: self._backend.licence(username), retry=True, needs=Capability.LICENCES
        )

    async def all_licences(self) -> list[LicenceInfo]:
        return await self._call("all_licences", self._backend.all_licences, retry=True, needs=Capability.LICENCE_LIST)

    async def inactive_users(self, licence: str, *, limit: int) -> list[SeatHolder]:
        return await self._call(
            "inactive_users",
            lambda: self._backend.inactive_users(licence, limit=limit),
            retry=True,
            needs=Capability.SEAT_USAGE,
        )

    async def system_status(self) -> SystemStatus:
        return await self._call(
            "system_status", self._backend.system_status, retry=True, needs=Capability.SYSTEM_STATUS
        )

    async def locks_since(self, since: datetime) -> int:
        return await self._call(
            "locks_since", lambda: self._backend.locks_since(since), retry=True, needs=Capability.LOCK_STATISTICS
        )

    async def lock_events(self, since: datetime) -> list[LockEvent]:
        return await self._call(
            "lock_events", lambda: self._backend.lock_events(since), retry=True, needs=Capability.LOCK_EVENTS
        )

    async def probe(self) -> Reachability:
        async def answered() -> Reachability:
            reach = await self._backend.probe()
            if not reach.reachable:
                raise CrmUnavailable(reach.detail or "the CRM does not answer")
            return reach

        try:
            return await self._call("probe", answered, retry=True, needs=Capability.PROBE)
        except CrmUnavailable as exc:
            return Reachability(False, None, str(exc))

    # --- calls that change something: once; the outbox retries them with the same key ------------------------

    async def unlock(self, username: str, *, idempotency_key: str) -> None:
        await self._call(
            "unlock",
            lambda: self._backend.unlock(username, idempotency_key=idempotency_key),
            retry=False,
            needs=Capability.UNLOCK,
        )

    async def reset_password(self, username: str, *, idempotency_key: str) -> PasswordReset:
        return await self._call(
            "reset_password",
            lambda: self._backend.reset_password(username, idempotency_key=idempotency_key),
            retry=False,
            needs=Capability.RESET_PASSWORD,
        )

    async def add_trusted_ip(self, username: str, ip: str, *, note: str) -> None:
        await self._call(
            "add_trusted_ip",
            lambda: self._backend.add_trusted_ip(username, ip, note=note),
            retry=False,
            needs=Capability.TRUSTED_IPS,
        )

    async def aclose(self) -> None:
        await self._backend.aclose()
