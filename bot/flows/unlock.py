"""Unlock me: TOTP, then what the policy says: unlock now, file a request, or explain why not.

For an unusual IP the request carries the person's answers (travelling?
where? trust this address?), so the admin decides with the context on the
card. Self-service is capped per day and waits after a password reset;
past the cap the request goes to an admin instead.
"""

from __future__ import annotations

from typing import Any

from bot.crm.base import Capability, LockReason, LockStatus
from bot.flows.base import Flow, Outcome, Turn
from bot.flows.facts import json_evidence, plain, seat_facts
from bot.flows.menu import CANCEL, MENU, MENU_BUTTONS
from bot.flows.verification import ask_code, check_code, not_enrolled
from bot.messages import Button, Reply
from bot.requests import audit
from bot.requests.approvals import approve_self_service, cancel
from bot.requests.notifications import notify_once_a_day
from bot.requests.policy import Path, self_service_refusal
from bot.requests.unlock_requests import Kind, file_request, open_request
from bot.storage.models import UnlockRequest

MAX_ANSWER = 200


async def start(turn: Turn) -> Outcome:
    username = turn.require_user()
    status = await turn.services.crm.lock_status(username)
    if not status.locked or status.reason is None:
        return Outcome([Reply("diagnose/not_locked", buttons=MENU_BUTTONS)])
    pending = await open_request(turn.session, username)
    if pending is not None:
        return already_in_progress(pending)
    rule = turn.services.policy.rule(status.reason)
    if rule.path is Path.NONE:
        notified = await tell_admins_about(turn, status)
        return Outcome([Reply("unlock/not_possible", {"reason": status.reason.value, "notified": notified}, (MENU,))])
    if rule.path is Path.SELF_SERVICE:
        if Capability.UNLOCK not in turn.services.crm.capabilities:
            return Outcome([Reply("errors/crm_unsupported", buttons=(MENU,))])
        refusal = await self_service_refusal(turn.session, now=turn.now, username=username, limits=turn.services.limits)
        if refusal is not None and refusal[0] == "cooldown":
            assert refusal[1] is not None
            return Outcome([Reply("unlock/cooldown", {"wait": refusal[1].total_seconds()}, (MENU,))])
    if not rule.totp or turn.recently_verified:
        return await after_identity(turn, status)
    if not await turn.services.totp.is_enrolled(turn.session, username):
        return not_enrolled()
    return Outcome([ask_code("unlock")], step="code")


def already_in_progress(pending: UnlockRequest) -> Outcome:
    if pending.kind == Kind.SELF_SERVICE:
        return Outcome([Reply("unlock/in_progress", {"id": pending.id}, (MENU,))])
    buttons = (Button(f"withdraw:{pending.id}", "withdraw"), MENU) if pending.status == "pending" else (MENU,)
    return Outcome([Reply("unlock/already_requested", {"id": pending.id, "status": pending.status}, buttons)])


# Locks nobody lifts one by one, but that someone must act on: the licence, the trial, a fault.
ADMIN_NOTICES = frozenset({LockReason.LICENSE_EXPIRED, LockReason.TRIAL_LIMIT, LockReason.SYSTEM_FAULT})


async def tell_admins_about(turn: Turn, status: LockStatus) -> bool:
    """Whether the admins know (now, or from earlier today) about this person's lock."""
    if status.reason not in ADMIN_NOTICES or not turn.services.admins:
        return False
    await notify_once_a_day(
        turn.session,
        now=turn.now,
        usernames=turn.services.admins,
        template="admin/lock_notice",
        context={"username": status.username, "reason": status.reason.value},
        about=status.username,
        actor=turn.actor,
    )
    return True


async def on_code(turn: Turn) -> Outcome:
    refused = await check_code(turn, step="code")
    if refused is not None:
        return refused
    status = await turn.services.crm.lock_status(turn.require_user())
    if not status.locked or status.reason is None:
        return Outcome([Reply("diagnose/not_locked", buttons=MENU_BUTTONS)])
    return await after_identity(turn, status)


async def after_identity(turn: Turn, status: LockStatus) -> Outcome:
    """Identity is settled: ask the reason's questions, or act."""
    if status.reason is LockReason.UNUSUAL_IP and turn.services.policy.rule(status.reason).path is Path.APPROVAL:
        evidence = status.evidence
        data = {"ip": evidence.ip, "location": evidence.location, "place": plain(evidence.place)}
        buttons = (Button("ans:yes", "yes"), Button("ans:no", "no"), CANCEL)
        return Outcome([Reply("unlock/ask_travelling", data, buttons)], step="travelling", data=data)
    return await act(turn, status, answers={})


async def on_travelling(turn: Turn) -> Outcome:
    if turn.button == "ans:yes":
        return Outcome([Reply("unlock/ask_where", buttons=(CANCEL,))], step="where", data=turn.data)
    if turn.button == "ans:no":
        return await file(turn, {"travelling": False})
    return Outcome(
        [Reply("unlock/ask_travelling", turn.data, (Button("ans:yes", "yes"), Button("ans:no", "no"), CANCEL))],
        step="travelling",
        data=turn.data,
    )


