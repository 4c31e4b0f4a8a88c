"""The DingTalk channel: an internal app's robot, reached over the Stream connection or the robot's HTTP callback.

People talk to the robot in a private chat, or @ it in a group (the admin group). Replies that offer
choices are interactive cards (``dingtalk_cards``); a press comes back with the presser's user id as
DingTalk vouches for it, and the engine decides whether they may. Request cards go to the admin group
and are redrawn when their request moves on. Two ways in, one translation:

- ``stream``: dingtalk-stream's client holds a websocket to DingTalk (no public URL needed); messages
  and card presses arrive as callback frames, each acknowledged at once and handled in the background;
- ``http``: DingTalk posts messages (and card presses, once ``public_url`` is registered) to
  ``events_path`` on the shared server, with ``timestamp`` and ``sign`` headers where sign is
  base64(HmacSHA256(app secret, timestamp + "\\n" + app secret)). A wrong sign, or a timestamp more
  than an hour from now, is refused with 401 before the body is read. The sign does not cover the
  body: one sign seen again with another body is a forgery, and refused too.

Everything sent goes through the open API with the app's access token: private messages (robot
oToMessages/batchSend), group messages (groupMessages/send), cards (robot interactiveCards), the QR
code as an uploaded image. A newcomer is linked by the org e-mail the organisation gave them (the
contact API's ``org_email``), or else by a link code. DingTalk cannot delete a person's message, so a
code typed to the robot stays in that private chat (the engine refuses codes typed in groups).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import httpx
from aiohttp import web
from cachetools import TTLCache
from dingtalk_stream import ChatbotMessage

from bot.handlers.base import Channel, ChannelContext, describe_error
from bot.handlers.dingtalk_api import DingTalkApi, DingTalkError, HideTokens, StreamConnection, request_sign
from bot.handlers.dingtalk_cards import (
    REQUEST_CARD,
    TEMPLATE,
    callback_content,
    card_data,
    pressed_action,
    reply_card_id,
    request_card_id,
)
from bot.handlers.telegram_text import split_message
from bot.messages import Image, Inbound, InboundKind, Rendered

log = logging.getLogger(__name__)

CHANNEL = "dingtalk"
SIGNATURE_WINDOW_MS = 3_600_000  # DingTalk: a timestamp more than an hour from now is not from DingTalk
SIGNATURES_REMEMBERED = 100_000
CARD_ROUTE = "unlockbot"  # the key DingTalk files our card-callback URL under (http mode)
MAX_TEXT = 4000  # characters in one text message; longer answers are split where a reader pauses
LOGS_WITH_URLS = ("httpx", "websockets.client")

Json = dict[str, Any]


class DingTalkChannel(Channel):
    """One internal app's robot; runs under ``bot.serve`` beside the other channels."""

    name = CHANNEL

    def __init__(self, context: ChannelContext) -> None:
        super().__init__(context)
        settings = context.settings.dingtalk
        if settings.client_secret is None:
            raise ValueError("the DingTalk channel needs [dingtalk] client_secret")
        self._settings = settings
        self._secret = settings.client_secret.get_secret_value()
        self.api = DingTalkApi(settings, self._secret)
        self._signs: TTLCache[str, str] = TTLCache(SIGNATURES_REMEMBERED, ttl=2 * SIGNATURE_WINDOW_MS / 1000)
        self._stream: StreamConnection | None = None
        self._running: asyncio.Task[None] | None = None
        self._hide = HideTokens()

    # ---- what serve calls -----------------------------------------------------------------------

    def add_routes(self, server: web.Application) -> None:
        if self._settings.mode == "http":
            server.router.add_post(self._settings.events_path, self._on_http)

    async def start(self) -> None:
        for name in LOGS_WITH_URLS:
            logging.getLogger(name).addFilter(self._hide)
        if self._settings.mode == "stream":
            self._stream = StreamConnection(self.api, self.receive_message, self.receive_press)
            self._running = asyncio.create_task(self._stream.run())  # connecting retries: serve must not wait
        elif self._settings.public_url:
            route = {"callbackRouteKey": CARD_ROUTE, "apiSecret": self._secret, "forceUpdate": True}
            route["callbackUrl"] = self._settings.public_url + self._settings.events_path
            await self.api.call("POST", "/v1.0/card/callbacks/register", route)
        else:
            log.warning("dingtalk: http mode without public_url: card buttons work once their URL is registered")
        log.info("dingtalk: ready (%s mode)", self._settings.mode)

    async def connected(self) -> bool:
        """For /readyz: in stream mode whether the websocket is up; in http mode DingTalk calls us."""
        return self._settings.mode == "http" or (self._stream is not None and self._stream.up)

    async def disconnect(self) -> None:
        if self._running is not None:
            self._running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._running
            self._running = None

    async def close(self) -> None:
        await self.api.aclose()
        for name in LOGS_WITH_URLS:
            logging.getLogger(name).removeFilter(self._hide)

    async def check(self) -> str | None:
        try:
            await self.api.token()
        except DingTalkError as exc:
            return f"DingTalk refused the app's Client ID and Secret ({exc.code or exc.status})"
        except httpx.HTTPError as exc:
            return f"DingTalk cannot be reached: {describe_error(exc)}"
        return None

    # ---- receiving ------------------------------------------------------------------------------

    def _genuine(self, timestamp: str, sign: str) -> bool:
        if not timestamp.isdigit() or abs(time.time() * 1000 - int(timestamp)) > SIGNATURE_WINDOW_MS:
            return False
        return hmac.compare_digest(sign.encode(), request_sign(timestamp, self._secret).encode())

    async def _on_http(self, request: web.Request) -> web.Response:
        sign = request.headers.get("sign", "")
        if not self._genuine(request.headers.get("timestamp", ""), sign):
            log.warning("dingtalk: refused a callback with a wrong or stale signature")
            return web.Response(status=401)
        body = await request.read()
        digest = hashlib.sha256(body).hexdigest()
        if self._signs.setdefault(sign, digest) != digest:
            log.warning("dingtalk: refused a callback whose signature came before with another body")
            return web.Response(status=401)
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return web.Response(status=400, text="expected a DingTalk callback as JSON")
        if "outTrackId" in data:
            self.receive_press(data, f"press:{sign}")
        else:
            self.receive_message(data, "")
        return web.json_response({})

    def receive_message(self, data: Json, delivery: str) -> None:
        """A message to the robot: in its private chat, or mentioning it in a group."""
        try:
            message = ChatbotMessage.from_dict(data)
            texts = message.get_text_list() or []
        except (KeyError, TypeError, AttributeError):
            log.warning("dingtalk: a message the robot cannot read was dropped")
            return
        user, key = str(message.sender_staff_id or ""), str(message.message_id or delivery)
        # No staff id: someone from outside the organisation, whom the robot can neither look up nor message.
        if not user or not key or not self.first_time(key):
            return
        public = message.conversation_type == "2"
        group = str(message.conversation_id or "") if public else ""
        if group and group != self._settings.admin_conversation_id:  # how an operator finds a group's id
            log.info("dingtalk: mentioned in the group %r, openConversationId %s", message.conversation_title, group)
        inbound = Inbound(
            CHANNEL,
            user,
            InboundKind.TEXT,
            text=" ".join(text.strip() for text in texts if isinstance(text, str)).strip(),
            team_id=str(message.sender_corp_id or ""),
            event_id=key,
            public=public,
        )
        self.spawn(self._converse(inbound, group))

    def receive_press(self, data: Json, delivery: str) -> None:
        """A button pressed on one of the robot's cards; the presser is who DingTalk says pressed it."""
        user, card = str(data.get("userId") or ""), str(data.get("outTrackId") or "")
        action = pressed_action(callback_content(data.get("content")))
        key = delivery or f"press:{card}:{user}:{action}"
        if not (user and card and action) or not self.first_time(key):
            return
        on_request_card = card.startswith(REQUEST_CARD)
        inbound = Inbound(
            CHANNEL,
            user,
            InboundKind.BUTTON,
            button=action,
            team_id=str(data.get("corpId") or ""),
            event_id=key,
            public=on_request_card,
            from_card=on_request_card,
        )
        self.spawn(self._converse(inbound, ""))  # answered privately; the card itself is redrawn

    async def _converse(self, inbound: Inbound, group: str) -> None:
        await self.link_by_email(inbound.team_id, inbound.user_id, lambda: self._org_email(inbound.user_id))
        async with self.people[inbound.user_id]:
            await self._send(inbound.user_id, await self.engine.handle(inbound), group)
        if inbound.public:
            await self.update_cards()  # a decision on a card, or a reason given in the group: redraw now

    async def _org_email(self, user_id: str) -> str | None:
        """The mailbox the organisation gave the person (``org_email``); never the one they typed themselves."""
        try:
            person = (await self.api.oapi("/topapi/v2/user/get", json={"userid": user_id})).get("result") or {}
        except (DingTalkError, httpx.HTTPError) as exc:
            log.warning("dingtalk: could not look up %s: %s", user_id, describe_error(exc))
            return None
        email = person.get("org_email")
        return email if isinstance(email, str) and "@" in email and person.get("active", True) else None

    # ---- sending --------------------------------------------------------------------------------

    async def send_unprompted(self, user_id: str, replies: list[Rendered]) -> None:
        await self._send(user_id, replies)

    def worth_retrying(self, error: Exception) -> bool:
        if isinstance(error, DingTalkError):
            return error.status == 429 or error.status >= 500
        return isinstance(error, (httpx.TransportError, OSError, TimeoutError))

    async def _send(self, user_id: str, replies: Sequence[Rendered], group: str = "") -> None:
        """Replies to a group go to the group, except what is for the person alone (codes, links, images)."""
        for reply in replies:
            where = group if group and not (reply.private or reply.secret_input) else ""
            if reply.buttons:
                await self._card(reply_card_id(), reply, user_id=user_id, group=where)
            elif reply.text.strip():
                for piece in split_message(reply.text, MAX_TEXT):
                    await self._say(user_id, where, "sampleText", {"content": piece})
            if reply.image is not None:
                await self._send_image(user_id, "", reply.image)

    async def _send_image(self, user_id: str, group: str, image: Image) -> None:
        media = await self.api.oapi(
            "/media/upload", params={"type": "image"}, files={"media": (image.name, image.png, "image/png")}
        )
        await self._say(user_id, group, "sampleImageMsg", {"photoURL": str(media["media_id"])})

    async def _say(self, user_id: str, group: str, kind: str, param: Json) -> None:
        body: Json = {
            "robotCode": self._settings.robot,
            "msgKey": kind,
            "msgParam": json.dumps(param, ensure_ascii=False),
        }
        if group:
            await self.api.call("POST", "/v1.0/robot/groupMessages/send", {**body, "openConversationId": group})
            return
        sent = await self.api.call("POST", "/v1.0/robot/oToMessages/batchSend", {**body, "userIds": [user_id]})
        if user_id in (sent.get("flowControlledStaffIdList") or []):
            raise DingTalkError(429, "flowControlled", "too many messages to this person just now")
        if user_id in (sent.get("invalidStaffIdList") or []):
            raise DingTalkError(400, "invalidStaffId", "not a member the robot can write to")

    def _card_json(self, card: Rendered) -> str:
        return json.dumps(card_data(card, self.label("dingtalk_card_title", card.locale)), ensure_ascii=False)

    async def _card(self, card_id: str, card: Rendered, *, user_id: str = "", group: str = "") -> None:
        body: Json = {
            "cardTemplateId": TEMPLATE,
            "robotCode": self._settings.robot,
            "cardBizId": card_id,
            "cardData": self._card_json(card),
        }
        if group:
            body["openConversationId"] = group
        else:
            body["singleChatReceiver"] = json.dumps({"userId": user_id})
        if self._settings.mode == "http":
            body["callbackRouteKey"] = CARD_ROUTE
        await self.api.call("POST", "/v1.0/im/v1.0/robot/interactiveCards/send", body)

    @property
    def card_destination(self) -> str:
        return self._settings.admin_conversation_id

    async def post_card(self, destination: str, request_id: int, card: Rendered) -> str:
        card_id = request_card_id(request_id)
        await self._card(card_id, card, group=destination)
        return card_id

    async def redraw_card(self, destination: str, message_ref: str, request_id: int, card: Rendered) -> None:
        await self.api.call(
            "PUT", "/v1.0/im/robots/interactiveCards", {"cardBizId": message_ref, "cardData": self._card_json(card)}
        )

    async def post_to_admins(self, destination: str, post: Rendered) -> None:
        for piece in split_message(post.text, MAX_TEXT):
            await self._say("", destination, "sampleText", {"content": piece})
        if post.image is not None:
            await self._send_image("", destination, post.image)
