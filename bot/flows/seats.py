"""The facts an admin decides a seat-limit request with: the seats in use of those paid for, and who could free one.

Gathered once, when the request is filed, and kept with its evidence, so that every copy of the card (in a
chat, on an admin channel, redrawn later by any replica) shows the same facts without asking the CRM again.
The seat holders are the few licensed accounts that have gone longest without signing in (the seed's "adjust
who uses the seats"); a backend that cannot tell leaves them out, and the card says seats used / total only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.crm.base import Capability, CrmBackend, LicenceInfo
from bot.errors import CrmError
from bot.flows.facts import plain

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
            facts["licence"] = _stored(licence)
    if licence is None or Capability.SEAT_USAGE not in crm.capabilities:
        return facts
    try:
        holders = await crm.inactive_users(licence.name, limit=SHOWN + 1)
    except CrmError:
        return facts  # seats used / total only, as for a backend that cannot tell
    others = [holder for holder in holders if holder.username != username][:SHOWN]
    facts["inactive_accounts"] = [_stored(holder) for holder in others]
    return facts


def _stored(value: Any) -> Any:
    """A fact as the request's JSON evidence keeps it: plain data, times as ISO text."""
    value = plain(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _stored(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_stored(item) for item in value]
    return value
