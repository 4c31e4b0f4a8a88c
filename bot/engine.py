"""The engine: one inbound event in, rendered replies out, the conversation saved between.

Conversation state is kept per (channel, team, user) in the database, so a
restart resumes the same step. Each turn runs in one transaction: a flow that
fails changes nothing, and the person gets a clear reply in their language
while the operator gets a log line. Channels call ``handle`` for what people
say, ``take_notifications``/``delivery_failed`` to push what waits for them,
``admin_post`` for what the housekeeper left for an admin destination (the weekly digest),
and ``is_linked``/``link_verified_email`` where the platform vouches for an
e-mail address.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import person_zone
from bot.errors import BotError
from bot.flows import ACTIONS, FLOWS, TIMEOUT, Flow, Outcome, Services, Turn
from bot.flows.admin import parse_command
from bot.flows.menu import MENU_BUTTONS
from bot.identity.link_codes import looks_like_link_code
from bot.identity.linking import account_key, link, linked_username
from bot.knowledge.commands import CommandMatcher
from bot.language import guess_locale
from bot.messages import (
    LOCALES,
    Inbound,
    InboundKind,
    Rendered,
    Reply,
    replies_from_json,
    replies_to_json,
)
from bot.metrics import Metrics, TurnOutcome
from bot.rendering import Renderer
from bot.reports.digest import AdminPost, digest_post
from bot.reports.stats import gather
from bot.requests.notifications import requeue, take_pending
from bot.requests.outbox import OutboxWorker
from bot.storage.db import Database
from bot.storage.models import ChatIdentity, Conversation, Notification, ProcessedEvent
from bot.storage.upsert import insert_if_absent

log = logging.getLogger(__name__)

MAX_TEXT = 2000
# Control and invisible formatting characters: dropped from what people type.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
# Words that leave any step, even one waiting for a code.
ESCAPES = frozenset({"cancel", "menu"})
# Buttons on request cards posted to admin destinations; the flows check who pressed them.
CARD_ACTIONS = frozenset({"approve", "deny", "answer"})
# What a platform's own commands (Telegram's /unlock, a Feishu menu item) may start, whatever step the
# conversation is in: a command is said on purpose, so it never reads as the answer to a question.
PLATFORM_COMMANDS = frozenset({"menu", "unlock", "why", "lang", "cancel", "request_status"})

# A person's conversation, locked for the turn (on PostgreSQL; only its row: the identity may be absent), and the
# CRM user their chat account is linked to, in one round trip. Built once: a statement built per turn costs more
# CPU than the database spends answering it.
_CONVERSATION_AND_USER = (
    select(Conversation, ChatIdentity.crm_username)
    .outerjoin(
        ChatIdentity,
        and_(
            ChatIdentity.channel == Conversation.channel,
            ChatIdentity.team_id == Conversation.team_id,
            ChatIdentity.platform_user_id == Conversation.user_id,
        ),
    )
    .where(
        Conversation.channel == bindparam("channel"),
        Conversation.team_id == bindparam("team_id"),
        Conversation.user_id == bindparam("user_id"),
    )
    .with_for_update(of=Conversation)
)

# Terminal escape sequences (colours, cursor moves) pasted with the text.
_ESCAPE_SEQUENCE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


def clean_text(text: str) -> str:
    text = _ESCAPE_SEQUENCE.sub("", text.replace("\r\n", "\n").replace("\t", " "))
    return _CONTROL.sub("", text).strip()


@dataclass(slots=True)
class _TurnNote:
    """What the log line and the metrics say of a turn: how it ended, and the flow and step it left."""

    outcome: str = TurnOutcome.ERROR
    flow: str | None = None
    step: str | None = None
    prompt: str = "[]"  # what the person had last been asked, as the turn found it


@dataclass(frozen=True, slots=True)
class Exchange:
    """A turn's replies, and the prompt it answered (as stored with the conversation)."""

    replies: list[Rendered]
    prompt: str

    @property
    def answered_secret_prompt(self) -> bool:
        """Whether that prompt asked for a secret, so the message may hold a code. Read only when asked."""
        return any(reply.secret_input for reply in replies_from_json(self.prompt))


