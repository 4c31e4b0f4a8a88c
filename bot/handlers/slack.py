"""The Slack channel: slack-bolt's ``AsyncApp`` translating Slack to ``Inbound`` and replies back to Block Kit.

People talk to the bot in its direct messages, on its App Home tab and with ``/unlock``; codes go into a
modal, never into a chat. Request cards go to the admin channel; a click on one is sent to the engine as
the clicker's (taken from the signed payload), and the engine decides whether they may. Every request
is acknowledged first and handled after, in a task of this channel: a person whose answer takes a while
sees an hourglass on their message until it comes. In HTTP mode Slack posts events, interactivity and
the slash command to ``/slack/events`` on the shared server, and Bolt checks each signature; in Socket
Mode the bot connects out to Slack and nothing listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from datetime import timedelta
from typing import Any

import aiohttp
from aiohttp import web
from cachetools import LRUCache, TTLCache
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler, async_default_handlers
from slack_sdk.web.async_client import AsyncWebClient

from bot.handlers.base import Channel, ChannelContext
from bot.handlers.slack_blocks import (
    ANSWER_MODAL,
    CODE_MODAL,
    OPEN_ANSWER_MODAL,
    OPEN_CODE_MODAL,
    REPLY_BUTTON,
    Controls,
    ReplyTarget,
    answer_modal,
    asks_for_text,
    card_blocks,
    code_modal,
    controls,
    escape,
    home_view,
    message_blocks,
    submitted_value,
    text_blocks,
)
from bot.messages import LOCALES, Image, Inbound, InboundKind, Rendered

log = logging.getLogger(__name__)

CHANNEL = "slack"
EVENTS_PATH = "/slack/events"
COMMAND = "/unlock"
WORKING_REACTION = "hourglass_flowing_sand"
# A trigger_id opens a modal only within 3 seconds of the click; leave room for the call itself.
TRIGGER_LIFETIME = 2.5
_DM_CHANNELS = 10_000  # people's direct-message channel ids remembered
# A person's Slack profile (language, time zone) is asked for again after this long, not on every message.
_PROFILE_LIFETIME = 3600.0
_RATE_LIMIT_RETRIES = 3
_FAQ_PREFIX = re.compile(r"^faq\b\s*", re.IGNORECASE)

Body = dict[str, Any]


def verified_email(user: Mapping[str, Any]) -> str | None:
    """The e-mail Slack vouches for: confirmed, of a full member of the workspace; else ``None``.

    Deleted accounts, bots and apps, guests (restricted and ultra-restricted) and people from other
    organisations (Slack Connect) are never linked by e-mail: they can still use a link code.
    """
    refused = ("deleted", "is_bot", "is_app_user", "is_restricted", "is_ultra_restricted", "is_stranger")
    if any(user.get(flag) for flag in refused) or user.get("is_email_confirmed") is not True:
        return None
    email = (user.get("profile") or {}).get("email")
    return email if isinstance(email, str) and "@" in email else None


def slack_locale(value: object) -> str | None:
    """Slack's ``zh-CN`` or ``en-US`` as one of ours, when it is one."""
    if not isinstance(value, str):
        return None
    for locale in LOCALES:
        if value.lower() == locale.lower() or value.split("-")[0].lower() == locale.split("-")[0].lower():
            return locale
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class _Profile:
    """What Slack says of a person that the bot uses: language, time zone, and the e-mail it vouches for."""

    locale: str | None
    timezone: str | None
    email: str | None


