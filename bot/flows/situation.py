"""What the person's own lock and the live CRM facts already say about a worry, read once per answer.

Every worry (is it my network, is my data safe, is this normal, when can I sign
in again, ...) is answered from one ``Situation``: the person's lock, the open
incidents, the maintenance window under way or coming, their open request and,
where the worry needs it, the server's reachability probe and how many others
were locked. ``verdict`` turns it into the one line said before anything else
("No: your account is locked because the licence expired, not because of your
network"), and ``WorryVerdict.facts`` carries the same facts to every template.
Because every worry reads the same facts in the same way, answers cannot
contradict each other: while an incident is open, every answer knows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from bot.crm.base import (
    Capability,
    Incident,
    LockReason,
    LockStatus,
    MaintenanceWindow,
    Reachability,
    SystemStatus,
)
from bot.errors import CrmUnavailable
from bot.flows.base import Turn
from bot.flows.facts import plain
from bot.messages import Button
from bot.requests.incidents import described, open_incident
from bot.requests.policy import Path, first_step
from bot.requests.unlock_requests import open_request

# A maintenance window that starts within this is worth mentioning; later ones are not news yet.
NEAR = timedelta(hours=24)
# "Others locked" counts the accounts locked within this span.
RECENT = timedelta(hours=1)

# Locks that come from what happened on the person's own account: the security rules working as designed.
SECURITY_RULES = frozenset({LockReason.FAILED_PASSWORD, LockReason.UNUSUAL_IP, LockReason.RATE_LIMIT})
LICENCE_LOCKS = frozenset({LockReason.LICENSE_EXPIRED, LockReason.SEAT_LIMIT, LockReason.TRIAL_LIMIT})
# Locks that hit the whole CRM rather than one account.
SYSTEM_WIDE = frozenset({LockReason.SYSTEM_FAULT, LockReason.MAINTENANCE})


class Worry(StrEnum):
    NETWORK = "network"
    DATA = "data"
    NORMAL = "normal"
    RECEIVE = "receive"
    IMPACT = "impact"
    USAGE = "usage"
    MAINTENANCE = "maintenance"
    FAULT = "fault"
    WHEN_BACK = "when_back"
    SIGN_IN = "sign_in"


@dataclass(frozen=True, slots=True)
class Situation:
    """The facts about one person right now; ``None`` where the bot does not know."""

    now: datetime
    username: str | None
    status: LockStatus | None  # None: not linked, or the CRM could not tell
    system: SystemStatus | None  # None: the backend cannot tell, or did not answer
    path: Path | None  # the policy's path for the person's lock
    request: dict[str, Any] | None  # the person's unlock still in progress
    probe: Reachability | None = None
    others_locked: int | None = None  # locked within RECENT, the person's own lock not counted
    # More locks at once than usual, as the housekeeper found it (``bot.requests.incidents``), while it lasts.
    lock_wave: dict[str, Any] | None = None
    crm_failed: bool = False  # the CRM did not answer something we asked

    @property
    def locked(self) -> bool | None:
        return None if self.status is None else self.status.locked

    @property
    def reason(self) -> LockReason | None:
        if self.status is None or not self.status.locked:
            return None
        return self.status.reason or LockReason.UNKNOWN

    @property
    def incidents(self) -> tuple[Incident, ...]:
        """Every open incident, the one named on the person's lock included."""
        found = [i for i in (self.system.incidents if self.system else ()) if i.resolved_at is None]
        own = self.status.evidence.incident if self.status is not None and self.status.locked else None
        if own is not None and own.resolved_at is None and all(i.id != own.id for i in found):
            found.insert(0, own)
        return tuple(found)

    @property
    def lock_incident(self) -> Incident | None:
        """The fault the person's lock is about, when it is one."""
        if self.reason is not LockReason.SYSTEM_FAULT:
            return None
        assert self.status is not None
        return self.status.evidence.incident or next(iter(self.incidents), None)

    @property
    def windows(self) -> tuple[MaintenanceWindow, ...]:
        """Maintenance under way now or starting soon: the only windows worth mentioning."""
        found = [
            w
            for w in (self.system.maintenance if self.system else ())
            if w.ends_at > self.now and w.starts_at <= self.now + NEAR
        ]
        own = self.lock_window
        if own is not None and own not in found:
            found.insert(0, own)
        return tuple(found)

    @property
    def lock_window(self) -> MaintenanceWindow | None:
        """The maintenance the person's lock is about, when it is one."""
        if self.reason is not LockReason.MAINTENANCE:
            return None
        assert self.status is not None
        if self.status.evidence.maintenance is not None:
            return self.status.evidence.maintenance
        under_way = [w for w in (self.system.maintenance if self.system else ()) if w.starts_at <= self.now]
        return next(iter(under_way), None)

    def facts(self) -> dict[str, Any]:
        """The situation as template context: plain data, safe to store with the conversation."""
        lock_incident, lock_window = self.lock_incident, self.lock_window
        status = self.status
        return {
            "locked": self.locked,
            "reason": self.reason.value if self.reason else None,
            "locked_at": status.locked_at if status is not None and status.locked else None,
            "path": self.path.value if self.path else None,
            "lifts_at": status.evidence.lifts_at if status is not None and status.locked else None,
            "lock_incident": plain(lock_incident),
            "lock_window": plain(lock_window),
            # What else is going on, beyond what the person's own lock is about.
            "other_incidents": plain([i for i in self.incidents if lock_incident is None or i.id != lock_incident.id]),
            "other_windows": plain([w for w in self.windows if w != lock_window]),
            "incidents": plain(self.incidents),
            "windows": plain(self.windows),
            "system_known": self.system is not None,
            "last_backup_at": self.system.last_backup_at if self.system else None,
            "writes_paused": self.system.writes_paused if self.system else None,
            "request": self.request,
            "probe": plain(self.probe),
            "others_locked": self.others_locked,
            "lock_wave": self.lock_wave,
            "window_minutes": int(RECENT.total_seconds() // 60),
            "crm_failed": self.crm_failed,
            "now": self.now,
        }


@dataclass(frozen=True, slots=True)
class WorryVerdict:
    """What the person's situation already says about one worry.

    ``key`` names the one line said first (``None``: the situation does not
    answer it, so only the general answer is given); ``facts`` are the
    situation's facts for the template.
    """

    worry: Worry
    key: str | None
    facts: dict[str, Any]

    def context(self, **more: Any) -> dict[str, Any]:
        return {"worry": self.worry.value, "verdict": self.key, "facts": self.facts, **more}


async def read_situation(turn: Turn, *, probe: bool = False, count_others: bool = False) -> Situation:
    """Ask the CRM once for everything a worry's answer may mention.

    A CRM that does not answer is itself a fact: it is recorded, and nothing
    more is asked of it (each question would only wait for its time limit).
    """
    crm = turn.services.crm
    can = crm.capabilities
    username = turn.username
    reach = await crm.probe() if probe and Capability.PROBE in can else None
    failed = reach is not None and not reach.reachable
    status: LockStatus | None = None
    system: SystemStatus | None = None
    others: int | None = None
    if not failed:
        try:
            if username is not None and Capability.LOCK_STATUS in can:
                status = await crm.lock_status(username)
            if Capability.SYSTEM_STATUS in can:
                system = await crm.system_status()
            if count_others and Capability.LOCK_STATISTICS in can:
                others = await crm.locks_since(turn.now - RECENT)
                own_at = status.locked_at if status is not None and status.locked else None
                if others and own_at is not None and own_at >= turn.now - RECENT:
                    others -= 1  # "others": the person's own lock is not one of them
        except CrmUnavailable:
            failed = True
    wave = None
    if count_others:
        found = await open_incident(turn.session, now=turn.now)
        wave = described(found) if found is not None else None
    request = None
    if username is not None:
        pending = await open_request(turn.session, username)
        if pending is not None:
            request = {
                "id": pending.id,
                "kind": pending.kind,
                "status": pending.status,
                "expires_at": pending.expires_at,
            }
    reason = (status.reason or LockReason.UNKNOWN) if status is not None and status.locked else None
    return Situation(
        now=turn.now,
        username=username,
        status=status,
        system=system,
        path=turn.services.policy.rule(reason).path if reason is not None else None,
        request=request,
        probe=reach,
        others_locked=others,
        lock_wave=wave,
        crm_failed=failed,
    )


def next_step(situation: Situation) -> tuple[Button, ...]:
    """The button that moves this person on, whatever they asked: their request, an unlock, or when it ends."""
    if situation.locked is False and situation.request is None:
        return (Button("sign_in", "cannot_sign_in"),)
    step = first_step(
        situation.path, open_request=situation.request is not None, when_nobody=Button("when_back", "when_back")
    )
    return (step,) if step is not None else ()


def verdict(situation: Situation, worry: Worry) -> WorryVerdict:
    """The one line the person's own situation says first about ``worry``, and the facts behind it."""
    return WorryVerdict(worry, _KEYS[worry](situation), situation.facts())


def _unknown_or_not_locked(situation: Situation) -> str | None:
    """``None`` when the bot cannot tell whether the person is locked; "not_locked" when they are not."""
    return None if situation.locked is None else "not_locked"


def _network(s: Situation) -> str | None:
    if s.reason is None:
        return _unknown_or_not_locked(s)
    if s.reason is LockReason.NETWORK:
        return "yours"
    if s.reason is LockReason.UNKNOWN:
        return None  # the CRM does not say, so the connection is worth checking
    return "not_network"


def _data(s: Situation) -> str | None:
    return "reason" if s.reason is not None else _unknown_or_not_locked(s)


def _normal(s: Situation) -> str | None:
    reason = s.reason
    if reason is None:
        return _unknown_or_not_locked(s)
    if s.lock_wave is not None and reason not in SYSTEM_WIDE | LICENCE_LOCKS:
        # The rule that locked this one account may be ordinary; so many locks at once are not.
        return "wave"
    if reason in SECURITY_RULES:
        return "security_rule"
    if reason in LICENCE_LOCKS:
        return "licence"
    return {
        LockReason.POLICY_VIOLATION: "flagged",
        LockReason.NETWORK: "session",
        LockReason.MAINTENANCE: "maintenance",
        LockReason.SYSTEM_FAULT: "fault",
    }.get(reason, "unclear")


def _receive(s: Situation) -> str | None:
    if s.reason is None:
        return _unknown_or_not_locked(s)
    return "system" if s.reason in SYSTEM_WIDE else "lock_only"


def _usage(s: Situation) -> str | None:
    if s.reason is None:
        return _unknown_or_not_locked(s)
    return {LockReason.RATE_LIMIT: "rate_limit", LockReason.TRIAL_LIMIT: "trial"}.get(s.reason, "not_usage")


def _maintenance(s: Situation) -> str | None:
    if s.reason is LockReason.MAINTENANCE:
        return "yours"
    if s.reason is not None:
        return "not_yours"
    return _unknown_or_not_locked(s)


def _fault(s: Situation) -> str | None:
    if s.reason is LockReason.SYSTEM_FAULT:
        return "yours" if s.lock_incident is not None else "yours_unlisted"
    if s.reason is not None:
        return "not_yours"
    return _unknown_or_not_locked(s)


def _when_back(s: Situation) -> str | None:
    if s.reason is None:
        return None if s.locked is None else "now"
    if s.request is not None:
        return "request"
    if s.path is Path.SELF_SERVICE:
        return "self_service"
    if s.path is Path.APPROVAL:
        return "approval"
    return {
        LockReason.MAINTENANCE: "maintenance",
        LockReason.SYSTEM_FAULT: "fault",
        LockReason.LICENSE_EXPIRED: "licence",
        LockReason.TRIAL_LIMIT: "trial",
    }.get(s.reason, "admins")


def _sign_in(s: Situation) -> str | None:
    if s.reason is not None:
        return "locked"
    return _unknown_or_not_locked(s)


_KEYS = {
    Worry.NETWORK: _network,
    Worry.DATA: _data,
    Worry.NORMAL: _normal,
    Worry.RECEIVE: _receive,
    Worry.IMPACT: _when_back,  # what a lock costs this person is how long it keeps them out
    Worry.USAGE: _usage,
    Worry.MAINTENANCE: _maintenance,
    Worry.FAULT: _fault,
    Worry.WHEN_BACK: _when_back,
    Worry.SIGN_IN: _sign_in,
}
