"""Unlock me: TOTP, then what the policy says: unlock now, file a request, or explain why not."""

from __future__ import annotations

from bot.crm.base import Capability, LockReason, LockStatus
from bot.flows.base import Flow, Outcome, Turn
from bot.flows.facts import json_evidence
from bot.flows.menu import MENU_BUTTONS
from bot.flows.verification import ask_code, check_code, not_enrolled
from bot.messages import Button, Reply
from bot.requests import audit
from bot.requests.policy import Path
from bot.requests.unlock_requests import file_request, open_request

MENU = Button("menu", "menu")


async def start(turn: Turn) -> Outcome:
    username = turn.require_user()
    status = await turn.services.crm.lock_status(username)
    if not status.locked or status.reason is None:
        return Outcome([Reply("diagnose/not_locked", buttons=MENU_BUTTONS)])
    pending = await open_request(turn.session, username)
    if pending is not None:
        return Outcome([Reply("unlock/already_requested", {"id": pending.id, "status": pending.status})])
    rule = turn.services.policy.rule(status.reason)
    if rule.path is Path.NONE:
        return Outcome([Reply("unlock/not_possible", {"reason": status.reason.value}, (MENU,))])
    if rule.path is Path.SELF_SERVICE and Capability.UNLOCK not in turn.services.crm.capabilities:
        return Outcome([Reply("errors/crm_unsupported", buttons=(MENU,))])
    if not rule.totp:
        return await act(turn, status)
    if not await turn.services.totp.is_enrolled(turn.session, username):
        return not_enrolled()
    return Outcome([ask_code("unlock")], step="code")


async def on_code(turn: Turn) -> Outcome:
    refused = await check_code(turn, step="code")
    if refused is not None:
        return refused
    status = await turn.services.crm.lock_status(turn.require_user())
    if not status.locked or status.reason is None:
        return Outcome([Reply("diagnose/not_locked", buttons=MENU_BUTTONS)])
    return await act(turn, status)


async def act(turn: Turn, status: LockStatus) -> Outcome:
    """Carry out the policy's path for a person whose identity is settled."""
    assert status.reason is not None
    username = turn.require_user()
    rule = turn.services.policy.rule(status.reason)
    if rule.path is Path.APPROVAL:
        request = await file_request(
            turn.session,
            now=turn.now,
            username=username,
            reason=status.reason,
            evidence=json_evidence(status.evidence),
            channel=turn.inbound.channel,
            requester=turn.inbound.user_id,
        )
        return Outcome([Reply("unlock/requested", {"id": request.id, "reason": status.reason.value}, (MENU,))])
    await self_service_unlock(turn, status)
    buttons = [MENU]
    if status.reason is LockReason.FAILED_PASSWORD and Capability.RESET_PASSWORD in turn.services.crm.capabilities:
        buttons.insert(0, Button("reset_password", "reset_password"))
    return Outcome([Reply("unlock/done", {"reason": status.reason.value}, tuple(buttons))])


async def self_service_unlock(turn: Turn, status: LockStatus) -> None:
    username = turn.require_user()
    # One key per lock: a repeated turn can never unlock twice for the same lock.
    key = f"self:{username}:{status.locked_at.isoformat() if status.locked_at else 'unknown'}"
    await turn.services.crm.unlock(username, idempotency_key=key)
    await audit.record(
        turn.session,
        at=turn.now,
        actor=turn.actor,
        action="unlock.self_service",
        subject=username,
        details={"reason": status.reason.value if status.reason else None, "idempotency_key": key},
    )


async def reset_password(turn: Turn) -> Outcome:
    username = turn.require_user()
    if Capability.RESET_PASSWORD not in turn.services.crm.capabilities:
        return Outcome([Reply("errors/crm_unsupported", buttons=(MENU,))])
    reset = await turn.services.crm.reset_password(username, idempotency_key=f"reset:{username}:{turn.now.date()}")
    await audit.record(turn.session, at=turn.now, actor=turn.actor, action="password.reset", subject=username)
    return Outcome([Reply("unlock/password_reset", {"sent_to": reset.sent_to}, (MENU,))])


UNLOCK = Flow(
    "unlock",
    start=start,
    steps={"code": on_code},
    takes_text=frozenset({"code"}),
)
RESET_PASSWORD = Flow("reset_password", start=reset_password)