async def on_where(turn: Turn) -> Outcome:
    data = {**turn.data, "where": turn.text[:MAX_ANSWER]}
    if not data.get("ip") or Capability.TRUSTED_IPS not in turn.services.crm.capabilities:
        return await file(turn, {"travelling": True, "where": data["where"]})
    buttons = (Button("ans:yes", "trust_this_ip"), Button("ans:no", "do_not_trust"), CANCEL)
    return Outcome([Reply("unlock/ask_trust", data, buttons)], step="trust", data=data)


async def on_trust(turn: Turn) -> Outcome:
    answers: dict[str, Any] = {"travelling": True, "where": turn.data.get("where")}
    if turn.button == "ans:yes":
        answers["trust_ip"] = turn.data.get("ip")
    return await file(turn, answers)


async def file(turn: Turn, answers: dict[str, Any]) -> Outcome:
    status = await turn.services.crm.lock_status(turn.require_user())
    if not status.locked or status.reason is None:
        return Outcome([Reply("diagnose/not_locked", buttons=MENU_BUTTONS)])
    return await act(turn, status, answers=answers)


async def act(turn: Turn, status: LockStatus, *, answers: dict[str, Any]) -> Outcome:
    """Carry out the policy's path for a person whose identity is settled."""
    assert status.reason is not None
    username = turn.require_user()
    rule = turn.services.policy.rule(status.reason)
    capped = False
    if rule.path is Path.SELF_SERVICE:
        refusal = await self_service_refusal(turn.session, now=turn.now, username=username, limits=turn.services.limits)
        capped = refusal is not None and refusal[0] == "daily_cap"
    if rule.path is Path.APPROVAL or capped:
        evidence = json_evidence(status.evidence)
        if status.reason is LockReason.SEAT_LIMIT:  # the admin decides with the seats and who could free one
            evidence.update(await seat_facts(turn.services.crm, username, status.evidence.licence))
        request = await file_request(
            turn.session,
            now=turn.now,
            username=username,
            reason=status.reason,
            evidence=evidence,
            channel=turn.inbound.channel,
            requester=turn.inbound.user_id,
            answers={**answers, **({"daily_cap_reached": True} if capped else {})},
            lifetime=turn.services.request_lifetime,
            admins=turn.services.admins,
        )
        context = {
            "id": request.id,
            "reason": status.reason.value,
            "capped": capped,
            "flagged": json_evidence(status.evidence).get("flagged_action"),
            "trust_ip": answers.get("trust_ip"),
        }
        return Outcome([Reply("unlock/requested", context, (Button(f"withdraw:{request.id}", "withdraw"), MENU))])
    pending = await open_request(turn.session, username)
    if pending is not None:  # a code typed twice, or a second chat account at the same time
        return already_in_progress(pending)
    # The unlock is recorded and queued with the code that was just used up, and carried out by the outbox
    # once this turn has committed: a slow CRM can neither lose it nor make it happen twice.
    request, item = await approve_self_service(
        turn.session,
        now=turn.now,
        username=username,
        reason=status.reason.value,
        # One key per lock (or per attempt when the CRM gives no lock time): never two unlocks for one lock.
        lock_key=(status.locked_at or turn.now).isoformat(),
        channel=turn.inbound.channel,
        requester=turn.inbound.user_id,
    )
    turn.queued.append(item.id)
    return Outcome([Reply("unlock/working", {"id": request.id}, (MENU,))])


async def reset_password(turn: Turn) -> Outcome:
    username = turn.require_user()
    if Capability.RESET_PASSWORD not in turn.services.crm.capabilities:
        return Outcome([Reply("errors/crm_unsupported", buttons=(MENU,))])
    # The button is offered once per unlock, so each press is its own reset.
    reset = await turn.services.crm.reset_password(username, idempotency_key=f"reset:{username}:{turn.now.isoformat()}")
    await audit.record(turn.session, at=turn.now, actor=turn.actor, action="password.reset", subject=username)
    return Outcome([Reply("unlock/password_reset", {"sent_to": reset.sent_to}, (MENU,))])


async def withdraw(turn: Turn) -> Outcome:
    username = turn.require_user()
    request_id = int(turn.argument) if turn.argument.isdigit() else -1
    done = await cancel(turn.session, now=turn.now, request_id=request_id, username=username, actor=turn.actor)
    return Outcome([Reply("unlock/withdrawn" if done else "unlock/not_withdrawn", {"id": request_id}, MENU_BUTTONS)])


UNLOCK = Flow(
    "unlock",
    start=start,
    steps={"code": on_code, "travelling": on_travelling, "where": on_where, "trust": on_trust},
    takes_text=frozenset({"code", "where"}),
)
RESET_PASSWORD = Flow("reset_password", start=reset_password)
WITHDRAW = Flow("withdraw", start=withdraw)
