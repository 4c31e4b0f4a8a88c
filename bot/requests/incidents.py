"""Incident detection: more locks in a short window than the recent baseline, told once to the admins.

The seed's fourth and fifth cases are found by watching: many people locked at once points to the
system, not to each of them. ``detect`` compares the locks of the last ``[alerts]
incident_window_minutes`` with what a window that long held on average over the
``incident_baseline_hours`` before it; ``record`` keeps the finding in ``detected_incidents`` (one row
while it lasts) and tells the admins once, with the breakdown by reason and the first people affected.
``open_incident`` is what the "is this normal?" and "is it just me?" answers read while it lasts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.crm.base import LockEvent
from bot.requests import audit
from bot.requests.notifications import notify
from bot.storage import leases
from bot.storage.models import DetectedIncident

ACTOR = "alerts"
NEW_INCIDENT = "incident.new"  # the lease taken by whoever starts a new incident
FIRST_SHOWN = 5  # how many of the first affected people the admins' notice names


@dataclass(frozen=True, slots=True)
class Finding:
    """What the window holds against the baseline."""

    locks: int
    expected: float  # locks a window this long held on average before it
    window: timedelta
    by_reason: dict[str, int]
    first: tuple[str, ...]  # the people locked first in the window, earliest first
    started_at: datetime


def detect(
    events: Sequence[LockEvent],
    *,
    now: datetime,
    window: timedelta,
    baseline: timedelta,
    factor: float,
    minimum: int,
) -> Finding | None:
    """An incident in ``events`` (read back at least ``baseline``), or ``None`` when the window looks usual."""
    recent = sorted((e for e in events if now - window <= e.at <= now), key=lambda e: (e.at, e.id))
    before = [e for e in events if now - baseline <= e.at < now - window]
    expected = len(before) * (window / (baseline - window))
    if len(recent) < minimum or len(recent) <= factor * expected:
        return None
    first: list[str] = []
    for event in recent:
        if event.username not in first:
            first.append(event.username)
    reasons = Counter(e.reason.value for e in recent)
    return Finding(
        locks=len(recent),
        expected=expected,
        window=window,
        by_reason=dict(reasons.most_common()),
        first=tuple(first[:FIRST_SHOWN]),
        started_at=recent[0].at,
    )


_LATEST = select(DetectedIncident).order_by(DetectedIncident.last_seen_at.desc()).limit(1)


async def open_incident(session: AsyncSession, *, now: datetime) -> DetectedIncident | None:
    """The incident still under way (locks kept coming faster than usual within its window), if any."""
    latest = await session.scalar(_LATEST)
    if latest is None or latest.last_seen_at < now - timedelta(minutes=latest.window_minutes):
        return None
    return latest


def described(incident: DetectedIncident) -> dict[str, Any]:
    """An incident as replies and notices mention it (plain data, kept in a notification as it is)."""
    return {
        "locks": incident.locks,
        "window_minutes": round(incident.window_minutes),
        "expected": round(incident.expected, 1),
        "by_reason": dict(incident.by_reason),
        "first": list(incident.first_people),
        "started_at": incident.started_at.isoformat(),
        "told": incident.told_at is not None,  # the admins have heard of it
    }


async def record(session: AsyncSession, *, now: datetime, finding: Finding, admins: Sequence[str]) -> bool:
    """Keep ``finding`` as the incident under way (a new one if none is); ``True`` when the admins were told now.

    The notice is claimed by a conditional UPDATE of the row, so of several replicas one sends it, once.
    """
    incident = await open_incident(session, now=now)
    if incident is None:
        # Claimed before the row is written: two replicas that both find none open (neither has committed
        # yet) would otherwise start two incidents and tell the admins twice.
        if not await leases.claim(session, NEW_INCIDENT, ACTOR, now=now, ttl=finding.window):
            return False
        incident = DetectedIncident(
            started_at=finding.started_at,
            last_seen_at=now,
            window_minutes=finding.window / timedelta(minutes=1),
            locks=finding.locks,
            expected=finding.expected,
            by_reason=finding.by_reason,
            first_people=list(finding.first),
        )
        session.add(incident)
        await session.flush()
    else:
        incident.last_seen_at = now
        if finding.locks > incident.locks:  # the worst window seen is the one said
            incident.locks, incident.by_reason = finding.locks, finding.by_reason
        incident.first_people = (
            list(incident.first_people) + [p for p in finding.first if p not in incident.first_people]
        )[:FIRST_SHOWN]
    if not admins:
        return False
    claimed = await session.scalar(
        update(DetectedIncident)
        .where(DetectedIncident.id == incident.id, DetectedIncident.told_at.is_(None))
        .values(told_at=now)
        .returning(DetectedIncident.id)
        .execution_options(synchronize_session=False)
    )
    if claimed is None:
        return False
    incident.told_at = now  # set by the UPDATE above, which the session does not see
    context = described(incident)
    await notify(session, now=now, usernames=admins, template="admin/incident", context=context)
    await audit.record(
        session,
        at=now,
        actor=ACTOR,
        action="incident.detected",
        subject=f"incident:{incident.id}",
        details={**context, "to": list(admins)},
    )
    return True
