"""The unlock policy: for each lock reason, which path it takes and whether TOTP comes first.

The defaults follow the product description; ``[policy.<reason>]`` in the
config overrides any of them (``path = "self_service" | "approval" | "none"``,
``totp = true | false``, ``approver_totp = true | false``). Limits on
self-service (per day, and a cool-down after a password reset) come from
``[requests]`` and are checked by ``self_service_refusal``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import PolicyRule
from bot.crm.base import LockReason
from bot.messages import Button
from bot.storage.models import AuditEvent


class Path(StrEnum):
    SELF_SERVICE = "self_service"  # the bot unlocks after the checks
    APPROVAL = "approval"  # the bot files a request that an admin decides
    NONE = "none"  # nobody unlocks one account: the person is told why and what happens next


def first_step(path: Path | None, *, open_request: bool, when_nobody: Button) -> Button | None:
    """The button that moves a locked person on: their request already on its way, an unlock (done by the
    bot, or asked of an admin), or ``when_nobody`` where nobody unlocks one account; ``None`` for no path."""
    if open_request:
        return Button("request_status", "my_request")
    if path is Path.SELF_SERVICE:
        return Button("unlock", "unlock")
    if path is Path.APPROVAL:
        return Button("unlock", "request_unlock")
    if path is Path.NONE:
        return when_nobody
    return None


@dataclass(frozen=True, slots=True)
class Rule:
    path: Path
    totp: bool
    # The approving admin gives their own code too: the default wherever an admin approves, so a chat
    # account alone (borrowed, or linked behind the admin's back) cannot approve.
    approver_totp: bool = False


DEFAULTS: Mapping[LockReason, Rule] = {
    LockReason.FAILED_PASSWORD: Rule(Path.SELF_SERVICE, totp=True),
    LockReason.UNUSUAL_IP: Rule(Path.APPROVAL, totp=True, approver_totp=True),
    LockReason.LICENSE_EXPIRED: Rule(Path.NONE, totp=False),
    LockReason.SEAT_LIMIT: Rule(Path.APPROVAL, totp=True, approver_totp=True),
    LockReason.SYSTEM_FAULT: Rule(Path.NONE, totp=False),
    LockReason.POLICY_VIOLATION: Rule(Path.APPROVAL, totp=True, approver_totp=True),
    LockReason.NETWORK: Rule(Path.SELF_SERVICE, totp=True),
    LockReason.RATE_LIMIT: Rule(Path.SELF_SERVICE, totp=True),
    LockReason.TRIAL_LIMIT: Rule(Path.NONE, totp=False),
    LockReason.MAINTENANCE: Rule(Path.NONE, totp=False),
    LockReason.UNKNOWN: Rule(Path.APPROVAL, totp=True, approver_totp=True),
}


class UnlockPolicy:
    """The rule for each lock reason: the defaults, overridden by the config."""

    def __init__(self, overrides: Mapping[str, PolicyRule] | None = None) -> None:
        rules = dict(DEFAULTS)
        for reason, rule in (overrides or {}).items():
            code = LockReason(reason)
            path = Path(rule.path)
            approver_totp = path is Path.APPROVAL if rule.approver_totp is None else rule.approver_totp
            rules[code] = Rule(path, rule.totp, approver_totp)
        self._rules = rules

    def rule(self, reason: LockReason) -> Rule:
        return self._rules[reason]


@dataclass(frozen=True, slots=True)
class Limits:
    per_day: int
    reset_cooldown: timedelta


async def self_service_refusal(
    session: AsyncSession, *, now: datetime, username: str, limits: Limits
) -> tuple[str, timedelta | None] | None:
    """Why a self-service unlock must wait, if it must: ``("daily_cap", None)`` or ``("cooldown", wait)``."""
    recent_reset = await session.scalar(
        select(func.max(AuditEvent.at)).where(
            AuditEvent.subject == username,
            AuditEvent.action == "password.reset",
            AuditEvent.at > now - limits.reset_cooldown,
        )
    )
    if recent_reset is not None:
        return "cooldown", recent_reset + limits.reset_cooldown - now
    unlocks = await session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(
            AuditEvent.subject == username,
            AuditEvent.action == "unlock.self_service",
            AuditEvent.at > now - timedelta(days=1),
        )
    )
    if int(unlocks or 0) >= limits.per_day:
        return "daily_cap", None
    return None
