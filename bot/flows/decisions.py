"""Admins deciding: request cards, the pending list, Approve / Deny, and answers to questions.

Only configured admins decide, never on their own request (nor through a chat account the requester
linked), and approving an unlock takes the approver's own code where policy asks (the default).
"""

from __future__ import annotations

from typing import Any

from bot.crm.base import LockReason
from bot.errors import CrmError
from bot.flows.base import Flow, Outcome, Turn
from bot.flows.menu import CANCEL, MENU, MENU_BUTTONS
from bot.flows.verification import ask_code, check_code
from bot.messages import Button, Reply
from bot.requests.approvals import ChatAccount, Decision, Verdict, answer_question, decide, is_own
from bot.requests.outbox import queued_for
from bot.requests.unlock_requests import Kind, Status, pending_requests
from bot.storage.models import UnlockRequest

PENDING = Button("pending", "pending")
# Offered when a seat-limit request is approved while every licensed seat is taken.
APPROVE_ANYWAY = Button("approve_anyway", "approve_anyway")


def card(request: UnlockRequest, now_pending: bool) -> Reply:
    context: dict[str, Any] = {
        "id": request.id,
        "kind": request.kind,
        "username": request.crm_username,
        "reason": request.reason,
        "evidence": dict(request.evidence),
        "answers": dict(request.answers),
        "created_at": request.created_at,
        "expires_at": request.expires_at,
        "status": request.status,
        "decided_by": request.decided_by,
        "decided_at": request.decided_at,
        "note": request.decision_note,
    }
    buttons: tuple[Button, ...] = ()
    if now_pending and request.kind == Kind.HELP:
        buttons = (Button(f"answer:{request.id}", "reply_question"),)  # a question is answered, not approved
    elif now_pending:
        buttons = (Button(f"approve:{request.id}", "approve"), Button(f"deny:{request.id}", "deny"))
    # Evidence is for the admins who see it now, not for whoever holds this chat later.
    return Reply("admin/card", context, buttons, private=True)


def only_admins() -> Outcome:
    return Outcome([Reply("admin/only_admins", buttons=MENU_BUTTONS)])


async def show_pending(turn: Turn) -> Outcome:
    if not turn.is_admin:
        return only_admins()
    requests = await pending_requests(turn.session, now=turn.now)
    own = [r for r in requests if r.crm_username == turn.username]
    others = [r for r in requests if r.crm_username != turn.username]
    replies = [Reply("admin/pending", {"count": len(others), "own": len(own)})]
    replies += [card(r, now_pending=True) for r in others]
    return Outcome([*replies, Reply("admin/after_cards", buttons=(MENU,))])


def request_number(text: str) -> int | None:
    """The request a typed "12" or "#12" names, if it names one."""
    digits = text.strip().lstrip("#")
    return int(digits) if digits.isdigit() and len(digits) < 10 else None


async def _decision_reply(turn: Turn, decision: Decision) -> Outcome:
    reply = Reply("admin/decided", decision.context, (PENDING, MENU))
    if decision.verdict is Verdict.DECIDED and decision.request is not None:
        return Outcome([reply, card(decision.request, now_pending=False)])
    return Outcome([reply])


def _via(turn: Turn) -> ChatAccount:
    return ChatAccount(turn.inbound.channel, turn.inbound.team_id, turn.inbound.user_id)


async def _decide(turn: Turn, request_id: int, *, approve: bool, note: str | None) -> Outcome:
    assert turn.username is not None
    decision = await decide(
        turn.session,
        now=turn.now,
        request_id=request_id,
        admin=turn.username,
        approve=approve,
        note=note,
        admins=turn.services.admins,
        via=_via(turn),
    )
    if decision.verdict is Verdict.DECIDED and approve:
        turn.queued.extend(await queued_for(turn.session, request_id))
    return await _decision_reply(turn, decision)


async def start_approval(turn: Turn, request_id: int | None = None) -> Outcome:
    if not turn.is_admin:
        return only_admins()
    request_id = request_id if request_id is not None else request_number(turn.argument)
    request = await turn.session.get(UnlockRequest, request_id) if request_id is not None else None
    if request is None or request_id is None:
        return Outcome([Reply("admin/decided", {"verdict": Verdict.NOT_FOUND.value}, (PENDING, MENU))])
    if await is_own(turn.session, request, admin=turn.username or "", via=_via(turn)):
        return await _decide(turn, request_id, approve=True, note=None)  # refused, and audited, by decide()
    if request.kind == Kind.HELP:
        return await start_answer(turn, request_id)  # a question is answered, not approved
    if request.status != Status.PENDING.value or request.expires_at <= turn.now:
        return await _decide(turn, request_id, approve=True, note=None)  # says who decided; changes nothing
    reason = LockReason(request.reason) if request.reason in set(LockReason) else LockReason.UNKNOWN
    if reason is LockReason.SEAT_LIMIT and request.kind == Kind.UNLOCK and not turn.data.get("seats_confirmed"):
        full = await _no_free_seat(turn, request.crm_username)
        if full is not None:
            used, total = full
            context = {
                "id": request_id,
                "username": request.crm_username,
                "used": used,
                "total": total,
                "inactive": [a.get("username") for a in request.evidence.get("inactive_accounts") or ()],
            }
            return Outcome(
                [Reply("admin/no_free_seat", context, (APPROVE_ANYWAY, MENU))],
                step="confirm_seats",
                data={"request": request_id},
            )
    return await _approve_after_code(turn, request_id, reason)


