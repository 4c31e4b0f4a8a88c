"""The worried questions, answered from what the CRM says right now.

Is my data safe, can I still receive customer information, is this lock
normal, when does the maintenance end.

Where the backend cannot tell, the answer says so rather than guessing.
"""

from __future__ import annotations

from datetime import timedelta

from bot.crm.base import Capability, SystemStatus
from bot.flows.base import Flow, Outcome, Turn
from bot.flows.facts import plain
from bot.flows.menu import MENU, MENU_BUTTONS
from bot.messages import Button, Reply

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


DATA_SAFETY = Flow("data_safety", start=data_safety)


async def system_facts(turn: Turn) -> SystemStatus | None:
    crm = turn.services.crm
    return await crm.system_status() if Capability.SYSTEM_STATUS in crm.capabilities else None


async def receive_info(turn: Turn) -> Outcome:
    system = await system_facts(turn)
    context = {
        "known": system is not None and system.inbound_channels is not None,
        "channels": dict(system.inbound_channels or {}) if system else {},
        "writes_paused": system.writes_paused if system else None,
    }
    return Outcome([Reply("questions/receive_info", context, MENU_BUTTONS)])


async def normal_or_abnormal(turn: Turn) -> Outcome:
    crm = turn.services.crm
    system = await system_facts(turn)
    others = await crm.locks_since(turn.now - RECENT) if Capability.LOCK_STATISTICS in crm.capabilities else None
    reason = None
    if turn.username is not None and Capability.LOCK_STATUS in crm.capabilities:
        status = await crm.lock_status(turn.username)
        reason = status.reason.value if status.locked and status.reason else None
        if others and status.locked_at is not None and status.locked_at >= turn.now - RECENT:
            others -= 1  # "others": the person's own lock is not one of them
    context = {
        "system_known": system is not None,
        "windows": plain(system.maintenance) if system else [],
        "incidents": plain(system.incidents) if system else [],
        "others_locked": others,
        "window_minutes": int(RECENT.total_seconds() // 60),
        "reason": reason,
        "now": turn.now,
    }
    buttons = (Button("why", "why"), MENU) if reason else MENU_BUTTONS
    return Outcome([Reply("questions/normal_or_abnormal", context, buttons)])


async def maintenance(turn: Turn) -> Outcome:
    system = await system_facts(turn)
    context = {"known": system is not None, "windows": plain(system.maintenance) if system else [], "now": turn.now}
    return Outcome([Reply("questions/maintenance", context, MENU_BUTTONS)])


RECEIVE_INFO = Flow("receive_info", start=receive_info)
NORMAL_OR_ABNORMAL = Flow("normal_or_abnormal", start=normal_or_abnormal)
MAINTENANCE = Flow("maintenance", start=maintenance)
