"""What every chat channel shares, so that a channel is mostly translation.

A channel turns a platform's events into ``Inbound`` and the engine's ``Rendered`` replies into the
platform's messages. Everything else is the same on every platform and lives here:

- the port: the few things a channel may ask of the bot (``EnginePort``), not the whole ``App``;
- redelivered events dropped early (``first_time``; the engine's ``processed_events`` table is the
  authority across restarts and replicas, this only spares it the obvious repeats);
- one person's events handled one at a time, in the order they came (``in_order``);
- background turns that ``stop`` waits for (``spawn``, ``settled``);
- linking a newcomer by the e-mail the platform vouches for, without asking the platform on every
  message (``link_by_email``);
- the unprompted part (``deliver``): notifications to people, posts for the admin destination that the
  housekeeper left (the weekly digest with its chart), request cards posted to the admin destination and
  redrawn when their request moves on. A channel only says how to send one;
- replies the platform would not take even after its client's retries (rate limited, unreachable) are
  kept in the database and sent at a later round (``hold``), on whichever replica gets there first.

``serve`` finds channels in ``CHANNELS`` and starts those whose settings section is ``configured``.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import weakref
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self

from cachetools import LRUCache, TTLCache

from bot.messages import LOCALES, Rendered, holds_secret, rendered_from_json, rendered_to_json
from bot.storage import channel_state
from bot.storage.leases import LeaseKeeper

if TYPE_CHECKING:
    from aiohttp import web

    from bot.app import App
    from bot.cards import CardToPost, CardToRedraw
    from bot.clock import Clock
    from bot.config import Settings
    from bot.engine import Delivery, Exchange
    from bot.storage.db import Database

log = logging.getLogger(__name__)

RECENT_EVENTS = 10_000  # event keys remembered per process to drop redeliveries before the database sees them
# A person is checked again after this long, not on every message: one the platform did not vouch for may
# have confirmed their e-mail or been given a CRM account since.
IDENTITY_RECHECK = timedelta(minutes=10)
PEOPLE_REMEMBERED = 10_000
HELD = "held"  # channel_state kind of replies kept to send later
HOLD_FOR = timedelta(seconds=30)  # how long held replies wait when the platform did not say (Retry-After)


class EnginePort(Protocol):
    """What a channel may ask of the bot."""

    async def handle(self, inbound: Any) -> list[Rendered]: ...

    async def exchange(self, inbound: Any) -> Exchange: ...

    async def is_linked(self, channel: str, team_id: str, user_id: str) -> bool: ...

    async def link_verified_email(self, channel: str, team_id: str, user_id: str, email: str) -> bool: ...

    async def awaits_secret(self, channel: str, team_id: str, user_id: str) -> bool: ...

    async def take_notifications(self, channel: str) -> list[Delivery]: ...

    async def delivery_failed(self, delivery: Delivery) -> None: ...

    async def admin_post(self, value: str) -> Rendered | None: ...


class CardPort(Protocol):
    """Which request cards to post to an admin destination, and which to redraw (``bot.cards.CardBoard``)."""

    async def to_post(self, channel: str, destination: str) -> list[CardToPost]: ...

    async def posted(self, channel: str, destination: str, request_id: int, message_ref: str) -> None: ...

    async def to_redraw(self, channel: str, destination: str) -> list[CardToRedraw]: ...

    async def redrawn(self, channel: str, destination: str, request_id: int, status_shown: str) -> None: ...

    async def release(self, channel: str, destination: str, request_id: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Memory:
    """What a channel keeps between messages: shared by every replica, kept across restarts.

    Small facts under (kind, key), such as "this group message awaits an answer from this person" or
    "delete this QR code once enrolment is over" (``bot.storage.channel_state``), and leases for work that
    one replica at a time must do (a Telegram poller). Never a secret: the table is not encrypted.
    """

    database: Database
    clock: Clock
    channel: str

    async def remember(self, kind: str, key: str, value: str = "", *, lifetime: timedelta | None = None) -> None:
        until = self.clock.now() + lifetime if lifetime is not None else None
        await channel_state.remember(self.database, self.channel, kind, key, value, expires_at=until)

    async def recall(self, kind: str, key: str) -> str | None:
        return await channel_state.recall(self.database, self.channel, kind, key, now=self.clock.now())

    async def take(self, kind: str, key: str) -> str | None:
        """The fact, for the one caller that removes it; ``None`` for the others."""
        return await channel_state.take(self.database, self.channel, kind, key, now=self.clock.now())

    def lease(self, name: str, *, ttl: timedelta) -> LeaseKeeper:
        return LeaseKeeper(self.database, self.clock, f"{self.channel}.{name}", ttl=ttl)


@dataclass(frozen=True, slots=True)
class ChannelContext:
    """Everything a channel gets from the rest of the bot."""

    engine: EnginePort
    cards: CardPort
    label: Callable[[str, str], str]  # (labels.yaml key, locale) -> text: button and platform UI words
    settings: Settings
    clock: Clock
    database: Database  # for ``memory()`` only: a channel reads and writes nothing else

    def memory(self, channel: str) -> Memory:
        return Memory(self.database, self.clock, channel)

    @classmethod
    def of(cls, app: App) -> ChannelContext:
        from bot.cards import CardBoard

        locale = app.settings.bot.default_locale
        return cls(
            engine=app.engine,
            cards=CardBoard(app.database, app.renderer, app.clock, locale=locale),
            label=lambda key, wanted: app.renderer.label(key, wanted if wanted in LOCALES else locale),
            settings=app.settings,
            clock=app.clock,
            database=app.database,
        )

    @property
    def default_locale(self) -> str:
        return self.settings.bot.default_locale


class KeyedLocks:
    """One ``asyncio.Lock`` per key, alive while someone holds or waits for it.

    asyncio hands a lock to its waiters first come, first served: events that take their person's lock
    before their first pause are handled in the order they came.
    """

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[Hashable, asyncio.Lock] = weakref.WeakValueDictionary()

    def __getitem__(self, key: Hashable) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock


class Channel(ABC):
    """A chat platform as ``serve`` runs it. Subclasses translate; this class does the rest."""

    name: ClassVar[str]

    def __init__(self, context: ChannelContext) -> None:
        self.context = context
        self.engine = context.engine
        self.default_locale = context.default_locale
        self.people = KeyedLocks()
        self._seen: LRUCache[str, bool] = LRUCache(maxsize=RECENT_EVENTS)
        # People checked lately: linked (nothing to do), or not vouched for (not asked about again for a while).
        # The engine reads who is linked from the database at every turn; this only spares the platform.
        self._checked: TTLCache[tuple[str, str], bool] = TTLCache(
            maxsize=PEOPLE_REMEMBERED, ttl=IDENTITY_RECHECK.total_seconds()
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._cards = asyncio.Lock()

    @classmethod
    def for_app(cls, app: App, **options: Any) -> Self:
        return cls(ChannelContext.of(app), **options)

    # ---- what serve calls -----------------------------------------------------------------------

    def add_routes(self, server: web.Application) -> None:  # noqa: B027 (most channels receive without HTTP)
        """Register HTTP routes on the shared server, for a channel that receives over HTTP."""

    @abstractmethod
    async def start(self) -> None:
        """Begin receiving: open a connection or a poll loop, or only get ready for HTTP."""

    async def connected(self) -> bool:
        """For /readyz: whether the link to the platform is up. A channel the platform calls is always up."""
        return True

    async def stop(self) -> None:
        """Stop receiving, let the turns under way finish (for a few seconds), then close."""
        await self.disconnect()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.close()

    async def disconnect(self) -> None:  # noqa: B027 (a channel the platform calls has nothing to close)
        """Stop receiving: close the connection or poll loop ``start`` opened."""

    async def close(self) -> None:  # noqa: B027 (most channels send through clients that need no closing)
        """Release what sending needs (an HTTP client), once the last turn has finished."""

    async def deliver(self) -> None:
        """Send what waits: held replies and notifications to people, then posts and request cards to the admins."""
        await self._send_held()
        for delivery in await self.engine.take_notifications(self.name):
            try:
                async with self.people[delivery.user_id]:
                    await self.send_unprompted(delivery.user_id, delivery.replies)
            except Exception as exc:
                if self.worth_retrying(exc):
                    log.warning("%s: notifications for %s wait for the next round", self.name, delivery.user_id)
                    await self.engine.delivery_failed(delivery)
                else:  # blocked by the person, or never opened a chat with the bot: sending again would not help
                    problem = describe_error(exc)
                    log.warning(
                        "%s: could not tell %s, and trying again would not help: %s",
                        self.name,
                        delivery.user_id,
                        problem,
                    )
        await self._post_due_to_admins()
        await self.update_cards()

    async def check(self) -> str | None:
        """For ``unlockbot channels check``: None when the credentials work, else what is wrong, in one line."""
        return None

    # ---- what a channel implements --------------------------------------------------------------

    @abstractmethod
    async def send_unprompted(self, user_id: str, replies: list[Rendered]) -> None:
        """Send replies nobody asked for just now (notifications) to the person's private chat."""

    def worth_retrying(self, error: Exception) -> bool:
        """Whether a failed send should be tried again next round: the platform unreachable or busy."""
        return isinstance(error, (OSError, TimeoutError))

    def retry_after(self, error: Exception) -> timedelta | None:
        """How long the platform asked us to wait after ``error``, when it said."""
        return None

    @property
    @abstractmethod
    def card_destination(self) -> str:
        """Where request cards go (an admin group or channel, from the settings); empty: none are posted."""

    @abstractmethod
    async def post_card(self, destination: str, request_id: int, card: Rendered) -> str:
        """Post a request card; return the platform's reference to the message, for redrawing it."""

    @abstractmethod
    async def redraw_card(self, destination: str, message_ref: str, request_id: int, card: Rendered) -> None:
        """Edit a posted card. Raise to try again next round; return when done or when it cannot be done."""

    @abstractmethod
    async def post_to_admins(self, destination: str, post: Rendered) -> None:
        """Post ``post`` (its text, and its image when it has one) into the admin destination, for all there."""

    # ---- helpers for channels -------------------------------------------------------------------

    async def hold(self, user_id: str, replies: list[Rendered], error: Exception) -> None:
        """Keep ``replies`` to ``user_id`` that the platform refused for now (``error``), to send them later.

        A reply that holds a secret (a QR code, a link code) is not written to the database in the clear:
        it is dropped with a warning, and the person gets it again by asking (the flow offers it anew).
        """
        kept = [reply for reply in replies if not holds_secret(reply)]
        if len(kept) < len(replies):
            log.warning("%s: a reply with a secret to %s could not be sent and is not kept", self.name, user_id)
        if not kept:
            return
        now = self.context.clock.now()
        wait = self.retry_after(error) or HOLD_FOR
        # The key orders one person's held replies by when they were held; expires_at says when they are due.
        key = f"{user_id}\n{now.timestamp():.6f}\n{id(replies):x}"
        await channel_state.remember(
            self.context.database, self.name, HELD, key, rendered_to_json(kept), expires_at=now + wait
        )
        log.warning("%s: %d reply(ies) to %s held for %s: %s", self.name, len(kept), user_id, wait, error)

    async def _send_held(self) -> None:
        due = await channel_state.take_due(self.context.database, self.name, HELD, now=self.context.clock.now())
        for key, value in due:
            user_id = key.split("\n", 1)[0]
            async with self.people[user_id]:
                try:
                    await self.send_unprompted(user_id, rendered_from_json(value))
                except Exception as exc:
                    if not self.worth_retrying(exc):
                        log.warning(
                            "%s: held replies to %s cannot be sent: %s", self.name, user_id, describe_error(exc)
                        )
                        continue
                    await self.hold(user_id, rendered_from_json(value), exc)

    def first_time(self, key: str) -> bool:
        """False for an event key this process has seen already (a platform's retry)."""
        if key in self._seen:
            log.info("%s: event %s delivered again; handled once", self.name, key)
            return False
        self._seen[key] = True
        return True

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a turn in the background (the platform wants its answer now); ``stop`` waits for it."""
        task = asyncio.create_task(self._guarded(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settled(self) -> None:
        """Wait until every turn started so far (and those they started) has finished."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _guarded(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception as exc:  # a background turn has nobody else to tell
            log.error("%s: a turn failed: %s", self.name, describe_error(exc), exc_info=exc)

    def label(self, key: str, locale: str | None) -> str:
        return self.context.label(key, locale or self.default_locale)

    async def link_by_email(self, team_id: str, user_id: str, email: Callable[[], Awaitable[str | None]]) -> None:
        """Link a newcomer by the e-mail their platform vouches for (``email`` asks it; ``None``: it does not).

        Someone the platform does not vouch for, or who has no CRM account, is simply not linked: the
        engine answers them as anyone it does not know. They are not asked about again for a while.
        """
        key = (team_id, user_id)
        if key in self._checked:
            return
        if await self.engine.is_linked(self.name, team_id, user_id):
            self._checked[key] = True
            return
        address = await email()
        if address is None:
            log.info("%s: no e-mail vouched for %s; not linked", self.name, user_id)
        elif await self.engine.link_verified_email(self.name, team_id, user_id, address):
            self._checked[key] = True
            return
        else:
            log.info("%s: no active CRM account has the e-mail of %s; not linked", self.name, user_id)
        self._checked[key] = False

    async def update_cards(self) -> None:
        """Post cards for new requests to the admin destination, and redraw those whose request moved on."""
        destination = self.card_destination
        if not destination:
            return
        cards = self.context.cards
        async with self._cards:
            for new in await cards.to_post(self.name, destination):
                try:
                    ref = await self.post_card(destination, new.request_id, new.card)
                except Exception as exc:  # given back: the next round, on any replica, posts it
                    self._card_failed("post", new.request_id, exc)
                    await cards.release(self.name, destination, new.request_id)
                    continue
                await cards.posted(self.name, destination, new.request_id, ref)
            for moved in await cards.to_redraw(self.name, destination):
                try:
                    await self.redraw_card(destination, moved.message_ref, moved.request_id, moved.card)
                except Exception as exc:
                    self._card_failed("redraw", moved.request_id, exc)
                    await cards.release(self.name, destination, moved.request_id)
                    continue
                await cards.redrawn(self.name, destination, moved.request_id, moved.status)

    async def _post_due_to_admins(self) -> None:
        """Post what the housekeeper left for the admin destination (the weekly digest), each on one replica."""
        database, now = self.context.database, self.context.clock.now()
        due = await channel_state.take_due(database, self.name, channel_state.ADMIN_POST, now=now)
        destination = self.card_destination
        for key, value in due:
            if not destination:  # the settings changed since it was left: nowhere to post it
                log.warning("%s: %s has no admin destination to go to; dropped", self.name, key)
                continue
            try:
                post = await self.engine.admin_post(value)
                if post is None or holds_secret(post):  # a secret never goes to a shared destination
                    log.error("%s: %s is not a post this version knows; dropped", self.name, key)
                    continue
                await self.post_to_admins(destination, post)
            except Exception as exc:
                if not self.worth_retrying(exc):
                    log.error("%s: could not post %s to the admins: %s", self.name, key, describe_error(exc))
                    continue
                # Kept, due again a little later: the next round, on any replica, posts it.
                wait = self.retry_after(exc) or HOLD_FOR
                await channel_state.remember(
                    database, self.name, channel_state.ADMIN_POST, key, value, expires_at=now + wait
                )
                log.warning("%s: %s waits %s to be posted to the admins: %s", self.name, key, wait, describe_error(exc))

    def _card_failed(self, what: str, request_id: int, error: Exception) -> None:
        level = logging.WARNING if self.worth_retrying(error) else logging.ERROR
        log.log(
            level, "%s: could not %s the card of request %s: %s", self.name, what, request_id, describe_error(error)
        )


