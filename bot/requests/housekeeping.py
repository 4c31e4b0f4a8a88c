"""The work time and decisions leave: expiry, reminders, the outbox, lock watches, retention, the audit chain.

``tick`` does one round and is safe to call from any number of processes;
``run`` repeats it until stopped, and links new audit events every second
in between. Channels call neither: the process that runs the channels does
(``unlockbot chat`` after every turn, ``serve`` on a timer), so the engine
stays free of background work.

Replicas share every part of a round without doing anything twice: requests
expire and reminders go out under conditional UPDATEs, outbox rows and lock
watches are claimed before the CRM is asked, pruning is the same work
whoever does it, and the audit chain is extended only by the holder of the
chainer's lease (``bot.storage.leases``). Given the audit trail, each round
also checks the events linked since the anchor and moves the anchor on, and
once a day one process sends the trail's head to the admins. With ``[admins]
weekly_digest`` one process sends the admins the week's lock statistics, posted
with their chart to the channels' admin destinations (``bot.reports.digest``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from bot.clock import Clock
from bot.config import RequestSettings, RetentionSettings
from bot.crm.base import Capability, CrmBackend
from bot.errors import CrmError
from bot.reports.digest import send_weekly_digest, week_of
from bot.requests import audit
from bot.requests.alerts import Alerts
from bot.requests.anchor import AuditTrail, keep_anchor, post_head
from bot.requests.licences import remind_about_licences
from bot.requests.outbox import OutboxWorker
from bot.requests.reminders import expire_due, remind_admins
from bot.requests.watches import check_watches
from bot.storage.db import Database
from bot.storage.leases import LeaseKeeper
from bot.storage.retention import prune

log = logging.getLogger(__name__)

# Pruning old rows is not urgent: once an hour per process is plenty.
PRUNE_EVERY = timedelta(hours=1)
LICENCES_EVERY = timedelta(hours=1)  # how often the CRM is asked for its licences, for reminders
# The chainer's lease: a replica that dies hands the chain on within this long.
CHAINER_LEASE = "audit.chainer"
CHAINER_TTL = timedelta(seconds=15)
# How often ``run`` links new audit events between rounds.
CHAIN_EVERY = 1.0


class AuditChainer:
    """Links new audit events while this process holds the chainer's lease; says each refusal once."""

    def __init__(self, database: Database, clock: Clock) -> None:
        self._db = database
        self._lease = LeaseKeeper(database, clock, CHAINER_LEASE, ttl=CHAINER_TTL)
        self._refused: set[int] = set()

    async def link(self) -> int:
        """Link what is waiting, if this process is the chainer now; how many events it linked."""
        if not await self._lease.hold():
            return 0
        try:
            async with self._db.session() as session, session.begin():
                done = await audit.chain(session)
        except audit.ChainConflict as exc:  # another chainer while our lease ran out: its links stand
            log.warning("audit chainer: %s; trying again next time", exc)
            return 0
        for problem in done.refused:
            if problem.event_id not in self._refused:
                log.error("audit event %s is left out of the chain: it %s", problem.event_id, problem.problem)
        self._refused = {p.event_id for p in done.refused if p.event_id is not None}
        return done.linked

    async def stop(self) -> None:
        """Hand the lease over at once, so another replica need not wait for it to run out."""
        await self._lease.let_go()


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
        alerts: Alerts | None = None,
        weekly_digest: bool = False,
        admin_posts: tuple[str, ...] = (),
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
        self.alerts = alerts
        self._pruned_at: datetime | None = None
        self._licences_at: datetime | None = None
        self._weekly_digest = weekly_digest
        # The channels whose admin destination gets the digest with its chart; none: each admin is notified.
        self._admin_posts = admin_posts
        self._digest_week: str | None = None  # the week this process saw the digest sent (by it or another)
        self.chainer = AuditChainer(database, clock)
        # Within ``run`` this process keeps the chainer's lease between rounds; a lone ``tick`` (after a
        # console turn) hands it back at once, so the next short-lived process need not wait for it.
        self._running = False

    async def tick(self) -> None:
        now = self._clock.now()
        async with self._db.session() as session, session.begin():
            await expire_due(session, now=now)
            await remind_admins(
                session, now=now, settings=self._settings, admins=self._admins, escalation=self._escalation
            )
        await self._outbox.run_once()
        await check_watches(self._db, now=now, crm=self._crm)
        await self._alert_now()  # a failure here must not keep the rest of the round from running
        if self._licences_at is None or now - self._licences_at >= LICENCES_EVERY:
            await self._remind_about_licences(now)
        if self._weekly_digest and self._admins and self._digest_week != week_of(now):
            await self._send_digest(now)
        if self._retention is not None and (self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY):
            async with self._db.session() as session, session.begin():
                pruned = await prune(session, now=now, keep=self._retention)
            self._pruned_at = now
            if any(pruned.values()):
                log.info("pruned %s", ", ".join(f"{count} {kind}" for kind, count in pruned.items() if count))
        # Linked before the anchor is checked, so the anchor covers what this round and the turns before it wrote.
        await self.chainer.link()
        if self._audit is not None:
            report = await keep_anchor(self._db, self._audit, now=now)
            self._log_anchor_problems(report)
            async with self._db.session() as session, session.begin():
                posted = await post_head(session, now=now, admins=self._admins, report=report)
            if posted:
                await self.chainer.link()  # the notice's own event
        if not self._running:
            await self.chainer.stop()

    async def _remind_about_licences(self, now: datetime) -> None:
        self._licences_at = now
        if Capability.LICENCE_LIST not in self._crm.capabilities or not self._admins:
            return
        try:
            licences = await self._crm.all_licences()
        except CrmError as exc:  # asked again at the next hour
            log.warning("could not read the CRM's licences for reminders: %s", exc)
            return
        async with self._db.session() as session, session.begin():
            await remind_about_licences(session, now=now, licences=licences, admins=self._admins)

    def _log_anchor_problems(self, report: audit.ChainReport) -> None:
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

    async def _link_now(self) -> None:
        try:
            await self.chainer.link()
        except Exception:
            log.exception("linking audit events failed")

    async def _send_digest(self, now: datetime) -> None:
        try:
            async with self._db.session() as session, session.begin():
                await send_weekly_digest(session, now=now, admins=self._admins, channels=self._admin_posts)
        except Exception:  # tried again at the next round
            log.exception("the weekly digest failed")
            return
        self._digest_week = week_of(now)

    async def _alert(self) -> None:
        """New locks and maintenance told, every ``[alerts] poll_seconds`` (between rounds too, in ``run``)."""
        if self.alerts is not None:
            await self.alerts.poll_if_due()

    async def _alert_now(self) -> None:
        try:
            await self._alert()
        except Exception:
            log.exception("lock alerts failed")

    async def run(self, stop: asyncio.Event, *, interval: float = 5.0) -> None:
        """A round every ``interval`` seconds, and new audit events linked every second in between, until ``stop``."""
        next_round = 0.0
        loop = asyncio.get_running_loop()
        self._running = True
        try:
            while not stop.is_set():
                if loop.time() >= next_round:
                    await self.round()
                    next_round = loop.time() + interval
                else:
                    await self._link_now()
                    await self._alert_now()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=min(CHAIN_EVERY, interval))
        finally:
            self._running = False
            with contextlib.suppress(Exception):
                await self._link_now()
                await self.chainer.stop()
