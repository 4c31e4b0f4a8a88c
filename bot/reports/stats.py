"""The numbers behind ``stats``, ``unlockbot report`` and the weekly digest, read from the bot's own database.

Only what the bot itself recorded is counted, so the numbers are the same whichever CRM backend answers:

- every unlock request (self-service or for an admin) is one lock, with its reason, the time it was filed
  and how it ended;
- a lock the bot saw without a request counts once per person, reason and day (and not at all on a day a
  request of that person names the same reason): the lock alert sent to the person (``alert.lock``), the
  admins' notice about a lock no unlock lifts (``notice.admin/lock_notice``) and a person asking to be told
  when it is over (``watch.started``) each record the reason in the audit event.

How a lock ended: ``self_service`` (the person's own code unlocked it), ``approved`` (an admin approved it,
or unlocked the account with ``unlock USER``), ``denied``, ``nobody`` (the request ran out or was
withdrawn, the unlock failed, or no request could be filed) and ``waiting`` (still pending). The time to
approval counts requests an admin approved after they were filed, not an admin's own ``unlock USER``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.crm.base import LockReason
from bot.requests.unlock_requests import Kind, Status
from bot.storage.models import AuditEvent, UnlockRequest

RESOLUTIONS = ("self_service", "approved", "denied", "nobody", "waiting")
# Audit actions that record a lock the bot saw without a request, with its reason in ``details``.
SEEN_WITHOUT_REQUEST = ("alert.lock", "notice.admin/lock_notice", "watch.started")
ADMIN_UNLOCKS = ("admin.unlock", "admin.unlock_forced")
DEFAULT_PERIOD = timedelta(days=30)
MOST_REPEATED = 5  # people named in the repeat lockouts
_PERIOD = re.compile(r"^\s*(\d+)\s*([dhw])\s*$", re.IGNORECASE)
_UNITS = {"d": timedelta(days=1), "h": timedelta(hours=1), "w": timedelta(weeks=1)}


class BadPeriod(ValueError):
    """A period such as ``--since`` that is not a number of days, hours or weeks."""


def parse_period(text: str) -> timedelta:
    """``30d``, ``12h``, ``2w`` as a span; ``BadPeriod`` for anything else (zero included)."""
    match = _PERIOD.match(text)
    if match is None or int(match[1]) == 0:
        raise BadPeriod(f"expected a period such as 30d, 7d or 12h, not {text!r}")
    return int(match[1]) * _UNITS[match[2].lower()]


@dataclass(frozen=True, slots=True)
class LockStats:
    """Locks the bot saw from ``since`` to ``until``, counted per day in ``zone``."""

    since: datetime
    until: datetime
    zone: str
    days: tuple[date, ...]
    # Reason code -> locks on each of ``days``; only reasons that occurred, most frequent first.
    per_day: Mapping[str, tuple[int, ...]]
    # Each of RESOLUTIONS -> how many locks ended that way (all present, zeros included).
    resolutions: Mapping[str, int]
    approval_p50: timedelta | None
    approval_p90: timedelta | None
    approvals_timed: int  # how many approvals the two figures above come from
    # People locked more than once in the period, most locks first: (CRM username, locks).
    repeated: tuple[tuple[str, int], ...]

    @property
    def total(self) -> int:
        return sum(self.resolutions.values())

    @property
    def by_reason(self) -> dict[str, int]:
        return {reason: sum(counts) for reason, counts in self.per_day.items()}

    def summary(self) -> dict[str, object]:
        """The numbers as a template context (plain data, storable in a notification)."""
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "hours": round((self.until - self.since) / timedelta(hours=1)),
            "total": self.total,
            "by_reason": self.by_reason,
            "resolutions": dict(self.resolutions),
            "approval_p50_minutes": minutes_of(self.approval_p50),
            "approval_p90_minutes": minutes_of(self.approval_p90),
            "approvals_timed": self.approvals_timed,
            "repeated_people": len(self.repeated),
            "repeated": [[name, count] for name, count in self.repeated[:MOST_REPEATED]],
        }


def minutes_of(span: timedelta | None) -> int | None:
    """A span in whole minutes, rounded up; ``None`` stays ``None``."""
    return None if span is None else max(0, math.ceil(span.total_seconds() / 60))


def percentile(values: Sequence[timedelta], share: float) -> timedelta | None:
    """The nearest-rank percentile: the smallest value that at least ``share`` of ``values`` do not exceed."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _resolution(request: UnlockRequest, admin_unlocks: set[int]) -> str:
    status = request.status
    if status == Status.PENDING.value:
        return "waiting"
    if status == Status.DENIED.value:
        return "denied"
    if request.kind == Kind.SELF_SERVICE.value:
        return "self_service" if status in (Status.APPROVED, Status.EXECUTING, Status.DONE) else "nobody"
    decided = request.decided_by is not None or request.id in admin_unlocks
    if decided and status in (Status.APPROVED, Status.EXECUTING, Status.DONE, Status.FAILED):
        return "approved"
    return "nobody"  # expired, withdrawn


