"""Turning CRM facts into template context: plain data, safe to store with a conversation."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from bot.crm.base import Evidence, LockStatus


def plain(value: Any) -> Any:
    """Dataclasses as dicts, tuples as lists, datetimes kept (the stored form encodes them)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, datetime | str | int | float | bool) or value is None:
        return value
    return str(value)


def public_facts(status: LockStatus) -> dict[str, Any]:
    """What may be said before the person proves who they are: nothing about logins or actions."""
    evidence = status.evidence
    return {
        "maintenance": plain(evidence.maintenance),
        "incident": plain(evidence.incident),
        "lifts_at": evidence.lifts_at,
    }


def json_evidence(evidence: Evidence) -> dict[str, Any]:
    """Evidence for a database JSON column: datetimes as ISO strings."""

    def encode(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, dict):
            return {k: encode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [encode(v) for v in value]
        return value

    encoded: dict[str, Any] = encode(plain(evidence))
    return encoded
