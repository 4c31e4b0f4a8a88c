"""Admins in chat: the typed admin commands, in English or Chinese.

Who is an admin is decided by the configured CRM usernames and the linked
chat account, never by a display name or a group role. Commands:
``pending``, ``approve ID``, ``deny ID REASON``, ``answer ID TEXT``,
``audit USER``, ``unlock USER`` (with the admin's own code), ``invite USER``,
``unlink USER``, ``reset-totp USER``, ``stats`` (and 待处理, 批准, 拒绝, 回复,
审计, 解锁, 邀请, 解绑, 重置验证器, 统计). Deciding lives in ``bot.flows.decisions``.
"""

from __future__ import annotations

import asyncio
import re
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.clock import person_zone
from bot.crm.base import LockReason
from bot.flows.base import Flow, Outcome, Turn
from bot.flows.decisions import (
    PENDING,
    on_answer_text,
    on_approve_code,
    on_confirm_seats,
    on_deny_reason,
    only_admins,
    request_number,
    show_pending,
    start_answer,
    start_approval,
    start_denial,
)
from bot.flows.menu import MENU
from bot.flows.verification import ask_code, check_code, not_enrolled
from bot.identity import enrolment, link_codes
from bot.identity.linking import unlink
from bot.messages import Button, Image, Reply
from bot.reports.stats import gather
from bot.requests import audit
from bot.requests.approvals import Verdict
from bot.requests.outbox import enqueue
from bot.requests.policy import Path
from bot.requests.unlock_requests import Status, open_request
from bot.storage.models import AuditEvent, UnlockRequest

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
# Offered when an admin unlocks one account of a lock that no single unlock lifts.
FORCE_UNLOCK = Button("force_unlock", "force_unlock")
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


async def command(turn: Turn) -> Outcome:
    """A typed admin command; the engine only sends admins here."""
    parsed = parse_command(turn.text)
    if parsed is None or not turn.is_admin:
        return only_admins()
    verb, rest = parsed
    if verb == "pending":
        return await show_pending(turn)
    if verb == "approve":
        return await start_approval(turn, request_number(rest))
    if verb == "deny":
        number, _, reason = rest.partition(" ")
        return await start_denial(turn, request_number(number), reason.strip())
    if verb == "stats":
        return await stats(turn)
    if verb == "answer":
        number, _, answer = rest.partition(" ")
        return await start_answer(turn, request_number(number), answer.strip())
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
    """The locks of the last 30 days: the numbers in words and, where pictures can be drawn, the chart."""
    if not turn.is_admin:
        return only_admins()
    numbers = await gather(turn.session, now=turn.now, zone=_days_zone(turn))
    image = None
    words = turn.services.words
    if words is not None:
        from bot.reports.chart import render_chart  # matplotlib loads on the first chart, not at start

        # Drawing takes a moment of CPU: off the event loop, so other people's turns go on meanwhile.
        chart = await asyncio.to_thread(render_chart, numbers, words, turn.locale)
        image = Image(chart.png, "lock-stats.png", secret=False)
    return Outcome([Reply("admin/stats", numbers.summary(), (PENDING, MENU), image=image)])


def _days_zone(turn: Turn) -> ZoneInfo:
    """Where the chart's days begin: where the admin's times are shown."""
    return person_zone(turn.inbound.timezone, turn.services.timezone, turn.locale)


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
    status = await turn.services.crm.lock_status(account.username)
    if status.locked and status.reason is not None and turn.services.policy.rule(status.reason).path is Path.NONE:
        # A licence, a trial, a fault or maintenance: unlocking one account lifts nothing the company needs
        # lifted, and may let someone in who should not be. Only on purpose, and on the record.
        context = {"username": account.username, "reason": status.reason.value}
        return Outcome(
            [Reply("admin/unlock_not_one_by_one", context, (FORCE_UNLOCK, MENU))],
            step="confirm_force",
            data={"username": account.username, "reason": status.reason.value},
        )
    return await _verify_then_unlock(turn, account.username, {})


async def on_confirm_force(turn: Turn) -> Outcome:
    """The admin pressed "Unlock anyway": their code, then the unlock, recorded as forced."""
    username = str(turn.data["username"])
    if not turn.is_admin or username == turn.username:
        return only_admins()
    return await _verify_then_unlock(turn, username, {"forced_reason": str(turn.data["reason"])})


async def _verify_then_unlock(turn: Turn, username: str, extra: dict[str, str]) -> Outcome:
    if turn.recently_verified:
        return await admin_unlock(turn, username, forced_reason=extra.get("forced_reason"))
    if not await turn.services.totp.is_enrolled(turn.session, turn.require_user()):
        return not_enrolled()
    return Outcome([ask_code("admin_unlock")], step="unlock_code", data={"username": username, **extra})


async def on_admin_unlock_code(turn: Turn) -> Outcome:
    username = str(turn.data["username"])
    if not turn.is_admin or username == turn.username:  # the config may have changed since the question
        return only_admins()
    refused = await check_code(turn, step="unlock_code")
    if refused is not None:
        return refused
    forced = turn.data.get("forced_reason")
    return await admin_unlock(turn, username, forced_reason=str(forced) if forced else None)


async def admin_unlock(turn: Turn, username: str, *, forced_reason: str | None = None) -> Outcome:
    """The admin's identity is settled: queue the unlock like an approved request.

    ``forced_reason``: the lock is of a kind nobody lifts one account at a time, and the admin confirmed.
    """
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
        action="admin.unlock_forced" if forced_reason else "admin.unlock",
        subject=username,
        details={"request": request.id, **({"reason": forced_reason} if forced_reason else {})},
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


ADMIN_COMMAND = Flow(
    "admin",
    start=command,
    steps={
        "approve_code": on_approve_code,
        "confirm_seats": on_confirm_seats,
        "deny_reason": on_deny_reason,
        "unlock_code": on_admin_unlock_code,
        "confirm_force": on_confirm_force,
        "answer_text": on_answer_text,
    },
    takes_text=frozenset({"approve_code", "deny_reason", "unlock_code", "answer_text"}),
)
# The `stats` button (on the weekly digest): the same as typing "stats".
STATS = Flow("stats", start=stats)
