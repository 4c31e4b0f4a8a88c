"""Admins in chat: request cards with Approve / Deny, and the admin commands.

Who is an admin is decided by the configured CRM usernames and the linked
chat account, never by a display name or a group role. Commands:
``pending``, ``approve ID``, ``deny ID REASON``, ``audit USER``,
``unlock USER`` (with the admin's own code), ``invite USER``, ``unlink USER``,
``reset-totp USER``, ``stats``.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select

from bot.crm.base import LockReason
from bot.flows.base import Flow, Outcome, Turn
from bot.flows.menu import CANCEL, MENU, MENU_BUTTONS
from bot.flows.verification import ask_code, check_code, not_enrolled
from bot.identity import enrolment, link_codes
from bot.identity.linking import unlink
from bot.messages import Button, Reply
from bot.requests import audit
from bot.requests.approvals import ChatAccount, Decision, Verdict, answer_question, decide, is_own
from bot.requests.outbox import enqueue, queued_for
from bot.requests.unlock_requests import Kind, Status, open_request, pending_requests
from bot.storage.models import AuditEvent, UnlockRequest

PENDING = Button("pending", "pending")
# What admins type, in either language, and the command each stands for.
VERBS = {
    "pending": "pending",
    "approve": "approve",
    "deny": "deny",
    "audit": "audit",
    "unlock": "unlock",
    "invite": "invite",
    "unlink": "unlink",
    "reset-totp": "reset-totp",
    "stats": "stats",
    "answer": "answer",
    "reply": "answer",
    "待处理": "pending",
    "待审批": "pending",
    "批准": "approve",
    "同意": "approve",
    "拒绝": "deny",
    "驳回": "deny",
    "审计": "audit",
    "解锁": "unlock",
    "邀请": "invite",
    "解绑": "unlink",
    "重置验证器": "reset-totp",
    "重置验证码": "reset-totp",
    "统计": "stats",
    "回复": "answer",
    "答复": "answer",
}
# Commands that need something after the verb (a request number or a user name).
_TAKES_ARGUMENT = frozenset({"approve", "deny", "audit", "unlock", "invite", "unlink", "reset-totp", "answer"})
_LATIN_VERB = re.compile(r"^(?P<verb>[A-Za-z-]+)(?:\s+(?P<rest>.*))?$", re.DOTALL)
_HAN_VERB = re.compile(
    "^(?P<verb>" + "|".join(sorted((v for v in VERBS if not v.isascii()), key=len, reverse=True)) + ")"
    r"\s*(?P<rest>.*)$",
    re.DOTALL,
)
# After a Chinese verb the argument starts with a request number or a (Latin) user name; anything else is
# a sentence that happens to start with the verb ("解锁以后要检查什么").
_ARGUMENT_START = re.compile(r"^[#A-Za-z0-9]")
USERNAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,128}$")
# Words after "unlock" that mean the person's own account, not an admin command.
_SELF_WORDS = frozenset({"me", "my", "please", "my account", "me please"})


def parse_command(text: str) -> tuple[str, str] | None:
    """``(command, rest)`` when the text is an admin command, in English or Chinese, else ``None``."""
    text = text.strip()
    latin, han = _LATIN_VERB.match(text), _HAN_VERB.match(text)
    if latin is not None and latin["verb"].lower() in VERBS:
        verb, rest = VERBS[latin["verb"].lower()], (latin["rest"] or "").strip()
    elif han is not None:
        verb, rest = VERBS[han["verb"]], han["rest"].strip()
        if rest and not _ARGUMENT_START.match(rest):
            return None
    else:
        return None
    if verb == "unlock" and rest.lower() in _SELF_WORDS:
        return None
    if verb in _TAKES_ARGUMENT and not rest:
        return None
    if verb in ("pending", "stats") and rest:
        return None
    return verb, rest


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


def _request_id(text: str) -> int | None:
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
    request_id = request_id if request_id is not None else _request_id(turn.argument)
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
    if request.kind == Kind.UNLOCK and turn.services.policy.rule(reason).approver_totp and not turn.recently_verified:
        return Outcome([ask_code("approve")], step="approve_code", data={"request": request_id})
    return await _decide(turn, request_id, approve=True, note=None)


async def on_approve_code(turn: Turn) -> Outcome:
    refused = await check_code(turn, step="approve_code")
    if refused is not None:
        return refused
    return await _decide(turn, int(turn.data["request"]), approve=True, note=None)


async def start_denial(turn: Turn, request_id: int | None = None, reason: str = "") -> Outcome:
    if not turn.is_admin:
        return only_admins()
    request_id = request_id if request_id is not None else _request_id(turn.argument)
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
    request_id = request_id if request_id is not None else _request_id(turn.argument)
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


async def command(turn: Turn) -> Outcome:
    """A typed admin command; the engine only sends admins here."""
    parsed = parse_command(turn.text)
    if parsed is None or not turn.is_admin:
        return only_admins()
    verb, rest = parsed
    if verb == "pending":
        return await show_pending(turn)
    if verb == "approve":
        return await start_approval(turn, _request_id(rest))
    if verb == "deny":
        number, _, reason = rest.partition(" ")
        return await start_denial(turn, _request_id(number), reason.strip())
    if verb == "stats":
        return await stats(turn)
    if verb == "answer":
        number, _, answer = rest.partition(" ")
        return await start_answer(turn, _request_id(number), answer.strip())
    if not USERNAME.match(rest):
        return Outcome([Reply("admin/bad_username", buttons=(MENU,))])
    if verb in ("reset-totp", "unlink") and rest.casefold() == (turn.username or "").casefold():
        # Resetting one's own authenticator would let whoever holds this chat enrol a new one.
        return Outcome([Reply("admin/not_on_yourself", buttons=(MENU,))])
    if verb == "invite" and turn.inbound.public:
        return Outcome([Reply("admin/not_in_public", buttons=(MENU,))])
    if verb == "audit":
        return await audit_trail(turn, rest)
    if verb == "unlock":
        return await start_admin_unlock(turn, rest)
    if verb == "invite":
        return await invite(turn, rest)
    if verb == "unlink":
        return await unlink_user(turn, rest)
    return await reset_totp(turn, rest)


async def audit_trail(turn: Turn, username: str) -> Outcome:
    events = list(
        await turn.session.scalars(
            select(AuditEvent).where(AuditEvent.subject == username).order_by(AuditEvent.id.desc()).limit(15)
        )
    )
    rows = [{"at": e.at, "actor": e.actor, "action": e.action} for e in reversed(events)]
    return Outcome([Reply("admin/audit", {"username": username, "events": rows}, (MENU,))])


async def stats(turn: Turn) -> Outcome:
    counts = dict(
        (
            await turn.session.execute(
                select(UnlockRequest.status, func.count())
                .where(UnlockRequest.kind != Kind.SELF_SERVICE.value)  # counted below, as unlocks people did
                .group_by(UnlockRequest.status)
            )
        ).all()
    )
    self_service = await turn.session.scalar(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "unlock.self_service")
    )
    context = {"requests": {str(k): int(v) for k, v in counts.items()}, "self_service": int(self_service or 0)}
    return Outcome([Reply("admin/stats", context, (PENDING, MENU))])


async def invite(turn: Turn, username: str) -> Outcome:
    account = await turn.services.crm.find_account(username)
    if account is None:
        return Outcome([Reply("admin/no_such_user", {"username": username}, (MENU,))])
    inviter = turn.require_user()
    if account.username in turn.services.admins:
        # A second chat account for an admin is a second pair of approving hands: only the CLI, or another
        # admin with nothing of their own waiting for a decision, may hand one out.
        refusal = None
        if account.username == inviter:
            refusal = "own_account"
        elif await open_request(turn.session, inviter) is not None:
            refusal = "open_request"
        if refusal is not None:
            await audit.record(
                turn.session,
                at=turn.now,
                actor=turn.actor,
                action="link_code.refused_for_admin",
                subject=account.username,
                details={"by": inviter, "why": refusal},
            )
            return Outcome(
                [Reply("admin/invite_admin_refused", {"username": account.username, "why": refusal}, (MENU,))]
            )
    issued = await link_codes.issue(
        turn.session,
        now=turn.now,
        username=account.username,
        by=turn.actor,
        issuer=inviter,
        lifetime=turn.services.link_lifetime,
    )
    # The code is shown to the admin once, to pass on; it is not kept with the conversation.
    return Outcome(
        [
            Reply("admin/invited", {"username": account.username, "expires_at": issued.expires_at}),
            Reply("admin/invite_code", {"code": issued.code}, (MENU,), private=True),
        ]
    )


async def unlink_user(turn: Turn, username: str) -> Outcome:
    removed = await unlink(turn.session, now=turn.now, username=username, by=turn.actor)
    return Outcome([Reply("admin/unlinked", {"username": username, "count": removed}, (MENU,))])


async def reset_totp(turn: Turn, username: str) -> Outcome:
    removed = await enrolment.reset(turn.services.totp, turn.session, now=turn.now, username=username, actor=turn.actor)
    return Outcome([Reply("admin/totp_reset", {"username": username, "removed": removed}, (MENU,))])


async def start_admin_unlock(turn: Turn, username: str) -> Outcome:
    account = await turn.services.crm.find_account(username)
    if account is None:
        return Outcome([Reply("admin/no_such_user", {"username": username}, (MENU,))])
    if account.username == turn.username:  # by name or by e-mail: nobody unlocks themselves
        return Outcome([Reply("admin/decided", {"verdict": Verdict.OWN_REQUEST.value}, (MENU,))])
    if turn.recently_verified:
        return await admin_unlock(turn, account.username)
    if not await turn.services.totp.is_enrolled(turn.session, turn.require_user()):
        return not_enrolled()
    return Outcome([ask_code("admin_unlock")], step="unlock_code", data={"username": account.username})


async def on_admin_unlock_code(turn: Turn) -> Outcome:
    username = str(turn.data["username"])
    if not turn.is_admin or username == turn.username:  # the config may have changed since the question
        return only_admins()
    refused = await check_code(turn, step="unlock_code")
    if refused is not None:
        return refused
    return await admin_unlock(turn, username)


async def admin_unlock(turn: Turn, username: str) -> Outcome:
    """The admin's identity is settled: queue the unlock like an approved request."""
    status = await turn.services.crm.lock_status(username)
    request = UnlockRequest(
        kind="unlock",
        crm_username=username,
        reason=status.reason.value if status.reason else LockReason.UNKNOWN.value,
        evidence={},
        answers={},
        status=Status.APPROVED.value,
        channel=turn.inbound.channel,
        requester_user_id=turn.inbound.user_id,
        created_at=turn.now,
        updated_at=turn.now,
        expires_at=turn.now,
        decided_at=turn.now,
        decided_by=turn.username,
        decided_via=turn.account,
        decision_note="unlocked by an admin",
    )
    turn.session.add(request)
    await turn.session.flush()
    await audit.record(
        turn.session,
        at=turn.now,
        actor=turn.actor,
        action="admin.unlock",
        subject=username,
        details={"request": request.id},
    )
    item = await enqueue(
        turn.session,
        now=turn.now,
        request_id=request.id,
        action="execute_request",
        payload={"username": username, "steps": [{"action": "unlock"}]},
        key=f"request:{request.id}",
    )
    turn.queued.append(item.id)
    return Outcome([Reply("admin/unlock_queued", {"username": username, "id": request.id}, (MENU,))])


PENDING_FLOW = Flow("pending", start=show_pending)
APPROVE = Flow(
    "approve", start=start_approval, steps={"approve_code": on_approve_code}, takes_text=frozenset({"approve_code"})
)
DENY = Flow("deny", start=start_denial, steps={"deny_reason": on_deny_reason}, takes_text=frozenset({"deny_reason"}))
ANSWER = Flow(
    "answer", start=start_answer, steps={"answer_text": on_answer_text}, takes_text=frozenset({"answer_text"})
)
ADMIN_COMMAND = Flow(
    "admin",
    start=command,
    steps={
        "approve_code": on_approve_code,
        "deny_reason": on_deny_reason,
        "unlock_code": on_admin_unlock_code,
        "answer_text": on_answer_text,
    },
    takes_text=frozenset({"approve_code", "deny_reason", "unlock_code", "answer_text"}),
)
