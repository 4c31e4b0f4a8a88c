"""The CRM interface every backend implements, and the facts it returns.

A backend answers in these neutral types whatever its vendor calls things, and
declares in ``capabilities`` what it can tell or do; a flow asks
``Capability.X in crm.capabilities`` before relying on it and says plainly
what the bot cannot check. Backends raise only ``bot.errors.CrmError`` and its
children: ``CrmUnavailable`` when the backend is down or slow.

Facts that a reply puts into a sentence are structured (``ActionKind``,
``RecordType``, counts, ``IncidentState``, ``Place``) so that each locale's
templates can say them in their own words. The CRM's own text (an action's
name, a detail, an incident title, a note) is kept beside them, and a reply
shows it only as a quotation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class LockReason(StrEnum):
    """Why an account is locked: the canonical codes of the product."""

    FAILED_PASSWORD = "failed_password"  # noqa: S105 (a reason code, not a password)
    UNUSUAL_IP = "unusual_ip"
    LICENSE_EXPIRED = "license_expired"
    SEAT_LIMIT = "seat_limit"
    SYSTEM_FAULT = "system_fault"
    POLICY_VIOLATION = "policy_violation"
    NETWORK = "network"
    RATE_LIMIT = "rate_limit"
    TRIAL_LIMIT = "trial_limit"
    MAINTENANCE = "maintenance"
    UNKNOWN = "unknown"


class Capability(StrEnum):
    """What a backend can tell or do."""

    LOCK_STATUS = "lock_status"
    LOGIN_HISTORY = "login_history"
    UNLOCK = "unlock"
    RESET_PASSWORD = "reset_password"  # noqa: S105 (a capability name)
    TRUSTED_IPS = "trusted_ips"
    LICENCES = "licences"
    LICENCE_LIST = "licence_list"  # every licence of the company, for reminders before one ends
    SEAT_USAGE = "seat_usage"  # who holds a licence's seats, longest without signing in first
    SYSTEM_STATUS = "system_status"
    LOCK_STATISTICS = "lock_statistics"
    LOCK_EVENTS = "lock_events"  # each new lock, with its id, for telling the person at once
    PROBE = "probe"


def _code(text: object) -> str:
    """A vendor's word as a code: "Bulk Delete" and "bulk-delete" are both ``bulk_delete``."""
    return re.sub(r"[\s\-]+", "_", str(text).strip().lower())


class ActionKind(StrEnum):
    """What kind of action the CRM flagged, whatever the vendor calls it."""

    BULK_DELETE = "bulk_delete"
    BULK_EXPORT = "bulk_export"
    BULK_UPDATE = "bulk_update"
    PERMISSION_CHANGE = "permission_change"
    OTHER = "other"

    @classmethod
    def read(cls, text: str | None) -> ActionKind:
        """The kind a vendor's action code stands for; ``OTHER`` for anything else, prose included."""
        code = _code(text or "")
        return _ACTION_CODES.get(code) or (cls(code) if code in set(cls) else cls.OTHER)


_ACTION_CODES = {
    "mass_delete": ActionKind.BULK_DELETE,
    "mass_export": ActionKind.BULK_EXPORT,
    "export": ActionKind.BULK_EXPORT,
    "mass_update": ActionKind.BULK_UPDATE,
    "role_change": ActionKind.PERMISSION_CHANGE,
}


class RecordType(StrEnum):
    """The kind of CRM record an action touched."""

    CUSTOMER = "customer"
    CONTACT = "contact"
    LEAD = "lead"
    OPPORTUNITY = "opportunity"
    OTHER = "other"

    @classmethod
    def read(cls, text: object) -> RecordType | None:
        """The record type a vendor's word stands for; ``None`` when the CRM does not say."""
        if not text:
            return None
        code = _code(text).removesuffix("s")
        code = {"account": "customer", "deal": "opportunity", "opportunitie": "opportunity"}.get(code, code)
        return cls(code) if code in set(cls) else cls.OTHER


class IncidentState(StrEnum):
    """Where the fix of an incident stands (the states of common status pages)."""

    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"
    UNKNOWN = "unknown"

    @classmethod
    def read(cls, status: str | None) -> IncidentState:
        code = _code(status or "")
        code = _INCIDENT_WORDS.get(code, code)
        return cls(code) if code in set(cls) else cls.UNKNOWN


_INCIDENT_WORDS = {
    "open": "investigating",
    "new": "investigating",
    "in_progress": "identified",
    "fixing": "identified",
    "fixed": "monitoring",
    "closed": "resolved",
}

_CITY_AND_COUNTRY = re.compile(r"^\s*(?P<city>[^,]+?)\s*,\s*(?P<country>[A-Za-z]{2})\s*$")


@dataclass(frozen=True, slots=True)
class Place:
    """Where a sign-in came from, as the CRM's geo-IP lookup has it."""

    country: str | None = None  # ISO 3166-1 alpha-2, e.g. "CN"
    city: str | None = None  # as the CRM spells it, e.g. "Chengdu"
    # The city's name per locale ("zh-CN": "成都") when the CRM's geo data gives it.
    city_names: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, text: str | None) -> Place | None:
        """A place from the usual "City, CC" text, or a bare country code; ``None`` for any other text."""
        if not text:
            return None
        found = _CITY_AND_COUNTRY.match(text)
        if found:
            return cls(country=found["country"].upper(), city=found["city"])
        if re.fullmatch(r"[A-Z]{2}", text.strip()):
            return cls(country=text.strip())
        return None


