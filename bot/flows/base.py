"""What a flow is: a start and a table of steps, each a function from a ``Turn`` to an ``Outcome``.

A flow that waits for the person returns ``Outcome(step=...)``; the engine
stores the step and hands the next message or button to that step's handler.
``Outcome(step=None)`` ends the flow. ``then`` starts another flow at once,
in the same turn, after these replies.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.crm.base import CrmBackend
from bot.errors import NotLinked
from bot.identity.linking import account_key
from bot.identity.totp import TotpVerifier
from bot.knowledge.retrieval import FaqIndex
from bot.messages import Inbound, Reply
from bot.requests.policy import Limits, UnlockPolicy


@dataclass(frozen=True, slots=True)
class Services:
    """What flows may use; nothing here knows about Slack or Telegram."""

    crm: CrmBackend
    totp: TotpVerifier
    faq: FaqIndex
    policy: UnlockPolicy
    clock: Clock
    admins: tuple[str, ...]  # CRM usernames of the admins
    issuer: str  # the name authenticator apps show
    limits: Limits
    request_lifetime: timedelta
    link_lifetime: timedelta


@dataclass(slots=True)
class Turn:
    """One inbound event as a flow sees it."""

    inbound: Inbound
    locale: str
    session: AsyncSession
    services: Services
    username: str | None  # the linked CRM user, if any
    data: dict[str, Any]
    now: datetime
    # Outbox items this turn queued that the engine runs as soon as the turn has committed.
    queued: list[int] = field(default_factory=list)

    @property
    def account(self) -> str:
        """This chat account (channel, team and user), as decisions and notifications name it."""
        return account_key(self.inbound.channel, self.inbound.team_id, self.inbound.user_id)

    @property
    def actor(self) -> str:
        return f"{self.inbound.channel}:{self.inbound.user_id}"

    @property
    def text(self) -> str:
        return self.inbound.text

    @property
    def button(self) -> str:
        return self.inbound.button

    @property
    def argument(self) -> str:
        """What follows the colon in a button's action (``approve:12`` gives ``12``)."""
        return self.inbound.button.partition(":")[2]

    @property
    def is_admin(self) -> bool:
        return self.username is not None and self.username in self.services.admins

    def require_user(self) -> str:
        if self.username is None:
            raise NotLinked()
        return self.username


@dataclass(frozen=True, slots=True)
class Outcome:
    replies: list[Reply]
    step: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    then: str | None = None  # an action whose flow starts right after these replies
    locale: str | None = None  # the person chose a language


Handler = Callable[[Turn], Awaitable[Outcome]]


@dataclass(frozen=True, slots=True)
class Flow:
    """A conversation: how it starts, and what each waiting step does with the next event.

    Steps in ``takes_text`` receive whatever the person types (a code, an answer);
    in the other steps typed text is read as a command, as when nothing is waiting.
    """

    name: str
    start: Handler
    steps: Mapping[str, Handler] = field(default_factory=dict)
    takes_text: frozenset[str] = frozenset()
