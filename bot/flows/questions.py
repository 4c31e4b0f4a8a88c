"""The worried questions: is my data safe, and is it my network; answered from live CRM facts.

Where the backend cannot tell, the answer says so rather than guessing.
"""

from __future__ import annotations

from datetime import timedelta

from bot.crm.base import Capability
from bot.flows.base import Flow, Outcome, Turn
from bot.flows.facts import plain
from bot.flows.menu import MENU_BUTTONS
from bot.messages import Reply

RECENT = timedelta(hours=1)


async def data_safety(turn: Turn) -> Outcome:
    crm = turn.services.crm
    system = await crm.system_status() if Capability.SYSTEM_STATUS in crm.capabilities else None
    reason = None
    if turn.username is not None and Capability.LOCK_STATUS in crm.capabilities:
        status = await crm.lock_status(turn.username)
        reason = status.reason.value if status.locked and status.reason else None
    context = {
        "known": system is not None,
        "last_backup_at": system.last_backup_at if system else None,
        "writes_paused": system.writes_paused if system else None,
        "incidents": plain(system.incidents) if system else [],
        "reason": reason,
    }
    return Outcome([Reply("questions/data_safety", context, MENU_BUTTONS)])


async def network(turn: Turn) -> Outcome:
    crm = turn.services.crm
    probe = await crm.probe() if Capability.PROBE in crm.capabilities else None
    others = None
    if Capability.LOCK_STATISTICS in crm.capabilities:
        others = await crm.locks_since(turn.now - RECENT)
    context = {
        "probe": plain(probe),
        "others_locked": others,
        "window_minutes": int(RECENT.total_seconds() // 60),
    }
    return Outcome([Reply("questions/network", context, MENU_BUTTONS)])


DATA_SAFETY = Flow("data_safety", start=data_safety)
NETWORK = Flow("network", start=network)