@dataclass(frozen=True, slots=True)
class Delivery:
    """Replies to send to one person, unprompted."""

    user_id: str
    team_id: str
    replies: list[Rendered]
    notification_ids: tuple[int, ...] = ()


class Engine:
    """Dispatches inbound events to flows and keeps each conversation's state."""

    def __init__(
        self,
        database: Database,
        services: Services,
        renderer: Renderer,
        commands: CommandMatcher,
        *,
        default_locale: str,
        outbox: OutboxWorker | None = None,
        idle_timeout: timedelta = timedelta(minutes=30),
        metrics: Metrics | None = None,
    ) -> None:
        self._db = database
        self._services = services
        self._renderer = renderer
        self._commands = commands
        self._default_locale = default_locale
        # Runs the CRM work a turn queued (an unlock) right after the turn commits, so the outcome is usually
        # known before the reply goes out; without it the housekeeper carries the work out a little later.
        self._outbox = outbox
        self._idle_timeout = idle_timeout
        self._metrics = metrics
        self._locks: weakref.WeakValueDictionary[tuple[str, str, str], asyncio.Lock] = weakref.WeakValueDictionary()

    def _lock(self, inbound: Inbound) -> asyncio.Lock:
        key = (inbound.channel, inbound.team_id, inbound.user_id)
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock

    async def handle(self, inbound: Inbound) -> list[Rendered]:
        """Handle one event; never raises for anything the person did."""
        return (await self.exchange(inbound)).replies

    async def exchange(self, inbound: Inbound) -> Exchange:
        """``handle``, also saying whether the person had been asked for a secret, read inside the turn's lock."""
        started = time.perf_counter()
        note = _TurnNote()
        try:
            replies = await self._handle(inbound, note)
            return Exchange(replies, note.prompt)
        except asyncio.CancelledError:
            note.outcome = TurnOutcome.CANCELLED  # the process is stopping
            raise
        finally:
            self._log_turn(inbound, note, time.perf_counter() - started)

    def _log_turn(self, inbound: Inbound, note: _TurnNote, seconds: float) -> None:
        """The operator's one line per turn, and the turn metrics; nothing in either names the person."""
        fields = {
            "channel": inbound.channel,
            "flow": note.flow or "-",
            "step": note.step or ("end" if note.flow else "-"),
            "outcome": note.outcome,
            "duration_s": round(seconds, 4),
        }
        log.info(
            "turn channel=%(channel)s flow=%(flow)s step=%(step)s outcome=%(outcome)s duration=%(duration_s).3fs",
            fields,
            extra=fields,
        )
        if self._metrics is not None:
            self._metrics.turn(inbound.channel, note.outcome, seconds)

    async def _handle(self, inbound: Inbound, note: _TurnNote) -> list[Rendered]:
        lock = self._lock(inbound)  # held in a local so the weak entry lives for the turn
        async with lock:
            locale = inbound.locale_hint if inbound.locale_hint in LOCALES else self._default_locale
            queued: list[int] = []
            try:
                async with self._db.session() as session, session.begin():
                    if inbound.event_id and await self._seen_before(session, inbound):
                        note.outcome = TurnOutcome.DUPLICATE
                        return []
                    conversation, username = await self._conversation(session, inbound)
                    note.flow, note.step, note.prompt = conversation.flow, conversation.step, conversation.prompt
                    locale = conversation.locale = self._locale(conversation, inbound)
                    replies, username = await self._turn(session, conversation, inbound, username, queued)
                    # Where the turn left the conversation; a flow that ended shows as its name with step "end".
                    note.flow, note.step = conversation.flow or note.flow, conversation.step
                    locale = conversation.locale
                    replies = await self._pending_notifications(session, conversation, inbound, username) + replies
                    # Rendered inside the transaction: a template that fails changes nothing either.
                    rendered = [self._renderer.render(reply, locale, inbound.timezone) for reply in replies]
            except BotError as exc:
                note.outcome = TurnOutcome.FAILED
                log.warning("turn failed for %s:%s: %s", inbound.channel, inbound.user_id, exc)
                failure = Reply(exc.reply, buttons=MENU_BUTTONS)
            except Exception:
                log.exception("unexpected error in a turn for %s:%s", inbound.channel, inbound.user_id)
                failure = Reply("errors/internal", buttons=MENU_BUTTONS)
            else:
                note.outcome = TurnOutcome.OK
                if queued:
                    rendered = self._followed_by(rendered, await self._carry_out(inbound, queued))
                return rendered
            await self._offer_menu_after_failure(inbound)
            return [self._renderer.render(failure, locale, inbound.timezone)]

    @staticmethod
    def _followed_by(rendered: list[Rendered], after: list[Rendered]) -> list[Rendered]:
        """``rendered`` then ``after``; a button ``after`` offers again is shown once, in its newer place."""
        again = {button.action for reply in after for button in reply.buttons}
        if not again:
            return rendered + after
        earlier = [
            dataclasses.replace(reply, buttons=tuple(b for b in reply.buttons if b.action not in again))
            for reply in rendered
        ]
        return earlier + after

    async def _carry_out(self, inbound: Inbound, items: list[int]) -> list[Rendered]:
        """Run the CRM work the committed turn queued, then say whatever its outcome left for the person.

        The work is already safe in the outbox: if it fails or hangs here, the housekeeper retries it and
        the outcome is pushed later, so nothing here may turn the committed turn into an apology.
        """
        if self._outbox is None:
            return []
        try:
            await self._outbox.run_items(items)
            async with self._db.session() as session, session.begin():
                conversation, username = await self._conversation(session, inbound)
                replies = await self._pending_notifications(session, conversation, inbound, username)
                return [self._renderer.render(reply, conversation.locale, inbound.timezone) for reply in replies]
        except Exception:
            log.exception("queued work for %s:%s is left to the housekeeper", inbound.channel, inbound.user_id)
            return []

    async def _offer_menu_after_failure(self, inbound: Inbound) -> None:
        """The failed turn changed nothing, but the menu shown with the apology must work."""
        try:
            async with self._db.session() as session, session.begin():
                conversation, _ = await self._conversation(session, inbound)
                offered = list(conversation.offered or [])
                conversation.offered = offered + [b.action for b in MENU_BUTTONS if b.action not in offered]
        except Exception:  # the database itself may be what failed; the apology still goes out
            log.exception("could not record the menu after a failed turn for %s:%s", inbound.channel, inbound.user_id)

    async def awaits_secret(self, channel: str, team_id: str, user_id: str) -> bool:
        """Whether the person's last prompt asked for a secret (a code), so their next message must vanish.

        Kept with the conversation, so a channel that restarts (or another replica) still knows.
        """
        async with self._db.session() as session:
            prompt = await session.scalar(
                select(Conversation.prompt).where(
                    Conversation.channel == channel, Conversation.team_id == team_id, Conversation.user_id == user_id
                )
            )
        return any(reply.secret_input for reply in replies_from_json(prompt or "[]"))

    async def is_linked(self, channel: str, team_id: str, user_id: str) -> bool:
        async with self._db.session() as session:
            return await linked_username(session, channel, team_id, user_id) is not None

    async def link_verified_email(self, channel: str, team_id: str, user_id: str, email: str) -> bool:
        """Bind a chat account whose platform vouches for ``email`` to the CRM user with that e-mail.

        The channel decides whether the platform's word is good enough (a
        confirmed e-mail of a full member); this only finds the CRM user.
        """
        account = await self._services.crm.find_account(email)
        if account is None or account.email.casefold() != email.casefold() or not account.active:
            return False
        async with self._db.session() as session, session.begin():
            await link(
                session,
                now=self._services.clock.now(),
                channel=channel,
                team_id=team_id,
                user_id=user_id,
                username=account.username,
                by=f"{channel}:verified-email",
            )
        return True

    async def take_notifications(self, channel: str) -> list[Delivery]:
        """Notifications for people linked on ``channel``, rendered in their language; marked delivered.

        A channel that can reach people without waiting for them to write
        (Telegram, Slack) calls this now and then and sends what it gets; when
        sending fails it calls ``delivery_failed`` so nothing is lost.
        """
        now = self._services.clock.now()
        deliveries: list[Delivery] = []
        async with self._db.session() as session, session.begin():
            identities = await session.execute(
                select(ChatIdentity.crm_username, ChatIdentity.team_id, ChatIdentity.platform_user_id)
                .join(Notification, Notification.crm_username == ChatIdentity.crm_username)
                .where(ChatIdentity.channel == channel, Notification.delivered_at.is_(None))
                .distinct()
            )
            served: set[str] = set()
            for username, team_id, user_id in identities.all():
                if username in served:
                    continue  # one of the person's accounts on this channel is enough
                account = account_key(channel, team_id, user_id)
                # The conversation first, as a turn takes it before the notifications: in the other order a turn
                # of the same person at the same moment (on any replica) would deadlock with this delivery.
                conversation = await session.scalar(
                    select(Conversation)
                    .where(
                        Conversation.channel == channel,
                        Conversation.team_id == team_id,
                        Conversation.user_id == user_id,
                    )
                    .with_for_update()
                )
                pending = await take_pending(session, now=now, username=username, account=account)
                if not pending:
                    continue  # all of it is for the person's other accounts
                served.add(username)
                replies = [reply for _, reply in pending]
                if conversation is not None:
                    self._offer(conversation, replies)
                locale = conversation.locale if conversation is not None else self._default_locale
                rendered = [self._renderer.render(reply, locale) for reply in replies]
                deliveries.append(Delivery(user_id, team_id, rendered, tuple(i for i, _ in pending)))
        return deliveries

    async def delivery_failed(self, delivery: Delivery) -> None:
        """Sending ``delivery`` failed: its notifications go out again on the next round."""
        async with self._db.session() as session, session.begin():
            await requeue(session, delivery.notification_ids)

    async def admin_post(self, value: str) -> Rendered | None:
        """What a channel posts to its admin destination for a fact the housekeeper left (``bot.reports.digest``).

        The weekly digest of the period the housekeeper named, with its chart, in the default language (the
        admins share the destination); ``None`` for a value this version does not know.
        """
        try:
            post = AdminPost.from_json(value)
        except ValueError as exc:
            log.error("%s", exc)
            return None
        locale = self._default_locale
        zone = person_zone(None, self._services.timezone, locale)
        async with self._db.session() as session:
            numbers = await gather(session, now=post.until, period=post.period, zone=zone)
        # Drawn after the session is closed: no transaction waits for the picture.
        reply = await digest_post(numbers, self._services.words, locale)
        return self._renderer.render(reply, locale)

    async def _pending_notifications(
        self, session: AsyncSession, conversation: Conversation, inbound: Inbound, username: str | None
    ) -> list[Reply]:
        if username is None:
            return []
        account = account_key(inbound.channel, inbound.team_id, inbound.user_id)
        pending = await take_pending(session, now=self._services.clock.now(), username=username, account=account)
        replies = [reply for _, reply in pending]
        self._offer(conversation, replies)
        return replies

    @staticmethod
    def _offer(conversation: Conversation, replies: Sequence[Reply]) -> None:
        """The buttons that come with notifications may be pressed, besides those already on offer."""
        offered = list(conversation.offered or [])
        extra = [b.action for reply in replies for b in reply.buttons if b.action not in offered]
        if extra:
            conversation.offered = offered + extra

    async def _seen_before(self, session: AsyncSession, inbound: Inbound) -> bool:
        assert inbound.event_id is not None
        # Noted before any work. Of two deliveries at once (a platform's retry reaching another replica), one
        # inserts the id; the other's insert waits for that turn to commit, then finds the id and drops the
        # event instead of failing. Were the first turn to fail, its id goes with it and the retry is handled.
        noted = {"channel": inbound.channel, "event_id": inbound.event_id, "at": self._services.clock.now()}
        if await insert_if_absent(session, ProcessedEvent, noted):
            return False
        log.info("duplicate event %s:%s ignored", inbound.channel, inbound.event_id)
        return True

    async def _conversation(self, session: AsyncSession, inbound: Inbound) -> tuple[Conversation, str | None]:
        """The person's conversation, locked for the turn, and the CRM user their chat account is linked to."""
        account = {"channel": inbound.channel, "team_id": inbound.team_id, "user_id": inbound.user_id}
        # Locked for the turn: another replica's turn of the same person waits here rather than interleave.
        found = (await session.execute(_CONVERSATION_AND_USER, account)).first()
        if found is not None:
            return found.Conversation, found.crm_username
        # A first message. Two at once (on two replicas) both get here: one inserts the row, the other's
        # insert waits for that turn, inserts nothing, and takes the row below once the first has committed.
        await insert_if_absent(
            session,
            Conversation,
            {
                "channel": inbound.channel,
                "team_id": inbound.team_id,
                "user_id": inbound.user_id,
                "locale": inbound.locale_hint if inbound.locale_hint in LOCALES else self._default_locale,
                "locale_chosen": False,
                "data": {},
                "offered": [],
                "prompt": "[]",
                "updated_at": self._services.clock.now(),
            },
        )
        found = (await session.execute(_CONVERSATION_AND_USER, account)).one()
        return found.Conversation, found.crm_username

    def _locale(self, conversation: Conversation, inbound: Inbound) -> str:
        """A choice the person made wins; otherwise the script of what they type."""
        if inbound.locale_explicit and inbound.locale_hint in LOCALES:
            conversation.locale_chosen = True
            return inbound.locale_hint
        if conversation.locale_chosen:
            return conversation.locale
        if inbound.kind in (InboundKind.TEXT, InboundKind.COMMAND) and self._is_free_speech(conversation, inbound.text):
            return guess_locale(inbound.text) or conversation.locale
        return conversation.locale

    @staticmethod
    def _is_free_speech(conversation: Conversation, text: str) -> bool:
        """Codes, commands and answers in a step say nothing about the language the person reads."""
        flow = FLOWS.get(conversation.flow or "")
        if flow is not None and conversation.step in flow.takes_text:
            return False
        return not looks_like_link_code(text) and parse_command(text) is None

    async def _turn(
        self,
        session: AsyncSession,
        conversation: Conversation,
        inbound: Inbound,
        username: str | None,
        queued: list[int],
    ) -> tuple[list[Reply], str | None]:
        """The turn's replies, and the CRM user the person is linked to once it is over (a turn may link them)."""
        now = self._services.clock.now()
        idle = conversation.flow is not None and conversation.updated_at < now - self._idle_timeout
        turn = Turn(
            inbound=inbound,
            locale=conversation.locale,
            session=session,
            services=self._services,
            username=username,
            data=dict(conversation.data or {}),
            now=now,
            queued=queued,
            verified_at=conversation.verified_at,
        )
        timed_out = await self._time_out(conversation, turn) if idle else []
        replies = await self._dispatch(conversation, turn)
        # Changed last: the row is written once, when the turn commits, not flushed before the flow's first query.
        conversation.updated_at = now
        conversation.verified_at = turn.verified_at
        return timed_out + replies, turn.username

    async def _time_out(self, conversation: Conversation, turn: Turn) -> list[Reply]:
        """The conversation sat too long in a flow: let the flow say so (its ``TIMEOUT`` step), then start fresh.

        Whatever was asked then (a code, an answer) is not what the person is answering now.
        """
        flow = FLOWS.get(conversation.flow or "")
        log.info(
            "conversation %s:%s timed out in %s/%s",
            turn.inbound.channel,
            turn.inbound.user_id,
            conversation.flow,
            conversation.step,
        )
        replies: list[Reply] = []
        if flow is not None and TIMEOUT in flow.steps:
            outcome = await flow.steps[TIMEOUT](turn)
            replies = list(outcome.replies)
        conversation.flow = conversation.step = None
        conversation.data, conversation.offered, conversation.prompt = {}, [], "[]"
        turn.data = {}
        return replies

    async def _dispatch(self, conversation: Conversation, turn: Turn) -> list[Reply]:
        inbound = turn.inbound
        flow = FLOWS.get(conversation.flow or "")
        step = flow.steps.get(conversation.step or "") if flow else None

        if inbound.kind is InboundKind.START:
            payload = clean_text(inbound.text)
            if payload and looks_like_link_code(payload):  # a deep link such as /start CODE
                turn.inbound = dataclasses.replace(inbound, text=payload)
                return await self._run(conversation, turn, ACTIONS["link"], None)
            if step is not None:
                return [Reply("engine/welcome_back"), *self._prompt(conversation)]
            return await self._run(conversation, turn, ACTIONS["menu"], None)

        if inbound.kind is InboundKind.BUTTON:
            action = inbound.button
            on_card = inbound.from_card and action.partition(":")[0] in CARD_ACTIONS
            if action not in (conversation.offered or []) and not on_card:
                return self._repeat(conversation, "engine/unknown_option")
            name = action.partition(":")[0]
            if name in ACTIONS:
                return await self._run(conversation, turn, ACTIONS[name], None)
            if flow is not None and step is not None:
                return await self._run(conversation, turn, flow, conversation.step)
            return self._repeat(conversation, "engine/unknown_option")

        if inbound.kind is InboundKind.COMMAND:
            if inbound.command in PLATFORM_COMMANDS:
                return await self._run(conversation, turn, ACTIONS[inbound.command], None)
            if inbound.command != "faq":
                return self._repeat(conversation, "engine/unknown_option")
            if not clean_text(inbound.text):  # "/faq" alone: the menu, where "Ask a question" is
                return await self._run(conversation, turn, ACTIONS["menu"], None)
            # "/faq QUESTION" is the question, typed.

        text = clean_text(inbound.text)
        if not text:
            return self._repeat(conversation, "engine/empty")
        if len(text) > MAX_TEXT:
            return self._repeat(conversation, "engine/too_long", {"limit": MAX_TEXT})
        turn.inbound = dataclasses.replace(inbound, text=text)
        command = self._commands.match(text)
        # In a step that reads an answer, only a message that is nothing but "cancel" or "menu" leaves it:
        # "请先取消共享再申请" is a deny reason, not a cancel.
        if flow is not None and conversation.step in flow.takes_text and self._commands.exact(text) not in ESCAPES:
            return await self._run(conversation, turn, flow, conversation.step)
        if looks_like_link_code(text):
            return await self._run(conversation, turn, ACTIONS["link"], None)
        if turn.is_admin and parse_command(text) is not None:
            return await self._run(conversation, turn, ACTIONS["admin"], None)
        if command is not None:
            return await self._run(conversation, turn, ACTIONS[command], None)
        return await self._run(conversation, turn, ACTIONS["faq"], None)

    async def _run(self, conversation: Conversation, turn: Turn, flow: Flow, step: str | None) -> list[Reply]:
        handler = flow.steps[step] if step is not None else flow.start
        if step is None:
            turn.data = {}
        outcome = await handler(turn)
        replies = list(outcome.replies)
        if outcome.locale is not None:
            conversation.locale = outcome.locale
            conversation.locale_chosen = True
        self._settle(conversation, flow, outcome)
        if outcome.then is not None:
            follow = ACTIONS[outcome.then]
            turn.data, turn.locale = {}, conversation.locale
            next_outcome = await follow.start(turn)
            replies += next_outcome.replies
            self._settle(conversation, follow, next_outcome)
        return self._remember(conversation, replies)

    @staticmethod
    def _settle(conversation: Conversation, flow: Flow, outcome: Outcome) -> None:
        if outcome.step is not None and outcome.step not in flow.steps:
            raise LookupError(f"flow {flow.name!r} has no step {outcome.step!r}")  # a bug, caught by the tests
        conversation.flow = flow.name if outcome.step else None
        conversation.step = outcome.step
        conversation.data = dict(outcome.data) if outcome.step else {}

    @staticmethod
    def _remember(conversation: Conversation, replies: Sequence[Reply]) -> list[Reply]:
        """Keep what was offered (only those buttons may be pressed) and what to repeat on resume."""
        conversation.offered = [button.action for reply in replies for button in reply.buttons]
        conversation.prompt = replies_to_json(replies)
        return list(replies)

    def _prompt(self, conversation: Conversation) -> list[Reply]:
        return replies_from_json(conversation.prompt or "[]")

    def _repeat(
        self, conversation: Conversation, template: str, context: dict[str, object] | None = None
    ) -> list[Reply]:
        """Say what went wrong and repeat the last question, leaving the state as it was."""
        prompt = self._prompt(conversation)
        if not prompt:
            return self._remember(conversation, [Reply(template, context or {}, buttons=MENU_BUTTONS)])
        return [Reply(template, context or {}), *prompt]
