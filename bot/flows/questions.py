"""The worried questions, answered for this person first, from their lock and what the CRM says right now.

Is my data safe, can I still receive customer information, is this lock
normal, when does the maintenance end, is the fault fixed, did I use the CRM
too much, what does this lock cost me. Each answer starts with the line the
person's own situation gives (``bot.flows.situation``), then the live facts,
then, only where the situation says nothing, the general answer.

Where the backend cannot tell, the answer says so rather than guessing.
"""

from __future__ import annotations

from bot.flows.base import Flow, Outcome, Turn
from bot.flows.menu import MENU
from bot.flows.situation import Worry, next_step, read_situation, verdict
from bot.messages import Button, Reply

WHY = Button("why", "why")
WATCH = Button("watch", "watch")


async def data_safety(turn: Turn) -> Outcome:
    situation = await read_situation(turn)
    found = verdict(situation, Worry.DATA)
    return Outcome([Reply("questions/data_safety", found.context(), (*next_step(situation), MENU))])


async def receive_info(turn: Turn) -> Outcome:
    situation = await read_situation(turn)
    system = situation.system
    channels = dict(system.inbound_channels or {}) if system is not None else {}
    context = verdict(situation, Worry.RECEIVE).context(
        channels_known=system is not None and system.inbound_channels is not None, channels=channels
    )
    return Outcome([Reply("questions/receive_info", context, (*next_step(situation), MENU))])


async def normal_or_abnormal(turn: Turn) -> Outcome:
    situation = await read_situation(turn, count_others=True)
    found = verdict(situation, Worry.NORMAL)
    buttons = (*next_step(situation), WHY, MENU) if situation.locked else (*next_step(situation), MENU)
    return Outcome([Reply("questions/normal_or_abnormal", found.context(), buttons)])


async def maintenance(turn: Turn) -> Outcome:
    situation = await read_situation(turn)
    found = verdict(situation, Worry.MAINTENANCE)
    buttons = (WATCH, MENU) if found.key == "yours" else (*next_step(situation), MENU)
    return Outcome([Reply("questions/maintenance", found.context(), buttons)])


async def system_fault(turn: Turn) -> Outcome:
    """Is the fault fixed: the open incidents and their status, first the one behind the person's lock."""
    situation = await read_situation(turn)
    found = verdict(situation, Worry.FAULT)
    buttons = (WATCH, Button("data", "data"), MENU) if found.key == "yours" else (*next_step(situation), MENU)
    return Outcome([Reply("questions/system_fault", found.context(), buttons)])


async def usage(turn: Turn) -> Outcome:
    """Did I use the CRM too much: yes for a rate limit or a trial cap, otherwise what the lock really is."""
    situation = await read_situation(turn)
    found = verdict(situation, Worry.USAGE)
    buttons = (*next_step(situation), WHY, MENU) if situation.locked else (*next_step(situation), MENU)
    return Outcome([Reply("questions/usage", found.context(), buttons)])


async def impact(turn: Turn) -> Outcome:
    """What the lock costs: for this person, how soon they can be back; then how the cost is kept small."""
    situation = await read_situation(turn)
    found = verdict(situation, Worry.IMPACT)
    return Outcome([Reply("questions/impact", found.context(), (*next_step(situation), MENU))])


DATA_SAFETY = Flow("data_safety", start=data_safety)
RECEIVE_INFO = Flow("receive_info", start=receive_info)
NORMAL_OR_ABNORMAL = Flow("normal_or_abnormal", start=normal_or_abnormal)
MAINTENANCE = Flow("maintenance", start=maintenance)
SYSTEM_FAULT = Flow("system_fault", start=system_fault)
USAGE = Flow("usage", start=usage)
IMPACT = Flow("impact", start=impact)