async def _approve_after_code(turn: Turn, request_id: int, reason: LockReason) -> Outcome:
    request = await turn.session.get(UnlockRequest, request_id)
    assert request is not None
    if request.kind == Kind.UNLOCK and turn.services.policy.rule(reason).approver_totp and not turn.recently_verified:
        return Outcome([ask_code("approve")], step="approve_code", data={"request": request_id})
    return await _decide(turn, request_id, approve=True, note=None)


async def _no_free_seat(turn: Turn, username: str) -> tuple[int, int] | None:
    """(seats in use, seats in all) when every licensed seat is taken; ``None`` when one is free or nobody says."""
    try:
        licence = await turn.services.crm.licence(username)
    except CrmError:
        return None  # the CRM does not answer now: the card already showed the numbers it had
    if licence is None or licence.seats_total is None or licence.seats_used is None:
        return None
    return (licence.seats_used, licence.seats_total) if licence.seats_used >= licence.seats_total else None


async def on_confirm_seats(turn: Turn) -> Outcome:
    """The admin pressed "Approve anyway" with no seat free: on to their code, then the decision."""
    if not turn.is_admin:
        return only_admins()
    request_id = int(turn.data["request"])
    turn.data = {**turn.data, "seats_confirmed": True}
    return await start_approval(turn, request_id)


async def on_approve_code(turn: Turn) -> Outcome:
    refused = await check_code(turn, step="approve_code")
    if refused is not None:
        return refused
    return await _decide(turn, int(turn.data["request"]), approve=True, note=None)


async def start_denial(turn: Turn, request_id: int | None = None, reason: str = "") -> Outcome:
    if not turn.is_admin:
        return only_admins()
    request_id = request_id if request_id is not None else request_number(turn.argument)
    if request_id is None:
        return Outcome([Reply("admin/decided", {"verdict": Verdict.NOT_FOUND.value}, (PENDING, MENU))])
    if reason:
        return await _decide(turn, request_id, approve=False, note=reason[:500])
    return Outcome(
        [Reply("admin/ask_deny_reason", {"id": request_id}, (CANCEL,))],
        step="deny_reason",
        data={"request": request_id},
    )


async def on_deny_reason(turn: Turn) -> Outcome:
    return await _decide(turn, int(turn.data["request"]), approve=False, note=turn.text[:500])


MAX_ANSWER = 1000


async def start_answer(turn: Turn, request_id: int | None = None, answer: str = "") -> Outcome:
    """Reply to a question someone handed to a person: typed with the command, or asked for next."""
    if not turn.is_admin:
        return only_admins()
    request_id = request_id if request_id is not None else request_number(turn.argument)
    request = await turn.session.get(UnlockRequest, request_id) if request_id is not None else None
    if request is None or request_id is None or request.kind != Kind.HELP:
        return Outcome([Reply("admin/decided", {"verdict": Verdict.NOT_FOUND.value}, (PENDING, MENU))])
    if answer:
        return await _answer(turn, request_id, answer)
    if request.status != Status.PENDING.value or await is_own(
        turn.session, request, admin=turn.username or "", via=_via(turn)
    ):
        return await _answer(turn, request_id, "")  # says who answered, or refuses; changes nothing
    context = {"id": request.id, "username": request.crm_username, "question": request.answers.get("question", "")}
    return Outcome([Reply("admin/ask_answer", context, (CANCEL,))], step="answer_text", data={"request": request_id})


async def on_answer_text(turn: Turn) -> Outcome:
    return await _answer(turn, int(turn.data["request"]), turn.text)


async def _answer(turn: Turn, request_id: int, answer: str) -> Outcome:
    assert turn.username is not None
    if answer:
        decision = await answer_question(
            turn.session,
            now=turn.now,
            request_id=request_id,
            admin=turn.username,
            answer=answer[:MAX_ANSWER],
            admins=turn.services.admins,
            via=_via(turn),
        )
    else:
        request = await turn.session.get(UnlockRequest, request_id)
        own = request is not None and await is_own(turn.session, request, admin=turn.username, via=_via(turn))
        decision = Decision(Verdict.OWN_REQUEST if own else Verdict.ALREADY_DECIDED, request)
    reply = Reply("admin/answered", decision.context, (PENDING, MENU))
    if decision.verdict is Verdict.DECIDED and decision.request is not None:
        return Outcome([reply, card(decision.request, now_pending=False)])
    return Outcome([reply])


PENDING_FLOW = Flow("pending", start=show_pending)
APPROVE = Flow(
    "approve",
    start=start_approval,
    steps={"approve_code": on_approve_code, "confirm_seats": on_confirm_seats},
    takes_text=frozenset({"approve_code"}),
)
DENY = Flow("deny", start=start_denial, steps={"deny_reason": on_deny_reason}, takes_text=frozenset({"deny_reason"}))
ANSWER = Flow(
    "answer", start=start_answer, steps={"answer_text": on_answer_text}, takes_text=frozenset({"answer_text"})
)
