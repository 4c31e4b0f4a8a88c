"""The CRM interface and its backends; flows reach the CRM only through ``CrmBackend``."""

from bot.crm.base import (
    Account,
    Capability,
    CrmBackend,
    Evidence,
    FlaggedAction,
    Incident,
    LicenceInfo,
    LockEvent,
    LockReason,
    LockStatus,
    LoginAttempt,
    MaintenanceWindow,
    PasswordReset,
    Reachability,
    SeatHolder,
    SystemStatus,
)

__all__ = [
    "Account",
    "Capability",
    "CrmBackend",
    "Evidence",
    "FlaggedAction",
    "Incident",
    "LicenceInfo",
    "LockEvent",
    "LockReason",
    "LockStatus",
    "LoginAttempt",
    "MaintenanceWindow",
    "PasswordReset",
    "Reachability",
    "SeatHolder",
    "SystemStatus",
]
