"""The Telegram channel: employees in private chats, admins in a group, on python-telegram-bot.

It translates and decides nothing about accounts. An update becomes an
``Inbound`` (who, where, text or button, locale) and the engine's ``Rendered``
replies go back as HTML messages with inline keyboards, and QR codes as
photos. What it does decide is Telegram's business only:

- where a reply goes: to the chat the event came from, except that a reply
  asking for a secret (a TOTP code) always goes to the person's private chat;
- which group messages are for the bot: commands, mentions of it, answers to a
  question it put to that person in the group, and digits from a person it
  waits on for a code (so the engine refuses them and they are deleted);
- buttons: sealed ``callback_data`` checked against who pressed it
  (``telegram_buttons``), every press answered;
- tidying: the message that carried a code is deleted once read, and the QR
  code once enrolment is over; redelivered updates are dropped; sends are
  paced to Telegram's limits, replies before notices, and a 429 is waited out
  (``telegram_pacing``); long answers are split (``telegram_text``).

Updates arrive by polling (PTB's ``Updater``) or as webhooks on the HTTP server
that ``bot.serve`` shares between channels; either way they go through PTB's
update queue and handlers. ``deliver`` sends notifications and posts and
redraws request cards in the admin group.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiohttp import web
from telegram import (
    BotCommand,
    BotCommandScopeAllPrivateChats,
    Chat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    MessageEntity,
    ReplyParameters,
    Update,
    User,
)
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ExtBot,
    JobQueue,
    MessageHandler,
    TypeHandler,
    Updater,
    filters,
)

from bot.channel_settings import TelegramSettings
from bot.handlers.base import Channel, ChannelContext, describe_error
from bot.handlers.telegram_buttons import ButtonTokens, Holder
from bot.handlers.telegram_pacing import PacedRateLimiter, notices, retry_seconds
from bot.handlers.telegram_text import MAX_CALLBACK_ANSWER, MAX_MESSAGE, as_html, shorten, split_message
from bot.messages import LOCALES, Inbound, InboundKind, Rendered, RenderedButton

log = logging.getLogger(__name__)

CHANNEL = "telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name, not a secret)
ALLOWED_UPDATES = ("message", "callback_query")
BUTTON_LIFETIME = timedelta(days=7)
# How long a bot message in a group stays one whose replies are answers from one person (a deny reason).
QUESTION_LIFETIME = timedelta(days=2)
QR_LIFETIME = timedelta(days=1)  # a QR code left behind by an enrolment nobody finished
# One replica polls at a time (Telegram answers 409 to a second getUpdates); the others stand by and take
# over within this long of the poller's death.
POLLER_LEASE = timedelta(seconds=15)
RATE_LIMIT_RETRIES = 5  # tries after a 429, each after the retry_after Telegram asked for

Context = ContextTypes.DEFAULT_TYPE
TelegramApplication = Application[
    ExtBot[int], Context, dict[Any, Any], dict[Any, Any], dict[Any, Any], JobQueue[Context]
]

# Slash commands and the actions they start; the engine answers them in the person's language.
COMMANDS = {
    "menu": "menu",
    "unlock": "unlock",
    "why": "why",
    "lang": "lang",
    "cancel": "cancel",
    "status": "request_status",
}
# ``/faq QUESTION`` asks QUESTION; a bare ``/faq`` opens the menu, where "Ask a question" is.
FAQ_COMMAND = "faq"
# The commands Telegram lists in its menu; their descriptions are labels (telegram_command_<name>).
MENU_COMMANDS = ("menu", "unlock", "why", "status", "faq", "lang", "cancel")


def locale_hint(language_code: str | None) -> str | None:
    """The person's Telegram app language as one of our locales; ``None`` when the app does not say."""
    if not language_code:
        return None
    return "zh-CN" if language_code.lower().startswith("zh") else "en"


def event_key(update: Update) -> str:
    """A key for one delivery of one event: the update id alone can repeat, since Telegram may restart them."""
    if update.callback_query is not None:
        return f"{update.update_id}:press:{update.callback_query.id}"
    message = update.effective_message
    if message is not None:
        return f"{update.update_id}:{message.chat.id}:{message.message_id}"
    return str(update.update_id)


