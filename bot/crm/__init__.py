"""The CRM interface and its backends; flows reach the CRM only through ``CrmBackend``."""

from bot.crm.base import (
    Account,
    Capability,
    CrmBackend,
    Evidence,
    FlaggedAction,
    Incident,
    LicenceInfo,
    LockReason,
    LockStatus,
    LoginAttempt,
    MaintenanceWindow,
    PasswordReset,
    Reachability,
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
    "LockReason",
    "LockStatus",
    "LoginAttempt",
    "MaintenanceWindow",
    "PasswordReset",
    "Reachability",
    "SystemStatus",
]