@dataclass(frozen=True, slots=True)
class Account:
    username: str
    email: str
    display_name: str
    active: bool = True


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    at: datetime
    ip: str
    success: bool
    location: str | None = None  # the CRM's own text
    place: Place | None = None  # left out: read from ``location`` where it has the usual form

    def __post_init__(self) -> None:
        if self.place is None:
            object.__setattr__(self, "place", Place.read(self.location))


@dataclass(frozen=True, slots=True)
class FlaggedAction:
    at: datetime
    action: str  # the CRM's own name for it
    detail: str  # the CRM's own words
    kind: ActionKind = ActionKind.OTHER  # left as OTHER: read from ``action`` when that is a known code
    records: int | None = None  # how many records it touched
    record_type: RecordType | None = None

    def __post_init__(self) -> None:
        if self.kind is ActionKind.OTHER:
            object.__setattr__(self, "kind", ActionKind.read(self.action))


@dataclass(frozen=True, slots=True)
class LicenceInfo:
    name: str
    expires_at: datetime | None
    seats_total: int | None
    seats_used: int | None
    trial: bool = False
    usage_cap: int | None = None
    usage_used: int | None = None


@dataclass(frozen=True, slots=True)
class SeatHolder:
    """An active account that takes one of a licence's seats, and when it last signed in (``None``: never)."""

    username: str
    display_name: str
    last_sign_in_at: datetime | None


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    starts_at: datetime
    ends_at: datetime
    note: str = ""


@dataclass(frozen=True, slots=True)
class Incident:
    id: str
    title: str  # the CRM's own words
    started_at: datetime
    status: str  # the CRM's own word
    resolved_at: datetime | None = None
    state: IncidentState = field(init=False)  # always read from ``status``

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", IncidentState.read(self.status))


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the backend knows about why the account is locked. Shown only after TOTP."""

    failed_attempts: tuple[LoginAttempt, ...] = ()
    flagged_action: FlaggedAction | None = None
    licence: LicenceInfo | None = None
    ip: str | None = None
    location: str | None = None  # the CRM's own text for where ``ip`` is
    # For rate limits: how many operations in which window, and when the limit lifts.
    operations: int | None = None
    window_minutes: int | None = None
    lifts_at: datetime | None = None
    maintenance: MaintenanceWindow | None = None
    incident: Incident | None = None
    detail: str = ""  # the CRM's own words
    place: Place | None = None  # left out: read from ``location`` where it has the usual form

    def __post_init__(self) -> None:
        if self.place is None:
            object.__setattr__(self, "place", Place.read(self.location))


@dataclass(frozen=True, slots=True)
class LockStatus:
    username: str
    locked: bool
    reason: LockReason | None = None
    locked_at: datetime | None = None
    evidence: Evidence = field(default_factory=Evidence)


@dataclass(frozen=True, slots=True)
class LockEvent:
    """One lock as it happened: who, why, when, and the backend's own id for it (stable across reads)."""

    id: str
    username: str
    reason: LockReason
    at: datetime


@dataclass(frozen=True, slots=True)
class SystemStatus:
    """System-wide facts; ``None`` in a field means the backend cannot tell."""

    maintenance: tuple[MaintenanceWindow, ...] = ()
    incidents: tuple[Incident, ...] = ()
    last_backup_at: datetime | None = None
    writes_paused: bool | None = None
    inbound_channels: Mapping[str, bool] | None = None


@dataclass(frozen=True, slots=True)
class Reachability:
    reachable: bool
    latency_ms: float | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PasswordReset:
    """How the new password reaches the person; never the password itself."""

    sent_to: str | None  # a masked address, e.g. a***@example.com


class CrmBackend(Protocol):
    """What every CRM backend offers; see ``capabilities`` for what it really supports."""

    name: str

    @property
    def capabilities(self) -> frozenset[Capability]: ...

    async def find_account(self, query: str) -> Account | None:
        """The account whose username or e-mail is ``query``, if any."""
        ...

    async def lock_status(self, username: str) -> LockStatus: ...

    async def unlock(self, username: str, *, idempotency_key: str) -> None:
        """Unlock; a second call with the same key does nothing."""
        ...

    async def reset_password(self, username: str, *, idempotency_key: str) -> PasswordReset: ...

    async def add_trusted_ip(self, username: str, ip: str, *, note: str) -> None: ...

    async def licence(self, username: str) -> LicenceInfo | None: ...

    async def all_licences(self) -> list[LicenceInfo]:
        """Every licence and trial the company holds, with its end and its seats."""
        ...

    async def inactive_users(self, licence: str, *, limit: int) -> list[SeatHolder]:
        """Up to ``limit`` active accounts holding a seat of ``licence``, the longest without a sign-in first."""
        ...

    async def system_status(self) -> SystemStatus: ...

    async def locks_since(self, since: datetime) -> int:
        """How many accounts were locked at or after ``since``."""
        ...

    async def lock_events(self, since: datetime) -> list[LockEvent]:
        """Each lock that began at or after ``since``, oldest first (capability ``lock_events``)."""
        ...

    async def probe(self) -> Reachability: ...

    async def aclose(self) -> None: ...