def describe_error(error: BaseException) -> str:
    """An error in one line for a log, without the request it came from (which may carry a code)."""
    return f"{type(error).__name__}: {str(error)[:200]}"


# ---- the registry ---------------------------------------------------------------------------------

# Each channel by the name of its settings section, and where its class lives: imported only when configured,
# so a deployment pays for the SDKs it uses.
CHANNELS: dict[str, str] = {
    "telegram": "bot.handlers.telegram:TelegramChannel",
    "slack": "bot.handlers.slack:SlackChannel",
    "dingtalk": "bot.handlers.dingtalk:DingTalkChannel",
    "feishu": "bot.handlers.feishu:FeishuChannel",
    "wecom": "bot.handlers.wecom:WeComChannel",
}


def channel_class(name: str) -> type[Channel]:
    module, _, attribute = CHANNELS[name].partition(":")
    found = getattr(importlib.import_module(module), attribute)
    if not (isinstance(found, type) and issubclass(found, Channel)):
        raise TypeError(f"{CHANNELS[name]} is not a Channel")
    return found


def admin_destinations(settings: Settings) -> tuple[str, ...]:
    """The channels that are configured and name an admin destination, in the order of ``CHANNELS``.

    Read from the settings alone, without starting a channel: the housekeeper leaves these the weekly digest.
    """
    sections = ((name, getattr(settings, name)) for name in CHANNELS)
    return tuple(name for name, section in sections if section.configured and section.has_admin_destination)


def configured_channels(app: App) -> list[Channel]:
    """A channel for every section of the settings that is filled in, in the order of ``CHANNELS``."""
    return [channel_class(name).for_app(app) for name in CHANNELS if getattr(app.settings, name).configured]
