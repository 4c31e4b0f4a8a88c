"""The work time and decisions leave: expiry, reminders, the outbox, lock watches, retention, the audit anchor.

``tick`` does one round and is safe to call from any number of processes;
``run`` repeats it until stopped. Channels call neither: the process that
runs the channels does (``unlockbot chat`` after every turn, ``serve`` on a
timer), so the engine stays free of background work. Given the audit trail,
each round also checks the events written since the anchor and moves the
anchor on, and once a day one process sends the trail's head to the admins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from bot.clock import Clock
from bot.config import RequestSettings, RetentionSettings
from bot.crm.base import CrmBackend
from bot.requests.anchor import AuditTrail, keep_anchor, post_head
from bot.requests.audit import ChainReport
from bot.requests.outbox import OutboxWorker
from bot.requests.reminders import expire_due, remind_admins
from bot.requests.watches import check_watches
from bot.storage.db import Database
from bot.storage.retention import prune

log = logging.getLogger(__name__)

# Pruning old rows is not urgent: once an hour per process is plenty.
PRUNE_EVERY = timedelta(hours=1)


class Housekeeper:
    def __init__(
        self,
        database: Database,
        outbox: OutboxWorker,
        crm: CrmBackend,
        clock: Clock,
        settings: RequestSettings,
        *,
        admins: tuple[str, ...],
        escalation: tuple[str, ...],
        audit: AuditTrail | None = None,
        retention: RetentionSettings | None = None,
    ) -> None:
        self._db = database
        self._outbox = outbox
        self._crm = crm
        self._clock = clock
        self._settings = settings
        self._admins = admins
        self._escalation = escalation
        self._audit = audit
        self._anchor_problems: tuple[str, ...] = ()
        self._retention = retention
        self._pruned_at: datetime | None = None

    async def tick(self) -> None:
        now = self._clock.now()
        async with self._db.session() as session, session.begin():
            await expire_due(session, now=now)
            await remind_admins(
                session, now=now, settings=self._settings, admins=self._admins, escalation=self._escalation
            )
        await self._outbox.run_once()
        async with self._db.session() as session, session.begin():
            await check_watches(session, now=now, crm=self._crm)
        if self._retention is not None and (self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY):
            async with self._db.session() as session, session.begin():
                pruned = await prune(session, now=now, keep=self._retention)
            self._pruned_at = now
            if any(pruned.values()):
                log.info("pruned %s", ", ".join(f"{count} {kind}" for kind, count in pruned.items() if count))
        if self._audit is not None:
            report = await keep_anchor(self._db, self._audit, now=now)
            self._log_anchor_problems(report)
            async with self._db.session() as session, session.begin():
                await post_head(session, now=now, admins=self._admins, report=report)

    def _log_anchor_problems(self, report: ChainReport) -> None:
        # Each round finds the same break again until someone looks: say it once, not every few seconds.
        problems = tuple(
            f"audit event {p.event_id}: {p.problem}" if p.event_id is not None else p.problem for p in report.problems
        )
        if problems and problems != self._anchor_problems:
            log.error(
                "the audit trail does not match its anchor, which stays where it was (run `unlockbot audit "
                "verify`): %s",
                "; ".join(problems),
            )
        self._anchor_problems = problems

    async def round(self) -> None:
        """One ``tick`` whose failure is logged, not raised: one bad round must not stop the next, or a chat."""
        try:
            await self.tick()
        except Exception:
            log.exception("housekeeping round failed")

    async def run(self, stop: asyncio.Event, *, interval: float = 5.0) -> None:
        while not stop.is_set():
            await self.round()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
