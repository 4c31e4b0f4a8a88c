"""Free questions: ranked against the FAQ topics; a confident match answers, an unsure one asks back.

Topics with an action answer from the person's own facts: "why am I locked"
in any words runs the diagnosis for a linked person, "is my data safe" reads
the CRM's backup time, and so on. Below the confidence threshold the person
sees the three closest topics and can hand the question to a human, which
files a help request for the admins.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.crm.base import Capability, LockReason
from bot.flows.base import Flow, Outcome, Turn
from bot.flows.menu import MENU, menu_buttons
from bot.messages import Button, Reply
from bot.requests.unlock_requests import Kind, file_request, questions_since

MAX_QUESTION = 500
# A topic's action, as the action of the flow that answers it from live facts.
TOPIC_FLOWS = {
    "why-locked": "why",
    "data-safety": "data",
    "network": "network",
    "receive-info": "receive",
    "normal-or-abnormal": "normal",
    "maintenance": "maintenance",
    "request-status": "request_status",
    "cannot-sign-in": "sign_in",
    "when-back": "when_back",
    "impact": "impact",
    "usage-count": "usage",
    "system-fault": "fault",
}
# These need to know who the person is; for anyone else the general answer is given.
NEEDS_IDENTITY = frozenset({"why", "request_status", "when_back"})


def topic_button(topic_id: str) -> Button:
    return Button(f"faq:{topic_id}", "topic", {"id": topic_id})


async def ask(turn: Turn) -> Outcome:
    return Outcome([Reply("faq/ask", buttons=(MENU,))])


async def answer(turn: Turn) -> Outcome:
    """A topic button, or a typed question."""
    if turn.button.startswith("faq:"):
        if turn.argument not in turn.services.faq.topics:
            return Outcome([Reply("engine/unknown_option", buttons=menu_buttons(turn))])
        return await answer_topic(turn, turn.argument)
    result = turn.services.faq.search(turn.text, turn.locale)
    if result.answer_id is not None:
        return await answer_topic(turn, result.answer_id)
    if result.off_topic or not result.matches:
        # Nothing the FAQ covers: say what the bot is for, rather than offer topics that do not fit.
        return Outcome([Reply("faq/out_of_domain", buttons=menu_buttons(turn))])
    buttons = (*(topic_button(m.topic_id) for m in result.matches[:3]), Button("human", "human"), MENU)
    question = turn.text[:MAX_QUESTION]
    return Outcome([Reply("faq/unsure", buttons=buttons)], step="unsure", data={"question": question})


async def answer_topic(turn: Turn, topic_id: str) -> Outcome:
    topic = turn.services.faq.topics[topic_id]
    flow = TOPIC_FLOWS.get(topic.action or "")
    if flow is not None and (flow not in NEEDS_IDENTITY or turn.username is not None):
        return Outcome([], then=flow)
    buttons = [topic_button(related) for related in topic.related[:3]]
    if topic.action == "unlock-steps" and turn.username is not None:
        buttons.insert(0, Button("unlock", "unlock"))
    context: dict[str, Any] = {"topic": topic_id}
    if topic_id == LICENCE_TOPIC:
        context["reminders"] = licence_reminders(turn)
    return Outcome([Reply("faq/answer", context, (*buttons, MENU))])


LICENCE_TOPIC = "license"


def licence_reminders(turn: Turn) -> str:
    """Whether the admins really are reminded before a licence ends here, as the housekeeper decides it."""
    if Capability.LICENCE_LIST not in turn.services.crm.capabilities:
        return "no_list"
    return "on" if turn.services.admins else "no_admins"


async def hand_to_a_human(turn: Turn) -> Outcome:
    if turn.button != "human":
        return await answer(turn)
    return await file_question(turn, {"question": str(turn.data.get("question", ""))})


async def file_question(turn: Turn, answers: dict[str, Any]) -> Outcome:
    """Hand the person's question (``answers`` go on the admins' card) to the admins, within the daily cap."""
    if turn.username is None:
        return Outcome([Reply("faq/human_unlinked", buttons=(MENU,))])
    # Each question reaches every admin: a person (or a stuck client) cannot flood them.
    asked = await questions_since(turn.session, username=turn.username, since=turn.now - timedelta(days=1))
    if asked >= turn.services.questions_per_day:
        return Outcome([Reply("faq/human_capped", {"limit": turn.services.questions_per_day}, (MENU,))])
    request = await file_request(
        turn.session,
        now=turn.now,
        username=turn.username,
        reason=LockReason.UNKNOWN,
        evidence={},
        channel=turn.inbound.channel,
        requester=turn.inbound.user_id,
        answers=answers,
        lifetime=turn.services.request_lifetime,
        admins=turn.services.admins,
        kind=Kind.HELP,
    )
    return Outcome([Reply("faq/human_filed", {"id": request.id}, (MENU,))])


ASK = Flow("ask", start=ask)
FAQ = Flow("faq", start=answer, steps={"unsure": hand_to_a_human})
