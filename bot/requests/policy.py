"""The unlock policy: for each lock reason, which path it takes and whether TOTP comes first.

The defaults follow the product description; ``[policy.<reason>]`` in the
config overrides any of them (``path = "self_service" | "approval" | "none"``,
``totp = true | false``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from bot.config import PolicyRule
from bot.crm.base import LockReason


class Path(StrEnum):
    SELF_SERVICE = "self_service"  # the bot unlocks after the checks
    APPROVAL = "approval"  # the bot files a request that an admin decides
    NONE = "none"  # nobody unlocks one account: the person is told why and what happens next


@dataclass(frozen=True, slots=True)
class Rule:
    path: Path
    totp: bool


DEFAULTS: Mapping[LockReason, Rule] = {
    LockReason.FAILED_PASSWORD: Rule(Path.SELF_SERVICE, totp=True),
    LockReason.UNUSUAL_IP: Rule(Path.APPROVAL, totp=True),
    LockReason.LICENSE_EXPIRED: Rule(Path.NONE, totp=False),
    LockReason.SEAT_LIMIT: Rule(Path.APPROVAL, totp=True),
    LockReason.SYSTEM_FAULT: Rule(Path.NONE, totp=False),
    LockReason.POLICY_VIOLATION: Rule(Path.APPROVAL, totp=True),
    LockReason.NETWORK: Rule(Path.SELF_SERVICE, totp=True),
    LockReason.RATE_LIMIT: Rule(Path.SELF_SERVICE, totp=True),
    LockReason.TRIAL_LIMIT: Rule(Path.NONE, totp=False),
    LockReason.MAINTENANCE: Rule(Path.NONE, totp=False),
    LockReason.UNKNOWN: Rule(Path.APPROVAL, totp=True),
}


class UnlockPolicy:
    """The rule for each lock reason: the defaults, overridden by the config."""

    def __init__(self, overrides: Mapping[str, PolicyRule] | None = None) -> None:
        rules = dict(DEFAULTS)
        for reason, rule in (overrides or {}).items():
            rules[LockReason(reason)] = Rule(Path(rule.path), rule.totp)
        self._rules = rules

    def rule(self, reason: LockReason) -> Rule:
        return self._rules[reason]
