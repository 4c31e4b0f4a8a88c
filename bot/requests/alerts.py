"""Telling people before they ask: a lock as it happens, a maintenance window ahead and once it is over.

The housekeeper calls ``Alerts.poll_if_due`` in every round; every ``[alerts] poll_seconds`` one replica
claims the period (``bot.storage.leases.claim``) and reads what is new:

- **Locks.** The CRM's lock events (capability ``lock_events``) since where the last read stopped, a
  little before it (``OVERLAP``: an event the CRM wrote late is still found). Each linked person whose
  account was locked gets a direct message: the reason in the words the "why am I locked" answer uses,
  what happens next, and the buttons to unlock (or ask for it) and to ask. Each event is claimed by its
  id when first read, in the same transaction as the message and its audit event: told once however often
  it is read and however many replicas read it, or never when its person was opted out or not linked then.
- **Maintenance.** The CRM's system status (capability ``system_status``): a window is announced
  ``[alerts] maintenance_notice_hours`` before it starts and again once it ends
  (``bot.requests.maintenance``).

The same read, reaching back ``[alerts] incident_baseline_hours``, feeds incident detection
(``bot.requests.incidents``): many more locks at once than usual is told to the admins once.

People who said "stop alerts" ("不要再提醒") are skipped until they say "start alerts" ("恢复提醒")
(``bot.requests.opt_outs``). Backends that cannot list new locks (Salesforce, Keycloak) are
never asked, and ``unlockbot crm check`` says so.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.config import AlertSettings
from bot.crm.base import Capability, CrmBackend, LockEvent, LockReason
from bot.errors import CrmError
from bot.messages import Button
from bot.requests import audit, incidents
from bot.requests.maintenance import announce_maintenance
from bot.requests.notifications import MENU, notify
from bot.requests.opt_outs import reachable
from bot.requests.policy import UnlockPolicy, first_step
from bot.requests.unlock_requests import open_request
from bot.storage import leases
from bot.storage.db import Database
from bot.storage.models import AlertCursor
from bot.storage.upsert import insert_if_absent

log = logging.getLogger(__name__)

ACTOR = "alerts"
POLL_LEASE = "alerts.poll"
LOCK_FEED = "crm.lock_events"
# Each read starts this far before where the last one stopped: an event the CRM committed late, or stamped
# with a clock a little behind ours, is still found; the claim per event keeps it from being told twice.
OVERLAP = timedelta(minutes=2)
# A lock older than this is not told (a bot that was down for days): the person found out long ago.
TOO_LATE = timedelta(hours=12)
# The claim on an event outlives every read that could still return it.
TOLD_FOR = TOO_LATE + OVERLAP + timedelta(days=1)


# --- what a lock alert offers ---------------------------------------------------------------------------------


def lock_buttons(policy: UnlockPolicy, reason: LockReason, *, open_request: bool) -> tuple[Button, ...]:
    """The next step the "why am I locked" answer offers for ``reason``, then asking and the menu."""
    first = first_step(policy.rule(reason).path, open_request=open_request, when_nobody=Button("watch", "watch"))
    return (*((first,) if first is not None else ()), Button("why", "why"), Button("ask", "ask"), MENU)


async def tell_locks(
    session: AsyncSession,
    *,
    now: datetime,
    events: Sequence[LockEvent],
    policy: UnlockPolicy,
    system: str,
    holder: str = ACTOR,
    lifted: Collection[str] = (),
) -> list[str]:
    """Tell each reachable person their new lock, each event once (claimed by its id); the usernames told.

    Events in ``lifted`` (ids of locks the CRM no longer holds: unlocked since, or a different lock now) are
    claimed without a word.
    """
    people = await reachable(session, (e.username for e in events))
    told = []
    for event in events:
        if event.at < now - TOO_LATE:
            continue
        # Decided once, when first read: a lock of someone opted out (or not linked) then stays untold.
        if not await leases.claim(session, f"lock-event:{system}:{event.id}", holder, now=now, ttl=TOLD_FOR):
            continue  # read before, by this process or another
        if event.username not in people or event.id in lifted:
            continue
        context = {"reason": event.reason.value, "locked_at": event.at.isoformat()}
        waiting = await open_request(session, event.username) is not None
        await notify(
            session,
            now=now,
            usernames=[event.username],
            template="alerts/locked",
            context=context,
            buttons=lock_buttons(policy, event.reason, open_request=waiting),
        )
        await audit.record(
            session,
            at=now,
            actor=ACTOR,
            action="alert.lock",
            subject=event.username,
            details={"event": event.id, "reason": event.reason.value, "locked_at": event.at.isoformat()},
        )
        told.append(event.username)
    return told


# --- the housekeeper's part -------------------------------------------------------------------------------------


class Alerts:
    """What the housekeeper runs: every ``poll_seconds``, one replica reads new locks and maintenance windows."""

    def __init__(
        self,
        database: Database,
        crm: CrmBackend,
        clock: Clock,
        settings: AlertSettings,
        policy: UnlockPolicy,
        *,
        admins: tuple[str, ...] = (),
    ) -> None:
        self._db = database
        self._admins = admins
        self._crm = crm
        self._clock = clock
        self._settings = settings
        self._policy = policy
        self._every = timedelta(seconds=settings.poll_seconds)
        self._next_at: datetime | None = None
        self.holder = leases.process_holder(ACTOR)

    async def poll_if_due(self) -> list[str]:
        """Read and tell what is new, when this period is due and this process claims it; what was told."""
        if not self._settings.enabled:
            return []
        can = self._crm.capabilities
        if Capability.LOCK_EVENTS not in can and Capability.SYSTEM_STATUS not in can:
            return []
        now = self._clock.now()
        if self._next_at is not None and now < self._next_at:
            return []
        self._next_at = now + self._every
        async with self._db.session() as session, session.begin():
            if not await leases.claim(session, POLL_LEASE, self.holder, now=now, ttl=self._every):
                return []  # another replica reads this period
        told: list[str] = []
        if Capability.LOCK_EVENTS in can:
            told += await self._locks(now)
        if Capability.SYSTEM_STATUS in can:
            told += await self._maintenance(now)
        return told

    async def _locks(self, now: datetime) -> list[str]:
        async with self._db.session() as session, session.begin():
            cursor = await session.get(AlertCursor, LOCK_FEED)
            if cursor is None:
                # The first read ever: the last moments only, not the CRM's whole history.
                start = now - OVERLAP
                await insert_if_absent(
                    session, AlertCursor, {"name": LOCK_FEED, "started_at": start, "read_until": start}
                )
                since = start
            else:
                since = max(cursor.read_until - OVERLAP, cursor.started_at, now - TOO_LATE)
        settings = self._settings
        baseline = timedelta(hours=settings.incident_baseline_hours)
        try:
            # One read serves both: the new locks to tell, and the day before them for the baseline.
            events = await self._crm.lock_events(min(since, now - baseline))
        except CrmError as exc:  # read again from the same place next time
            log.warning("could not read the CRM's new locks for alerts: %s", exc)
            return []
        finding = incidents.detect(
            events,
            now=now,
            window=timedelta(minutes=settings.incident_window_minutes),
            baseline=baseline,
            factor=settings.incident_factor,
            minimum=settings.incident_min_locks,
        )
        new = [event for event in events if event.at >= since]
        lifted = await self._lifted(new)
        async with self._db.session() as session, session.begin():
            told = await tell_locks(
                session,
                now=now,
                events=new,
                policy=self._policy,
                system=self._crm.name,
                holder=self.holder,
                lifted=lifted,
            )
            found = finding is not None and await incidents.record(
                session, now=now, finding=finding, admins=self._admins
            )
            await session.execute(
                update(AlertCursor)
                .where(AlertCursor.name == LOCK_FEED, AlertCursor.read_until < now)
                .values(read_until=now)
            )
        if told:
            log.info("lock alerts sent to %s", ", ".join(told))
        if found and finding is not None:
            log.warning(
                "incident: %s locks in %g minutes, where about %.1f are usual; the admins are told",
                finding.locks,
                settings.incident_window_minutes,
                finding.expected,
            )
        return [f"lock:{username}" for username in told] + (["incident"] if found else [])

    async def _lifted(self, events: Sequence[LockEvent]) -> set[str]:
        """The events whose lock the CRM no longer holds (the person unlocked since, or is locked otherwise).

        Asked per person before anyone is told, so nobody hears of a lock that is over. When the CRM cannot
        say, the event stands: it came from the CRM a moment ago.
        """
        latest: dict[str, LockEvent] = {}
        for event in sorted(events, key=lambda e: e.at):
            latest[event.username] = event
        lifted = {event.id for event in events if latest[event.username] is not event}
        for username, event in latest.items():
            try:
                status = await self._crm.lock_status(username)
            except CrmError as exc:
                log.info("could not check the lock of %s before alerting; telling it: %s", username, exc)
                continue
            if not status.locked or status.reason is not event.reason:
                lifted.add(event.id)
        return lifted

    async def _maintenance(self, now: datetime) -> list[str]:
        try:
            status = await self._crm.system_status()
        except CrmError as exc:
            log.warning("could not read the CRM's maintenance windows for notices: %s", exc)
            return []
        notice = timedelta(hours=self._settings.maintenance_notice_hours)
        async with self._db.session() as session, session.begin():
            return await announce_maintenance(session, now=now, windows=status.maintenance, notice=notice)
