"""I still can't sign in: for a locked person, the lock and the way back; otherwise a short troubleshooting path.

The path goes password, then the connection (with the server's probe of the
CRM), then the browser, and ends with a person: the question goes to the
admins as a help request. "That worked" at any step ends it.
"""

from __future__ import annotations

from bot.flows.base import Flow, Outcome, Turn
from bot.flows.faq import file_question
from bot.flows.menu import MENU
from bot.flows.situation import Worry, next_step, read_situation, verdict
from bot.messages import Button, Reply

MAX_QUESTION = 500
SIGNED_IN = Button("signin:ok", "signed_in")
STILL_NOT = Button("signin:next", "still_not")
# What the person has been through before the admins hear of it, in the order of the path.
CHECKED = ("password", "network", "browser")


async def start(turn: Turn) -> Outcome:
    situation = await read_situation(turn, probe=True)
    found = verdict(situation, Worry.SIGN_IN)
    if found.key == "locked":
        buttons = (*next_step(situation), Button("why", "why"), MENU)
        return Outcome([Reply("sign_in/locked", found.context(), buttons)])
    if situation.crm_failed:
        return Outcome([Reply("sign_in/crm_down", found.context(), (MENU,))])
    # The person's own words, if they typed them, go to the admins should the path end with a person.
    question = turn.text[:MAX_QUESTION] if not turn.button else ""
    reply = Reply("sign_in/password", found.context(), (SIGNED_IN, STILL_NOT, MENU))
    return Outcome([reply], step="password", data={"question": question})


async def on_password(turn: Turn) -> Outcome:
    if turn.button == SIGNED_IN.action:
        return signed_in()
    found = verdict(await read_situation(turn, probe=True), Worry.SIGN_IN)
    buttons = (SIGNED_IN, STILL_NOT, Button("network", "walk_connection"), MENU)
    return Outcome([Reply("sign_in/network", found.context(), buttons)], step="network", data=turn.data)


async def on_network(turn: Turn) -> Outcome:
    if turn.button == SIGNED_IN.action:
        return signed_in()
    return Outcome([Reply("sign_in/browser", buttons=(SIGNED_IN, STILL_NOT, MENU))], step="browser", data=turn.data)


async def on_browser(turn: Turn) -> Outcome:
    if turn.button == SIGNED_IN.action:
        return signed_in()
    buttons = (Button("human", "human"), MENU)
    return Outcome([Reply("sign_in/person", buttons=buttons)], step="person", data=turn.data)


async def hand_to_a_person(turn: Turn) -> Outcome:
    return await file_question(
        turn, {"question": str(turn.data.get("question", "")), "cannot_sign_in": True, "checked": list(CHECKED)}
    )


def signed_in() -> Outcome:
    return Outcome([Reply("sign_in/signed_in", buttons=(MENU,))])


SIGN_IN = Flow(
    "sign_in",
    start=start,
    steps={"password": on_password, "network": on_network, "browser": on_browser, "person": hand_to_a_person},
)
