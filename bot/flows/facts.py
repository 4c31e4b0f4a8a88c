"""Turning CRM facts into template context: plain data, safe to store with a conversation."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from bot.crm.base import Capability, CrmBackend, Evidence, LicenceInfo, LockStatus
from bot.errors import CrmError


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


def stored(value: Any) -> Any:
    """A fact as a database JSON column keeps it: plain data, datetimes as ISO strings."""

    def encode(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, dict):
            return {k: encode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [encode(v) for v in value]
        return value

    return encode(plain(value))


def json_evidence(evidence: Evidence) -> dict[str, Any]:
    """Evidence for a database JSON column: datetimes as ISO strings."""
    encoded: dict[str, Any] = stored(evidence)
    return encoded


# --- seat-limit requests --------------------------------------------------------------------------------------
# The facts an admin decides a seat-limit request with: the seats in use of those paid for, and who could free
# one. Gathered once, when the request is filed, and kept with its evidence, so that every copy of the card (in
# a chat, on an admin channel, redrawn later by any replica) shows the same facts without asking the CRM again.
# The seat holders are the few licensed accounts that have gone longest without signing in (the seed's "adjust
# who uses the seats"); a backend that cannot tell leaves them out, and the card says seats used / total only.

# How many accounts a card suggests: enough to choose from, few enough to read at a glance.
SHOWN = 3


async def seat_facts(crm: CrmBackend, username: str, licence: LicenceInfo | None) -> dict[str, Any]:
    """Evidence to add to a seat-limit request: its ``licence`` when the lock did not carry it, and the
    ``inactive_accounts`` (username, display name, last sign-in or ``None``) when the CRM can tell."""
    facts: dict[str, Any] = {}
    if licence is None and Capability.LICENCES in crm.capabilities:
        try:
            licence = await crm.licence(username)
        except CrmError:
            licence = None  # the card then says what the lock itself said
        if licence is not None:
            facts["licence"] = stored(licence)
    if licence is None or Capability.SEAT_USAGE not in crm.capabilities:
        return facts
    try:
        holders = await crm.inactive_users(licence.name, limit=SHOWN + 1)
    except CrmError:
        return facts  # seats used / total only, as for a backend that cannot tell
    others = [holder for holder in holders if holder.username != username][:SHOWN]
    facts["inactive_accounts"] = [stored(holder) for holder in others]
    return facts