def _reason(code: object) -> str:
    return str(code) if code in set(LockReason) else LockReason.UNKNOWN.value


async def gather(
    session: AsyncSession, *, now: datetime, period: timedelta = DEFAULT_PERIOD, zone: ZoneInfo | None = None
) -> LockStats:
    """Count the locks of the ``period`` up to ``now``; days are those of ``zone`` (UTC when not given)."""
    zone = zone or ZoneInfo("UTC")
    since = now - period
    requests = list(
        await session.scalars(
            select(UnlockRequest)
            .where(
                UnlockRequest.kind.in_([Kind.UNLOCK.value, Kind.SELF_SERVICE.value]),
                UnlockRequest.created_at >= since,
                UnlockRequest.created_at <= now,
            )
            .order_by(UnlockRequest.id)
        )
    )
    events = list(
        await session.execute(
            select(AuditEvent.action, AuditEvent.at, AuditEvent.subject, AuditEvent.details)
            .where(
                AuditEvent.action.in_([*SEEN_WITHOUT_REQUEST, *ADMIN_UNLOCKS]),
                AuditEvent.at >= since,
                AuditEvent.at <= now,
            )
            .order_by(AuditEvent.id)
        )
    )
    admin_unlocks = {
        int(details["request"])
        for action, _, _, details in events
        if action in ADMIN_UNLOCKS and isinstance(details.get("request"), int)
    }

    def day(moment: datetime) -> date:
        return moment.astimezone(zone).date()

    # One entry per lock: (day, reason, person, how it ended).
    locks: list[tuple[date, str, str, str]] = []
    approval_times: list[timedelta] = []
    for request in requests:
        resolution = _resolution(request, admin_unlocks)
        locks.append((day(request.created_at), _reason(request.reason), request.crm_username, resolution))
        if (
            resolution == "approved"
            and request.kind == Kind.UNLOCK.value
            and request.id not in admin_unlocks
            and request.decided_at is not None
        ):
            approval_times.append(request.decided_at - request.created_at)
    seen = {(d, reason, person) for d, reason, person, _ in locks}
    for action, at, subject, details in events:
        if action not in SEEN_WITHOUT_REQUEST:
            continue
        key = (day(at), _reason(details.get("reason")), subject)
        if key not in seen:  # the same lock told to the admins and watched by its person counts once
            seen.add(key)
            locks.append((*key, "nobody"))

    first, last = day(since), day(now)
    days = tuple(first + timedelta(days=n) for n in range((last - first).days + 1))
    index = {d: n for n, d in enumerate(days)}
    reasons = Counter(reason for _, reason, _, _ in locks)
    per_day = {reason: [0] * len(days) for reason, _ in reasons.most_common()}
    for d, reason, _, _ in locks:
        per_day[reason][index[d]] += 1
    ended = Counter(resolution for _, _, _, resolution in locks)
    people = Counter(person for _, _, person, _ in locks)
    repeated = tuple(sorted(((p, n) for p, n in people.items() if n > 1), key=lambda item: (-item[1], item[0])))
    return LockStats(
        since=since,
        until=now,
        zone=zone.key,
        days=days,
        per_day={reason: tuple(counts) for reason, counts in per_day.items()},
        resolutions={name: ended.get(name, 0) for name in RESOLUTIONS},
        approval_p50=percentile(approval_times, 0.5),
        approval_p90=percentile(approval_times, 0.9),
        approvals_timed=len(approval_times),
        repeated=repeated,
    )
