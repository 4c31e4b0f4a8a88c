"""The CRM interface every backend implements, and the facts it returns.

A backend answers in these neutral types whatever its vendor calls things, and
declares in ``capabilities`` what it can tell or do; a flow asks
``Capability.X in crm.capabilities`` before relying on it and says plainly
what the bot cannot check. Backends raise only ``bot.errors.CrmError`` and its
children: ``CrmUnavailable`` when the backend is down or slow.
"""

from __future__ import annotations

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
    SYSTEM_STATUS = "system_status"
    LOCK_STATISTICS = "lock_statistics"
    PROBE = "probe"


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
    location: str | None = None


@dataclass(frozen=True, slots=True)
class FlaggedAction:
    at: datetime
    action: str
    detail: str


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
class MaintenanceWindow:
    starts_at: datetime
    ends_at: datetime
    note: str = ""


@dataclass(frozen=True, slots=True)
class Incident:
    id: str
    title: str
    started_at: datetime
    status: str
    resolved_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the backend knows about why the account is locked. Shown only after TOTP."""

    failed_attempts: tuple[LoginAttempt, ...] = ()
    flagged_action: FlaggedAction | None = None
    licence: LicenceInfo | None = None
    ip: str | None = None
    location: str | None = None
    # For rate limits: how many operations in which window, and when the limit lifts.
    operations: int | None = None
    window_minutes: int | None = None
    lifts_at: datetime | None = None
    maintenance: MaintenanceWindow | None = None
    incident: Incident | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class LockStatus:
    username: str
    locked: bool
    reason: LockReason | None = None
    locked_at: datetime | None = None
    evidence: Evidence = field(default_factory=Evidence)


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

    async def system_status(self) -> SystemStatus: ...

    async def locks_since(self, since: datetime) -> int:
        """How many accounts were locked at or after ``since``."""
        ...

    async def probe(self) -> Reachability: ...

    async def aclose(self) -> None: ...
