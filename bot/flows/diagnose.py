"""Why am I locked: ask the CRM, explain the reason; after TOTP, show the evidence."""

from __future__ import annotations

from bot.crm.base import Capability, LockStatus
from bot.flows.base import Flow, Outcome, Turn
from bot.flows.facts import plain, public_facts
from bot.flows.menu import MENU, MENU_BUTTONS
from bot.flows.verification import ask_code, check_code, not_enrolled
from bot.messages import Button, Reply
from bot.requests.policy import Path


def next_buttons(turn: Turn, status: LockStatus, *, evidence_shown: bool) -> tuple[Button, ...]:
    """What the person can do after hearing the reason, following the policy for it."""
    assert status.reason is not None
    rule = turn.services.policy.rule(status.reason)
    buttons = []
    if rule.path is Path.SELF_SERVICE:
        buttons.append(Button("unlock", "unlock"))
    elif rule.path is Path.APPROVAL:
        buttons.append(Button("unlock", "request_unlock"))
    if not evidence_shown:
        buttons.append(Button("details", "details"))
    buttons += [Button("data", "data"), MENU]
    return tuple(buttons)


async def explain(turn: Turn) -> Outcome:
    status = await turn.services.crm.lock_status(turn.require_user())
    if not status.locked or status.reason is None:
        return Outcome([Reply("diagnose/not_locked", buttons=MENU_BUTTONS)])
    reply = Reply(
        "diagnose/explain",
        {"reason": status.reason.value, "locked_at": status.locked_at, "facts": public_facts(status)},
        buttons=next_buttons(turn, status, evidence_shown=False),
    )
    return Outcome([reply])


async def ask_for_details(turn: Turn) -> Outcome:
    if Capability.LOGIN_HISTORY not in turn.services.crm.capabilities:
        return Outcome([Reply("diagnose/no_evidence", buttons=(MENU,))])
    if not await turn.services.totp.is_enrolled(turn.session, turn.require_user()):
        return not_enrolled()
    return Outcome([ask_code("details")], step="code")


async def show_details(turn: Turn) -> Outcome:
    refused = await check_code(turn, step="code")
    if refused is not None:
        return refused
    status = await turn.services.crm.lock_status(turn.require_user())
    if not status.locked or status.reason is None:
        return Outcome([Reply("diagnose/not_locked", buttons=MENU_BUTTONS)])
    reply = Reply(
        "diagnose/evidence",
        {"reason": status.reason.value, "locked_at": status.locked_at, "evidence": plain(status.evidence)},
        buttons=next_buttons(turn, status, evidence_shown=True),
        private=True,  # shown after a code: never repeated from storage without one
    )
    return Outcome([reply])


DIAGNOSE = Flow("diagnose", start=explain)
DETAILS = Flow("details", start=ask_for_details, steps={"code": show_details}, takes_text=frozenset({"code"}))