@dataclass(frozen=True, slots=True)
class Place:
    """Where the replies to one event go."""

    chat_id: int
    public: bool  # a group: others read it
    reply_to: int | None = None  # in a group, the message the replies answer


class _TokenRedaction(logging.Filter):
    """httpx logs each request URL at INFO, and Bot API URLs carry the bot token: hide it."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self._token in message:
            record.msg, record.args = message.replace(self._token, "<telegram-token>"), None
        return True


class TelegramChannel(Channel):
    """One bot on one Bot API server; runs under ``bot.serve`` beside the other channels."""

    name = CHANNEL

    def __init__(self, context: ChannelContext, *, poll_timeout: timedelta = timedelta(seconds=30)) -> None:
        super().__init__(context)
        settings = context.settings.telegram
        if settings.token is None:
            raise ValueError("telegram.token is not set")
        self._settings: TelegramSettings = settings
        self._token = settings.token.get_secret_value()
        self._poll_timeout = poll_timeout
        self._buttons = ButtonTokens.for_bot(self._token, context.clock, lifetime=BUTTON_LIFETIME)
        self._redaction = _TokenRedaction(self._token)
        self._application = self._build()
        self._bot_username = ""
        # QR codes to delete once enrolment is over, and group messages whose replies are one person's
        # answers: kept in the database, so that the replica that gets the next message knows.
        self._memory = context.memory(CHANNEL)
        self._poller: asyncio.Task[None] | None = None
        self._leading = False

    def _build(self) -> TelegramApplication:
        builder = (
            ApplicationBuilder()
            .token(self._token)
            .base_url(self._settings.base_url)
            .base_file_url(self._settings.base_file_url)
            .rate_limiter(PacedRateLimiter(self._settings.messages_per_second, max_retries=RATE_LIMIT_RETRIES))
            # The engine serialises each person's turns; one person's slow CRM call must not hold up the others.
            .concurrent_updates(True)
        )
        if self._settings.mode == "webhook":
            builder = builder.updater(None)
        application = builder.build()
        new_messages = filters.UpdateType.MESSAGE & (filters.ChatType.PRIVATE | filters.ChatType.GROUPS)
        application.add_handler(TypeHandler(Update, self._drop_redelivered), group=-1)
        application.add_handler(CommandHandler("start", self._on_start, filters=new_messages))
        application.add_handler(CommandHandler([*COMMANDS, FAQ_COMMAND], self._on_command, filters=new_messages))
        application.add_handler(CallbackQueryHandler(self._on_press))
        application.add_handler(MessageHandler(new_messages & filters.TEXT, self._on_text))
        # A photo, sticker or voice note in a private chat: its caption, if any, is what was said.
        private_other = filters.UpdateType.MESSAGE & filters.ChatType.PRIVATE & ~filters.StatusUpdate.ALL
        application.add_handler(MessageHandler(private_other, self._on_other))
        application.add_error_handler(self._on_error)
        return application

    # -- running -----------------------------------------------------------------------------------

    def add_routes(self, server: web.Application) -> None:
        if self._settings.mode == "webhook":
            server.router.add_post(self._settings.webhook_path, self._on_webhook)

    async def start(self) -> None:
        logging.getLogger("httpx").addFilter(self._redaction)
        await self._application.initialize()
        self._bot_username = self._application.bot.username or ""
        await self._application.start()
        await self._offer_commands()
        if self._settings.mode == "polling":
            updater = self._application.updater
            assert updater is not None
            self._poller = asyncio.create_task(self._poll_while_leading(updater))
        elif self._settings.webhook_url:
            assert self._settings.secret_token is not None
            await self._application.bot.set_webhook(
                self._settings.webhook_url + self._settings.webhook_path,
                secret_token=self._settings.secret_token.get_secret_value(),
                allowed_updates=list(ALLOWED_UPDATES),
            )
        log.info("telegram: @%s is %s", self._bot_username, self._settings.mode)

    async def _poll_while_leading(self, updater: Updater) -> None:
        """Poll while this replica holds the poller lease; stand by while another does."""
        keeper = self._memory.lease("poller", ttl=POLLER_LEASE)
        try:
            while True:
                try:
                    self._leading = await keeper.hold()
                except Exception as exc:  # the database is away: stop polling rather than poll twice
                    log.warning("telegram: could not renew the poller lease: %s", describe_error(exc))
                    self._leading = False
                if self._leading and not updater.running:
                    await updater.start_polling(timeout=self._poll_timeout, allowed_updates=list(ALLOWED_UPDATES))
                    log.info("telegram: this replica polls")
                elif not self._leading and updater.running:
                    await updater.stop()
                    log.info("telegram: another replica polls; standing by")
                await asyncio.sleep(POLLER_LEASE.total_seconds() / 3)
        finally:
            if self._leading:
                with contextlib.suppress(Exception):
                    await keeper.let_go()

    async def connected(self) -> bool:
        """For /readyz: the application runs and, when this replica is the poller, so does the poll loop."""
        updater = self._application.updater
        polling = updater is None or updater.running or (self._poller is not None and not self._leading)
        return self._application.running and polling

    async def disconnect(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        try:
            updater = self._application.updater
            if updater is not None and updater.running:
                await updater.stop()
            if self._application.running:
                await self._application.stop()
            await self._application.shutdown()
        finally:
            logging.getLogger("httpx").removeFilter(self._redaction)

    async def _offer_commands(self) -> None:
        """The command list Telegram shows in private chats, in each language; a failure only loses the hints."""
        for locale in LOCALES:
            commands = [BotCommand(name, self.label(f"telegram_command_{name}", locale)) for name in MENU_COMMANDS]
            try:
                await self._application.bot.set_my_commands(
                    commands,
                    scope=BotCommandScopeAllPrivateChats(),
                    language_code=None if locale == self.default_locale else locale.split("-")[0],
                )
            except TelegramError as exc:
                log.warning("telegram: could not set the command list for %s: %s", locale, exc)

    async def _on_webhook(self, request: web.Request) -> web.Response:
        assert self._settings.secret_token is not None
        expected = self._settings.secret_token.get_secret_value().encode()
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, expected):
            log.warning("telegram: refused a webhook request without the right secret token")
            return web.Response(status=403)
        try:
            data = await request.json()
            update = Update.de_json(data, self._application.bot) if isinstance(data, dict) else None
        except (ValueError, TypeError, KeyError):
            update = None
        if update is None:
            return web.Response(status=400, text="expected a Telegram Update as JSON")
        await self._application.update_queue.put(update)
        return web.Response(status=200)

    async def _on_error(self, update: object, context: Context) -> None:
        # Never the update itself: its text may be a code.
        update_id = update.update_id if isinstance(update, Update) else None
        log.error("telegram: handling update %s failed", update_id, exc_info=context.error)

    # -- from Telegram to the engine ---------------------------------------------------------------

    async def _drop_redelivered(self, update: Update, _: Context) -> None:
        if not self.first_time(event_key(update)):
            raise ApplicationHandlerStop

    @staticmethod
    def _inbound(update: Update, user: User, chat: Chat | None, kind: InboundKind, **fields: Any) -> Inbound:
        return Inbound(
            CHANNEL,
            str(user.id),
            kind,
            team_id="",
            locale_hint=locale_hint(user.language_code),
            event_id=event_key(update),
            public=chat is not None and chat.type != ChatType.PRIVATE,
            **fields,
        )

    def _locale(self, user: User) -> str:
        return locale_hint(user.language_code) or self.default_locale

    @staticmethod
    def _place(message: Message) -> Place:
        public = message.chat.type != ChatType.PRIVATE
        return Place(message.chat.id, public, message.message_id if public else None)

    @staticmethod
    def _sender(update: Update) -> tuple[Message, User] | None:
        message = update.message
        if message is None or message.from_user is None or message.from_user.is_bot:
            return None
        return message, message.from_user

    async def _on_start(self, update: Update, context: Context) -> None:
        sender = self._sender(update)
        if sender is None:
            return
        message, user = sender
        payload = " ".join(context.args or [])  # the deep link's ?start=..., such as a link code
        inbound = self._inbound(update, user, message.chat, InboundKind.START, text=payload)
        await self._exchange(inbound, self._place(message))

    async def _on_command(self, update: Update, context: Context) -> None:
        sender = self._sender(update)
        if sender is None or not message_text(sender[0]):
            return
        message, user = sender
        command = message_text(message).split(maxsplit=1)[0][1:].partition("@")[0].lower()
        fields = {"command": COMMANDS.get(command, command), "text": " ".join(context.args or [])}
        inbound = self._inbound(update, user, message.chat, InboundKind.COMMAND, **fields)
        await self._exchange(inbound, self._place(message))

    async def _on_text(self, update: Update, _context: Context) -> None:
        sender = self._sender(update)
        if sender is None:
            return
        message, user = sender
        text = message_text(message)
        code_message: Message | None = message
        if text.startswith("/"):
            # A command we have no table entry for reads as words: "/help" is "help". Never a code.
            word, _, rest = text[1:].partition(" ")
            word, _, addressee = word.partition("@")
            if addressee and addressee.lower() != self._bot_username.lower():
                return  # meant for another bot in the group
            text, code_message = f"{word} {rest}".strip(), None
        elif message.chat.type != ChatType.PRIVATE:
            addressed = await self._addressed_in_group(message, user, text)
            if addressed is None:
                return
            text = addressed
        inbound = self._inbound(update, user, message.chat, InboundKind.TEXT, text=text)
        place = self._place(message)
        await self._exchange(inbound, place, code_message=code_message)
        if place.public:
            await self.update_cards()  # a deny reason answered in the group, say

    async def _on_other(self, update: Update, _: Context) -> None:
        sender = self._sender(update)
        if sender is None:
            return
        message, user = sender
        inbound = self._inbound(update, user, message.chat, InboundKind.TEXT, text=message.caption or "")
        await self._exchange(inbound, self._place(message), code_message=message)

    async def _addressed_in_group(self, message: Message, user: User, text: str) -> str | None:
        """The text meant for the bot in a group message, or ``None`` when the message is not for it."""
        mention = f"@{self._bot_username}"
        for value in message.parse_entities([MessageEntity.MENTION]).values():
            if self._bot_username and value.lower() == mention.lower():
                return text.replace(value, "", 1).strip()
        replied = message.reply_to_message
        if replied is not None and await self._memory.recall(
            "question", f"{message.chat.id}:{replied.message_id}"
        ) == str(user.id):
            return text
        if re.fullmatch(r"[\d\s-]{4,16}", text) and await self._awaits_secret(user.id):
            return text  # a code typed where others read it: the engine refuses it, and it is deleted
        return None

    async def _on_press(self, update: Update, _: Context) -> None:
        query = update.callback_query
        if query is None:
            return
        presser = query.from_user
        chat = query.message.chat if query.message is not None else None
        press = self._buttons.resolve(query.data or "", presser_id=presser.id, chat_id=chat.id if chat else None)
        if press is None:
            log.info("telegram: refused a button press by %s (forged, expired or someone else's)", presser.id)
            await self._answer(query.id, self.label("telegram_button_refused", self._locale(presser)))
            return
        # A press on a message too old to be shown (no chat known) is answered in the private chat.
        place = self._place(query.message) if isinstance(query.message, Message) else Place(presser.id, public=False)
        inbound = self._inbound(
            update, presser, chat, InboundKind.BUTTON, button=press.action, from_card=press.from_card
        )
        await self._exchange(inbound, place, press_id=query.id)
        if place.public:
            await self.update_cards()  # a decision taken in the group shows on its card at once

    async def _answer(self, query_id: str, text: str | None) -> None:
        try:
            await self._application.bot.answer_callback_query(
                query_id,
                text=shorten(text, MAX_CALLBACK_ANSWER) if text else None,
                show_alert=bool(text),
            )
        except TelegramError as exc:  # too old to answer, say; the press itself still counts
            log.info("telegram: could not answer a button press: %s", exc)

    async def _awaits_secret(self, person: int) -> bool:
        """Whether the person was asked for a code; remembered here, and in the conversation across restarts."""
        return await self.engine.awaits_secret(CHANNEL, "", str(person))

    async def _exchange(
        self, inbound: Inbound, place: Place, *, code_message: Message | None = None, press_id: str | None = None
    ) -> None:
        """One event to the engine and its replies back, one at a time per person, in the order they came.

        Updates are handled concurrently; a person's keep their order because each takes this lock
        before its first pause, and asyncio hands a lock to its waiters first come, first served.
        """
        person = int(inbound.user_id)
        async with self.people[inbound.user_id]:
            if press_id is not None:
                await self._answer(press_id, None)  # at once: Telegram shows a spinner until then
            exchange = await self.engine.exchange(inbound)
            replies, was_awaiting_secret = exchange.replies, exchange.answered_secret_prompt
            if not replies:
                return  # a redelivery the engine had already handled
            if was_awaiting_secret and code_message is not None:
                await self._delete(code_message.chat.id, code_message.message_id)
            if was_awaiting_secret and not any(reply.secret_input for reply in replies):
                for chat_id, message_id in json.loads(await self._memory.take("qr", str(person)) or "[]"):
                    await self._delete(chat_id, message_id)
            await self._send(person, replies, place, locale=inbound.locale_hint or self.default_locale)

    # -- from the engine to Telegram ---------------------------------------------------------------

    async def _send(self, person: int, replies: Sequence[Rendered], place: Place, *, locale: str) -> None:
        for index, reply in enumerate(replies):
            try:
                if reply.secret_input and place.public:
                    await self._send_privately(person, reply, place, locale)
                else:
                    await self._send_reply(person, reply, place)
            except Exception as exc:
                # Telegram still refused after the limiter's retries: the rest waits in the database.
                if not self.worth_retrying(exc):
                    raise
                await self.hold(str(person), list(replies[index:]), exc)
                return

    async def _send_privately(self, person: int, reply: Rendered, group: Place, locale: str) -> None:
        """A reply that asks for a secret, sent to the person's private chat even when they wrote in a group."""
        try:
            await self._send_reply(person, reply, Place(person, public=False))
        except Forbidden:
            # They never opened a private chat with the bot, which cannot start one: point them to it.
            link = InlineKeyboardButton(f"@{self._bot_username}", url=f"https://t.me/{self._bot_username}")
            await self._send_text(
                group, self.label("telegram_open_private_chat", locale), InlineKeyboardMarkup([[link]])
            )

    async def _send_reply(self, person: int, reply: Rendered, place: Place) -> None:
        bot = self._application.bot
        if reply.image is not None:
            photo = await bot.send_photo(
                place.chat_id,
                reply.image.png,
                filename=reply.image.name,
                protect_content=reply.image.secret,  # no forwarding or saving of a QR code that holds a secret
                reply_parameters=self._reply_parameters(place),
            )
            if reply.secret_input:  # deleted once enrolment is over, by whichever replica sees that
                shown = json.loads(await self._memory.recall("qr", str(person)) or "[]")
                shown.append([photo.chat.id, photo.message_id])
                await self._memory.remember("qr", str(person), json.dumps(shown), lifetime=QR_LIFETIME)
        if not reply.text.strip():
            return
        keyboard = self._keyboard(reply.buttons, Holder.PERSON, person)
        pieces = split_message(reply.text)
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            sent = await self._send_text(
                place if index == 0 else Place(place.chat_id, place.public), piece, keyboard if last else None
            )
            if place.public:
                await self._remember_question(sent, person)

    async def _send_text(self, place: Place, text: str, keyboard: InlineKeyboardMarkup | None) -> Message:
        return await self._application.bot.send_message(
            place.chat_id,
            as_html(text),
            parse_mode=ParseMode.HTML,
            reply_markup=keyboard,
            reply_parameters=self._reply_parameters(place),
            link_preview_options=LinkPreviewOptions(is_disabled=True),
        )

    @staticmethod
    def _reply_parameters(place: Place) -> ReplyParameters | None:
        if place.reply_to is None:
            return None
        return ReplyParameters(place.reply_to, allow_sending_without_reply=True)

    async def _remember_question(self, message: Message, person: int) -> None:
        """A reply to this bot message, in this group, is ``person`` answering it (a deny reason, say)."""
        where = f"{message.chat.id}:{message.message_id}"
        await self._memory.remember("question", where, str(person), lifetime=QUESTION_LIFETIME)

    def _keyboard(
        self, buttons: Sequence[RenderedButton], holder: Holder, holder_id: int
    ) -> InlineKeyboardMarkup | None:
        """One button a row: labels are short sentences, in Chinese and English alike."""
        if not buttons:
            return None
        rows = []
        for button in buttons:
            data = self._buttons.issue(button.action, holder, holder_id)
            rows.append([InlineKeyboardButton(button.label, callback_data=data)])
        return InlineKeyboardMarkup(rows)

    async def _delete(self, chat_id: int, message_id: int) -> None:
        try:
            await self._application.bot.delete_message(chat_id, message_id)
        except TelegramError as exc:  # in a group the bot needs the right to delete messages
            log.info("telegram: could not delete message %s in chat %s: %s", message_id, chat_id, exc)

    # -- unprompted: notifications and request cards -----------------------------------------------

    async def check(self) -> str | None:
        bot = self._application.bot
        try:
            await bot.initialize()  # asks Telegram who the token belongs to (getMe)
        except TelegramError as exc:
            return f"Telegram refused the token or did not answer: {exc}"
        finally:
            await bot.shutdown()
        return None

    async def send_unprompted(self, user_id: str, replies: list[Rendered]) -> None:
        person = int(user_id)
        with notices():  # replies to people who are writing go first
            await self._send(person, replies, Place(person, public=False), locale=self.default_locale)

    def worth_retrying(self, error: Exception) -> bool:
        return isinstance(error, (NetworkError, RetryAfter))

    def retry_after(self, error: Exception) -> timedelta | None:
        return timedelta(seconds=retry_seconds(error)) if isinstance(error, RetryAfter) else None

    @property
    def card_destination(self) -> str:
        chat_id = self._settings.admin_chat_id
        return "" if chat_id is None else str(chat_id)

    async def post_card(self, destination: str, request_id: int, card: Rendered) -> str:
        chat_id = int(destination)
        message = await self._application.bot.send_message(
            chat_id,
            as_html(card_text(card)),
            parse_mode=ParseMode.HTML,
            reply_markup=self._keyboard(card.buttons, Holder.CHAT, chat_id),
            link_preview_options=LinkPreviewOptions(is_disabled=True),
        )
        return str(message.message_id)

    async def redraw_card(self, destination: str, message_ref: str, request_id: int, card: Rendered) -> None:
        chat_id = int(destination)
        try:
            await self._application.bot.edit_message_text(
                as_html(card_text(card)),
                chat_id=chat_id,
                message_id=int(message_ref),
                parse_mode=ParseMode.HTML,
                # No keyboard once decided: an edit without one removes the buttons.
                reply_markup=self._keyboard(card.buttons, Holder.CHAT, chat_id),
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
        except BadRequest as exc:
            if "not modified" not in exc.message.lower():
                # Deleted from the group, or too old to edit: nothing left to redraw.
                log.warning("telegram: could not redraw the card of request %s: %s", request_id, exc)

    async def post_to_admins(self, destination: str, post: Rendered) -> None:
        chat_id = int(destination)
        with notices():  # after the replies to people who are writing
            # The chart as a photo, then the summary, as any reply with a picture is sent. Not a "public" place:
            # that would read the admins' replies to the post as one person's answer to a question.
            await self._send_reply(chat_id, post, Place(chat_id, public=False))


def message_text(message: Message) -> str:
    return message.text or ""


def card_text(card: Rendered) -> str:
    """A card is one message that is edited later, so it cannot be split: cut it instead (cards are short)."""
    pieces = split_message(card.text, MAX_MESSAGE - 1)
    return pieces[0] if len(pieces) == 1 else pieces[0] + "…"
