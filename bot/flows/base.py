"""What a flow is: a start and a table of steps, each a function from a ``Turn`` to an ``Outcome``.

A flow that waits for the person returns ``Outcome(step=...)``; the engine
stores the step and hands the next message or button to that step's handler.
``Outcome(step=None)`` ends the flow. ``then`` starts another flow at once,
in the same turn, after these replies.
"""

from __future__ import annotations

import ast
import inspect
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

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
    verify_grace: timedelta = timedelta(minutes=5)  # a right code covers follow-ups in the same chat this long
    questions_per_day: int = 3  # questions one person may hand to the admins in a day
    # ``Renderer.label`` (key, locale, params): the words drawn into a picture (the stats chart); none, no picture.
    words: Callable[[str, str, Mapping[str, object] | None], str] | None = None
    timezone: str | None = None  # ``[bot] timezone``: where days begin for a person whose own zone is not known


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
    # When this chat account last gave a right code (kept with the conversation).
    verified_at: datetime | None = None

    @property
    def recently_verified(self) -> bool:
        """A right code from this chat account within the grace period: a follow-up needs no other."""
        grace = self.services.verify_grace
        return self.verified_at is not None and grace > timedelta(0) and self.now - self.verified_at <= grace

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


# Where a flow goes next, besides its own steps: ``Outcome(step=END)`` ends it, and a flow may map
# ``TIMEOUT`` to a handler that speaks when the person comes back after the idle timeout.
END: Final = None
TIMEOUT: Final = "timeout"


@dataclass(frozen=True, slots=True)
class Outcome:
    replies: list[Reply]
    step: str | None = END
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

    def __post_init__(self) -> None:
        unknown = sorted(self.takes_text - set(self.steps))
        if unknown:
            raise FlowError(f"flow {self.name!r}: takes_text names no step: {unknown}")
        if TIMEOUT in self.takes_text:
            raise FlowError(f"flow {self.name!r}: {TIMEOUT!r} is not waited in, so it takes no text")


class FlowError(Exception):
    """A flow is defined wrong: a bug in the code, found when the flows are imported."""


def check_steps(flows: Iterable[Flow]) -> None:
    """Every step a flow module names in ``step="..."`` must be a step of a flow defined in that module.

    Handlers name the step to wait in as text (``Outcome(..., step="code")``, ``check_code(turn,
    step="code")``); a misspelt one would strand a conversation in a step nobody handles. This reads the
    modules' source once, at import, so such a typo stops the program (and the tests) at once.
    """
    steps_by_module: dict[str, set[str]] = {}
    for flow in flows:
        steps_by_module.setdefault(flow.start.__module__, set()).update(flow.steps)
    for module_name, steps in steps_by_module.items():
        module = sys.modules[module_name]
        try:
            tree = ast.parse(inspect.getsource(module))
        except (OSError, TypeError):  # no source shipped: nothing to read, nothing to check
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            for keyword in node.keywords:
                if keyword.arg != "step" or not isinstance(keyword.value, ast.Constant):
                    continue
                name = keyword.value.value
                if isinstance(name, str) and name not in steps:
                    raise FlowError(
                        f"{module_name}, line {node.lineno}: step {name!r} is not a step of any flow defined there "
                        f"({sorted(steps)})"
                    )
