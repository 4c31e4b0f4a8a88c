"""When can I sign in again: answered from what the person's lock waits for.

Maintenance gives the window's end, a fault the incident's status, a licence
or trial lock the renewal (with "tell me when"), a self-service lock "now",
and an approval lock the open request's status or the offer to file one.
"""

from __future__ import annotations

from bot.flows.base import Flow, Outcome, Turn
from bot.flows.menu import MENU
from bot.flows.situation import Worry, next_step, read_situation, verdict
from bot.messages import Button, Reply

# Locks that end without anyone unlocking this one account: the person may ask to be told.
WAITING = frozenset({"maintenance", "fault", "licence", "trial", "admins"})


async def when_back(turn: Turn) -> Outcome:
    turn.require_user()
    situation = await read_situation(turn)
    found = verdict(situation, Worry.WHEN_BACK)
    if found.key in WAITING:
        buttons: tuple[Button, ...] = (Button("watch", "watch"), MENU)
    else:
        buttons = (*next_step(situation), MENU)
    return Outcome([Reply("when_back/answer", found.context(), buttons)])


WHEN_BACK = Flow("when_back", start=when_back)