class SlackChannel(Channel):
    """The Slack channel as ``serve`` runs it: routes or a socket, background turns, deliveries."""

    name = CHANNEL

    def __init__(self, context: ChannelContext, *, working_after: float = 1.0) -> None:
        super().__init__(context)
        settings = context.settings.slack
        if settings.bot_token is None:
            raise ValueError("the Slack channel needs [slack] bot_token")
        self._settings = settings
        # How long a turn may take before the person is shown that the bot is working on it.
        self.working_after = working_after
        self.client = AsyncWebClient(
            token=settings.bot_token.get_secret_value(),
            base_url=settings.api_base_url,
            retry_handlers=[
                *async_default_handlers(),
                AsyncRateLimitErrorRetryHandler(max_retry_count=_RATE_LIMIT_RETRIES),
            ],
        )
        http = settings.mode == "http"
        self.bolt = AsyncApp(
            name="unlockbot",
            client=self.client,
            signing_secret=settings.signing_secret.get_secret_value() if settings.signing_secret else "",
            request_verification_enabled=http,
            logger=logging.getLogger(f"{__name__}.bolt"),
        )
        self._dms: LRUCache[str, str] = LRUCache(maxsize=_DM_CHANNELS)
        self._profiles: TTLCache[tuple[str, str], _Profile] = TTLCache(maxsize=_DM_CHANNELS, ttl=_PROFILE_LIFETIME)
        self._socket: AsyncSocketModeHandler | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._listen()

    # ---- what serve calls -----------------------------------------------------------------------

    def add_routes(self, server: web.Application) -> None:
        if self._settings.mode == "http":
            server.router.add_post(EVENTS_PATH, self._on_http)

    async def start(self) -> None:
        # One HTTP session for every Web API call, so connections to Slack are kept and reused; without it
        # slack_sdk opens a session, and a TCP connection, per call.
        if self.client.session is None:
            self.client.session = aiohttp.ClientSession()
        if self._settings.mode == "socket":
            assert self._settings.app_token is not None  # checked with the settings
            self._socket = AsyncSocketModeHandler(
                self.bolt, self._settings.app_token.get_secret_value(), web_client=self.client
            )
            # Connecting retries until Slack answers; serve must not wait for that.
            connect: Callable[[], Coroutine[Any, Any, None]] = self._socket.connect_async  # untyped in slack_bolt
            self._connecting = asyncio.create_task(connect())
        log.info("Slack channel ready (%s mode)", self._settings.mode)

    def _controls(self, locale: str) -> Controls:
        return controls(self.context.label, locale)

    async def check(self) -> str | None:
        try:
            await self.client.auth_test()
        except SlackApiError as exc:
            return f"Slack refused the bot token: {exc.response.get('error')}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"Slack did not answer: {type(exc).__name__}"
        return None

    async def send_unprompted(self, user_id: str, replies: list[Rendered]) -> None:
        await self._post(user_id, ReplyTarget(), replies)

    def worth_retrying(self, error: Exception) -> bool:
        if isinstance(error, SlackApiError):
            return bool(error.response.get("error") == "ratelimited")
        return isinstance(error, (aiohttp.ClientError, TimeoutError))

    def retry_after(self, error: Exception) -> timedelta | None:
        if isinstance(error, SlackApiError):
            with contextlib.suppress(TypeError, ValueError):
                return timedelta(seconds=int(error.response.headers.get("Retry-After")))
        return None

    async def connected(self) -> bool:
        """For /readyz: in Socket Mode, whether the socket is up; over HTTP Slack calls us, so always."""
        if self._socket is None:
            return True
        is_connected: Callable[[], Awaitable[bool]] = self._socket.client.is_connected  # untyped in slack_bolt
        return bool(await is_connected())

    async def close(self) -> None:
        if self.client.session is not None:
            await self.client.session.close()
            self.client.session = None

    async def disconnect(self) -> None:
        if self._socket is not None:
            close: Callable[[], Awaitable[None]] = self._socket.close_async  # untyped in slack_bolt
            await close()
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting

    # ---- receiving ------------------------------------------------------------------------------

    def _listen(self) -> None:
        self.bolt.event("message")(self._on_message)
        self.bolt.event("app_home_opened")(self._on_home_opened)
        self.bolt.command(COMMAND)(self._on_command)
        self.bolt.action(re.compile(f"^{re.escape(REPLY_BUTTON)}"))(self._on_button)
        self.bolt.action(re.compile(f"^({re.escape(OPEN_CODE_MODAL)}|{re.escape(OPEN_ANSWER_MODAL)})$"))(
            self._on_open_modal
        )
        self.bolt.view(CODE_MODAL)(self._on_modal_submitted)
        self.bolt.view(ANSWER_MODAL)(self._on_modal_submitted)
        self.bolt.view_closed(ANSWER_MODAL)(self._on_answer_closed)

    async def _on_http(self, request: web.Request) -> web.Response:
        # Bolt checks the signature and its timestamp: a bad or stale one is answered 401 here.
        response = await self.bolt.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    async def _on_message(self, ack: AsyncAck, body: Body) -> None:
        await ack()
        event = body.get("event", {})
        # Only what a person writes to the bot directly: no edits, joins, files, bots (ourselves included).
        if event.get("channel_type") != "im" or event.get("subtype") or event.get("bot_id"):
            return
        event_id = str(body.get("event_id") or f"{event.get('channel')}:{event.get('ts')}")
        if not self.first_time(event_id):
            return
        inbound = Inbound(
            CHANNEL,
            str(event.get("user", "")),
            InboundKind.TEXT,
            text=str(event.get("text", "")),
            team_id=str(body.get("team_id") or event.get("team") or ""),
            event_id=event_id,
        )
        channel = str(event.get("channel", ""))
        self.spawn(self._converse(inbound, ReplyTarget(channel, message_ts=str(event.get("ts", "")))))

    async def _on_home_opened(self, ack: AsyncAck, body: Body) -> None:
        await ack()
        event = body.get("event", {})
        event_id = str(body.get("event_id") or "")
        if event.get("tab") != "home" or not event_id or not self.first_time(event_id):
            return
        inbound = Inbound(
            CHANNEL,
            str(event.get("user", "")),
            InboundKind.START,
            team_id=str(body.get("team_id") or ""),
            event_id=event_id,
        )
        self.spawn(self._show_home(inbound))

    async def _on_command(self, ack: AsyncAck, body: Body) -> None:
        await ack()
        text = str(body.get("text", "")).strip()
        question = _FAQ_PREFIX.sub("", text)
        trigger = str(body.get("trigger_id", ""))
        if trigger and not self.first_time(trigger):
            return
        inbound = Inbound(
            CHANNEL,
            str(body.get("user_id", "")),
            InboundKind.TEXT if question else InboundKind.START,
            text=question,
            team_id=str(body.get("team_id", "")),
            event_id=f"interaction:{trigger}" if trigger else None,
        )
        # The conversation continues in the direct messages, wherever the command was typed.
        self.spawn(self._converse(inbound, ReplyTarget()))

    async def _on_button(self, ack: AsyncAck, body: Body) -> None:
        await ack()
        clicked = time.monotonic()
        actions = body.get("actions") or [{}]
        trigger = str(body.get("trigger_id", ""))
        if trigger and not self.first_time(trigger):
            return
        channel = str((body.get("channel") or {}).get("id", ""))
        container = body.get("container") or {}
        on_card = bool(self._settings.admin_channel) and channel == self._settings.admin_channel
        public = bool(channel) and not channel.startswith("D")
        ephemeral = public or bool(container.get("is_ephemeral"))
        inbound = Inbound(
            CHANNEL,
            _user_id(body),
            InboundKind.BUTTON,
            button=str(actions[0].get("value", "")),
            team_id=_team_id(body),
            event_id=f"interaction:{trigger}" if trigger else None,
            public=public,
            from_card=on_card,
        )
        marked = "" if ephemeral else str(container.get("message_ts", ""))
        target = ReplyTarget(channel, ephemeral=ephemeral, message_ts=marked)
        self.spawn(self._converse(inbound, target, trigger=(trigger, clicked), redraw_cards=on_card))

    async def _on_open_modal(self, ack: AsyncAck, body: Body) -> None:
        await ack()
        action = (body.get("actions") or [{}])[0]
        channel = str((body.get("channel") or {}).get("id", ""))
        container = body.get("container") or {}
        ephemeral = (bool(channel) and not channel.startswith("D")) or bool(container.get("is_ephemeral"))
        target = ReplyTarget(channel, ephemeral, "" if ephemeral else str(container.get("message_ts", "")))
        controls = self._controls(str(action.get("value", "")))
        if action.get("action_id") == OPEN_CODE_MODAL:
            view = code_modal(controls, target)
        else:
            view = answer_modal(controls, target)
        # Right away: the trigger_id is good for 3 seconds.
        await self._open_modal(str(body.get("trigger_id", "")), view)

    async def _on_modal_submitted(self, ack: AsyncAck, body: Body) -> None:
        await ack()  # closes the modal; the answer comes as a message
        view = body.get("view") or {}
        key = f"submission:{view.get('id')}:{body.get('trigger_id') or view.get('hash')}"
        if not self.first_time(key):
            return
        target = ReplyTarget.from_metadata(str(view.get("private_metadata", "")))
        inbound = Inbound(
            CHANNEL,
            _user_id(body),
            InboundKind.TEXT,
            text=submitted_value(view),
            team_id=_team_id(body),
            event_id=key,
        )
        self.spawn(self._converse(inbound, target, redraw_cards=target.channel == self._settings.admin_channel))

    async def _on_answer_closed(self, ack: AsyncAck, body: Body) -> None:
        await ack()
        view = body.get("view") or {}
        key = f"closed:{view.get('id')}"
        if not self.first_time(key):
            return
        # Closing the question's modal is pressing its Cancel: the next message is not taken as the answer.
        target = ReplyTarget.from_metadata(str(view.get("private_metadata", "")))
        inbound = Inbound(CHANNEL, _user_id(body), InboundKind.BUTTON, button="cancel", team_id=_team_id(body))
        self.spawn(self._converse(inbound, target))

    # ---- one turn -------------------------------------------------------------------------------

    async def _converse(
        self,
        inbound: Inbound,
        target: ReplyTarget,
        *,
        trigger: tuple[str, float] | None = None,
        redraw_cards: bool = False,
    ) -> None:
        inbound = await self._identify(inbound)
        turn = asyncio.ensure_future(self.engine.handle(inbound))
        marked = False
        try:
            done, _ = await asyncio.wait({turn}, timeout=self.working_after)
            if not done and target.message_ts:
                marked = await self._mark_working(target)
            replies = await turn
            await self._post(inbound.user_id, target, replies, trigger=trigger)
        finally:
            turn.cancel()  # only does something when this task itself was cancelled
            if marked:
                await self._unmark_working(target)
        if redraw_cards:
            await self.update_cards()

    async def _show_home(self, inbound: Inbound) -> None:
        inbound = await self._identify(inbound)
        replies = await self.engine.handle(inbound)
        if replies:
            await self.client.views_publish(user_id=inbound.user_id, view=home_view(replies))

    async def _identify(self, inbound: Inbound) -> Inbound:
        """Link a newcomer by the e-mail Slack vouches for; add their Slack language and time zone."""
        key = (inbound.team_id, inbound.user_id)
        profile = self._profiles.get(key)
        if profile is None:
            profile = self._profiles[key] = await self._profile(inbound.user_id)

        async def email() -> str | None:
            return profile.email

        await self.link_by_email(*key, email)
        return dataclasses.replace(
            inbound, locale_hint=profile.locale or inbound.locale_hint, timezone=profile.timezone
        )

    async def _profile(self, user_id: str) -> _Profile:
        try:
            user = (await self.client.users_info(user=user_id, include_locale=True)).get("user") or {}
        except SlackApiError as exc:
            log.warning("users.info failed for %s: %s", user_id, exc.response.get("error"))
            return _Profile(None, None, None)
        zone = user.get("tz")
        return _Profile(slack_locale(user.get("locale")), zone if isinstance(zone, str) else None, verified_email(user))

    # ---- sending --------------------------------------------------------------------------------

    async def _post(
        self,
        user_id: str,
        target: ReplyTarget,
        replies: Sequence[Rendered],
        *,
        trigger: tuple[str, float] | None = None,
    ) -> None:
        try:
            channel = target.channel or await self._dm(user_id)
        except Exception as exc:
            if not self.worth_retrying(exc):
                raise
            await self.hold(user_id, list(replies), exc)
            return
        for index, reply in enumerate(replies):
            try:
                trigger = await self._post_one(user_id, target, channel, reply, trigger)
            except Exception as exc:
                # Slack still refused after the client's own retries: the rest waits in the database, never lost.
                if not self.worth_retrying(exc):
                    raise
                await self.hold(user_id, list(replies[index:]), exc)
                return

    async def _post_one(
        self, user_id: str, target: ReplyTarget, channel: str, reply: Rendered, trigger: tuple[str, float] | None
    ) -> tuple[str, float] | None:
        """Post one reply; the modal trigger that is left for the next one."""
        controls = self._controls(reply.locale or self.default_locale)
        if trigger and target.ephemeral and asks_for_text(reply):
            # Nobody types to the bot in a shared channel: the question opens a modal at once.
            trigger_id, clicked = trigger
            trigger = None
            if time.monotonic() - clicked < TRIGGER_LIFETIME and await self._open_modal(
                trigger_id, answer_modal(controls, dataclasses.replace(target, channel=channel), reply.text)
            ):
                return trigger
        blocks = message_blocks(reply, controls, typing_possible=not target.ephemeral)
        if target.ephemeral:
            await self.client.chat_postEphemeral(channel=channel, user=user_id, text=escape(reply.text), blocks=blocks)
        else:
            await self.client.chat_postMessage(channel=channel, text=escape(reply.text), blocks=blocks)
        if reply.image is not None:  # an enrolment QR code goes into the person's direct messages, never a channel
            await self._upload(await self._dm(user_id), reply.image)
        return trigger

    async def _open_modal(self, trigger_id: str, view: dict[str, Any]) -> bool:
        try:
            await self.client.views_open(trigger_id=trigger_id, view=view)
        except SlackApiError as exc:  # an expired trigger: the question is posted with an Answer button
            log.info("could not open a modal: %s", exc.response.get("error"))
            return False
        return True

    async def _upload(self, channel: str, image: Image) -> None:
        await self.client.files_upload_v2(
            channel=channel, file=image.png, filename=image.name, title=image.name, alt_txt=image.name
        )

    async def _dm(self, user_id: str) -> str:
        channel = self._dms.get(user_id)
        if channel is None:
            opened = await self.client.conversations_open(users=user_id)
            channel = self._dms[user_id] = str(opened["channel"]["id"])
        return channel

    async def _mark_working(self, target: ReplyTarget) -> bool:
        try:
            await self.client.reactions_add(channel=target.channel, timestamp=target.message_ts, name=WORKING_REACTION)
        except SlackApiError as exc:
            log.info("could not show that the bot is working: %s", exc.response.get("error"))
            return False
        return True

    async def _unmark_working(self, target: ReplyTarget) -> None:
        with contextlib.suppress(SlackApiError):
            await self.client.reactions_remove(
                channel=target.channel, timestamp=target.message_ts, name=WORKING_REACTION
            )

    @property
    def card_destination(self) -> str:
        return self._settings.admin_channel

    async def post_card(self, destination: str, request_id: int, card: Rendered) -> str:
        posted = await self.client.chat_postMessage(
            channel=destination, text=escape(card.text), blocks=card_blocks(request_id, card)
        )
        return str(posted["ts"])

    async def redraw_card(self, destination: str, message_ref: str, request_id: int, card: Rendered) -> None:
        await self.client.chat_update(
            channel=destination, ts=message_ref, text=escape(card.text), blocks=card_blocks(request_id, card)
        )

    async def post_to_admins(self, destination: str, post: Rendered) -> None:
        await self.client.chat_postMessage(channel=destination, text=escape(post.text), blocks=text_blocks(post.text))
        if post.image is not None:
            await self._upload(destination, post.image)


def _user_id(body: Body) -> str:
    """Who acted, from the signed payload: never from anything the person could type."""
    return str((body.get("user") or {}).get("id", ""))


def _team_id(body: Body) -> str:
    return str((body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id") or "")
