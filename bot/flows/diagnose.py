"""Why am I locked: ask the CRM, explain the reason; after TOTP, show the evidence."""

from __future__ import annotations

from datetime import timedelta

from bot.crm.base import Capability, LockStatus
from bot.flows.base import Flow, Outcome, Turn
from bot.flows.facts import plain, public_facts
from bot.flows.menu import MENU, MENU_BUTTONS
from bot.flows.verification import ask_code, check_code, not_enrolled
from bot.messages import Button, Reply
from bot.requests.incidents import open_incident
from bot.requests.policy import first_step
from bot.requests.unlock_requests import open_request
from bot.requests.watches import watch
from bot.storage.models import UnlockRequest

INCIDENT_WINDOW = timedelta(minutes=10)
INCIDENT_THRESHOLD = 5


# For someone who is not locked: the troubleshooting path, then the menu.
NOT_LOCKED_BUTTONS = (Button("sign_in", "cannot_sign_in"), *MENU_BUTTONS)


def next_buttons(
    turn: Turn, status: LockStatus, *, evidence_shown: bool, request: UnlockRequest | None = None
) -> tuple[Button, ...]:
    """What the person can do after hearing the reason, following the policy for it."""
    assert status.reason is not None
    path = turn.services.policy.rule(status.reason).path
    # Where nobody can lift it for one person: offer to say when it is over.
    step = first_step(path, open_request=request is not None, when_nobody=Button("watch", "watch"))
    buttons = [step] if step is not None else []
    if not evidence_shown:
        buttons.append(Button("details", "details"))
    buttons += [Button("data", "data"), MENU]
    return tuple(buttons)


async def explain(turn: Turn) -> Outcome:
    username = turn.require_user()
    status = await turn.services.crm.lock_status(username)
    if not status.locked or status.reason is None:
        return Outcome([Reply("diagnose/not_locked", buttons=NOT_LOCKED_BUTTONS)])
    request = await open_request(turn.session, username)
    facts = public_facts(status)
    facts["request"] = described(request) if request is not None else None
    wave = await open_incident(turn.session, now=turn.now)
    if wave is not None:  # the housekeeper found more locks at once than usual: the same finding, said here
        facts["many_locked"] = wave.locks
        facts["window_minutes"] = round(wave.window_minutes)
    elif Capability.LOCK_STATISTICS in turn.services.crm.capabilities:
        recent = await turn.services.crm.locks_since(turn.now - INCIDENT_WINDOW)
        # Many locks at once point to the system, not to the person: say so to everyone who asks.
        facts["many_locked"] = recent if recent >= INCIDENT_THRESHOLD else None
        facts["window_minutes"] = int(INCIDENT_WINDOW.total_seconds() // 60)
    reply = Reply(
        "diagnose/explain",
        {"reason": status.reason.value, "locked_at": status.locked_at, "facts": facts},
        buttons=next_buttons(turn, status, evidence_shown=False, request=request),
    )
    return Outcome([reply])


def described(request: UnlockRequest) -> dict[str, object]:
    """An open request as the card mentions it."""
    return {"id": request.id, "kind": request.kind, "status": request.status, "expires_at": request.expires_at}


async def start_watching(turn: Turn) -> Outcome:
    username = turn.require_user()
    status = await turn.services.crm.lock_status(username)
    if not status.locked or status.reason is None:
        return Outcome([Reply("diagnose/not_locked", buttons=NOT_LOCKED_BUTTONS)])
    await watch(turn.session, now=turn.now, username=username, reason=status.reason, actor=turn.actor)
    return Outcome([Reply("watch/set", buttons=MENU_BUTTONS)])


async def ask_for_details(turn: Turn) -> Outcome:
    if Capability.LOGIN_HISTORY not in turn.services.crm.capabilities:
        return Outcome([Reply("diagnose/no_evidence", buttons=(MENU,))])
    if turn.recently_verified:
        return await evidence(turn)
    if not await turn.services.totp.is_enrolled(turn.session, turn.require_user()):
        return not_enrolled()
    return Outcome([ask_code("details")], step="code")


async def show_details(turn: Turn) -> Outcome:
    refused = await check_code(turn, step="code")
    if refused is not None:
        return refused
    return await evidence(turn)


async def evidence(turn: Turn) -> Outcome:
    """The person's identity is settled: what the CRM recorded about the lock."""
    username = turn.require_user()
    status = await turn.services.crm.lock_status(username)
    if not status.locked or status.reason is None:
        return Outcome([Reply("diagnose/not_locked", buttons=NOT_LOCKED_BUTTONS)])
    request = await open_request(turn.session, username)
    reply = Reply(
        "diagnose/evidence",
        {"reason": status.reason.value, "locked_at": status.locked_at, "evidence": plain(status.evidence)},
        buttons=next_buttons(turn, status, evidence_shown=True, request=request),
        private=True,  # shown after a code: never repeated from storage without one
    )
    return Outcome([reply])


DIAGNOSE = Flow("diagnose", start=explain)
WATCH = Flow("watch", start=start_watching)
DETAILS = Flow("details", start=ask_for_details, steps={"code": show_details}, takes_text=frozenset({"code"}))
