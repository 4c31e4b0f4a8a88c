"""The Feishu (Lark) channel on lark-oapi: employees in private chats, request cards for admins in a group.

Events reach lark-oapi's ``EventDispatcherHandler`` over the SDK's long connection (``websocket`` mode: the
bot connects out, no public URL) or as posts to ``[feishu] events_path`` (``webhook`` mode), where the SDK
decrypts them, checks the verification token and the signature and answers ``url_verification``, and a
request signed more than five minutes ago is refused, so that a captured one cannot be replayed later.

Texts in a private chat, bot menu items and card callbacks (a button, the code form) become ``Inbound``;
replies go to the person's private chat as cards (``feishu_cards``), QR codes as images. A newcomer is linked
by the enterprise mailbox the contact API gives, or by a link code. Request cards go to ``admin_chat_id`` and
are patched as their request moves on; a press counts as the presser's, whose open_id Feishu signs. In the
admin group the bot only posts cards: people write to it privately.

lark-oapi would fetch its tenant token with blocking ``requests`` inside its async calls: the token is
fetched here and handed to each call. Its logger prints to stdout past the bot's redacting handlers: that
handler is removed, and the logger kept at WARNING (its DEBUG lines carry payloads).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from io import BytesIO
from typing import Any

import httpx
import lark_oapi as lark
from aiohttp import web
from lark_oapi.api.auth import v3 as auth
from lark_oapi.api.contact import v3 as contact
from lark_oapi.api.im import v1 as im

from bot.handlers import feishu_cards as cards
from bot.handlers.base import Channel, ChannelContext
from bot.handlers.feishu_socket import LongConnection
from bot.messages import Image, Inbound, InboundKind, Rendered

log = logging.getLogger(__name__)

CHANNEL = "feishu"
SIGNED_HEADERS = ("X-Lark-Request-Timestamp", "X-Lark-Request-Nonce", "X-Lark-Signature", "X-Request-Id")
SIGNATURE_WINDOW = timedelta(minutes=5)
TOKEN_MARGIN = timedelta(minutes=10)  # a tenant token is renewed this long before Feishu says it expires
TOKEN_REJECTED = frozenset({99991661, 99991663, 99991668})  # missing, invalid or expired tenant token
BUSY = frozenset({99991400, 230020, 11232})  # rate limits: the app's, a chat's, the app's messages


class FeishuRefused(Exception):
    """Feishu answered an API call with a non-zero code."""

    def __init__(self, code: int, message: str, status: int = 200) -> None:
        super().__init__(f"{code} {message}")
        self.code, self.busy = code, code in BUSY or status >= 500


def verified_email(user: Any) -> str | None:
    """The enterprise mailbox Feishu keeps for an active member of the tenant; else ``None``.

    Only ``enterprise_email``, the mailbox the tenant's Feishu Mail set up: the contact ``email`` field is typed
    in by an admin and never confirmed by the person (Feishu's API notes say so), so it links nobody.
    """
    status = getattr(user, "status", None)
    active = status is not None and status.is_activated is True
    gone = status is not None and bool(status.is_frozen or status.is_resigned or status.is_exited)
    email = getattr(user, "enterprise_email", None)
    return email if active and not gone and isinstance(email, str) and "@" in email else None


def message_text(message: Any) -> str:
    """What a person wrote, for a text message; other kinds (images, files, stickers) carry no text for us."""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        if message.message_type == "text":
            return str(json.loads(message.content).get("text", ""))
    return ""


class FeishuChannel(Channel):
    """One custom app of one tenant; runs under ``bot.serve`` beside the other channels."""

    name = CHANNEL

    def __init__(self, context: ChannelContext) -> None:
        super().__init__(context)
        self.settings = settings = context.settings.feishu
        if settings.app_secret is None:
            raise ValueError("the Feishu channel needs [feishu] app_id and app_secret")
        self.clock = context.clock  # what Feishu's timestamps and token lifetimes are read against
        self._secret = settings.app_secret.get_secret_value()
        builder = lark.Client.builder().app_id(settings.app_id).app_secret(self._secret)
        self.client = builder.domain(settings.api_base_url).enable_set_token(True).build()
        key, token = (s.get_secret_value() if s else "" for s in (settings.encrypt_key, settings.verification_token))
        self.dispatcher = (
            lark.EventDispatcherHandler.builder(key, token)
            .register_p2_im_message_receive_v1(self._on_message)
            .register_p2_application_bot_menu_v6(self._on_menu)
            .register_p2_card_action_trigger(self._on_card_action)
            .build()
        )
        sdk_log = logging.getLogger("Lark")
        sdk_log.setLevel(logging.WARNING)
        for handler in list(sdk_log.handlers):
            sdk_log.removeHandler(handler)
        self._token: tuple[str, datetime] | None = None
        self._token_lock = asyncio.Lock()
        self._socket: LongConnection | None = None

    def add_routes(self, server: web.Application) -> None:
        if self.settings.mode == "webhook":
            server.router.add_post(self.settings.events_path, self._on_http)

    async def start(self) -> None:
        if self.settings.mode == "websocket":
            self._socket = LongConnection(
                self.settings.app_id,
                self._secret,
                log_level=lark.LogLevel.WARNING,
                event_handler=self.dispatcher,
                domain=self.settings.api_base_url,
            )
            await self._socket.open()
        log.info("feishu: ready (%s mode)", self.settings.mode)

    async def connected(self) -> bool:
        return self.settings.mode == "webhook" or (self._socket is not None and self._socket.is_open)

    async def disconnect(self) -> None:
        if self._socket is not None:
            await self._socket.close()
            self._socket = None

    async def check(self) -> str | None:
        self._token = None
        try:
            await self._tenant_token()
        except Exception as exc:  # whatever it is, it is the answer
            return f"could not get a tenant token: {type(exc).__name__}: {exc}"
        return None

    # ---- from Feishu to the engine --------------------------------------------------------------

    async def _on_http(self, request: web.Request) -> web.Response:
        signed_at = request.headers.get(SIGNED_HEADERS[0])
        if signed_at is not None and not self._recent(signed_at):
            log.warning("feishu: refused an event signed at %s, outside the %s window", signed_at, SIGNATURE_WINDOW)
            return web.json_response({"msg": "stale timestamp"}, status=401)
        raw = lark.RawRequest()
        raw.uri, raw.body = request.path, await request.read()
        raw.headers = {name: request.headers[name] for name in SIGNED_HEADERS if name in request.headers}
        answer = self.dispatcher.do(raw)  # decrypts, checks token and signature, calls the handlers below
        return web.Response(status=answer.status_code, body=answer.content, headers=answer.headers)

    def _recent(self, signed_at: str) -> bool:
        try:
            at = datetime.fromtimestamp(int(signed_at), UTC)
        except (ValueError, OverflowError, OSError):
            return False
        return abs(self.clock.now() - at) <= SIGNATURE_WINDOW

    def _on_message(self, data: Any) -> None:
        message, sender = data.event.message, data.event.sender
        if sender.sender_type == "user" and message.chat_type == "p2p":  # not the bot's own, not group chatter
            text = message_text(message)
            self._take(Inbound(CHANNEL, sender.sender_id.open_id, InboundKind.TEXT, text=text, **_origin(data)))

    def _on_menu(self, data: Any) -> None:
        user, command = data.event.operator.operator_id.open_id, str(data.event.event_key or "")
        self._take(Inbound(CHANNEL, user, InboundKind.COMMAND, command=command, **_origin(data)))

    def _on_card_action(self, data: Any) -> dict[str, Any]:
        event = data.event
        on_card = bool(self.settings.admin_chat_id) and event.context.open_chat_id == self.settings.admin_chat_id
        user, origin = event.operator.open_id, _origin(data)
        match cards.pressed(event.action.value, event.action.form_value):
            case ("button", action):
                kind = InboundKind.BUTTON
                inbound = Inbound(CHANNEL, user, kind, button=action, public=on_card, from_card=on_card, **origin)
            case ("code", typed):
                inbound = Inbound(CHANNEL, user, InboundKind.TEXT, text=typed, **origin)
            case _:
                return {}
        # A decision may follow a press on a card, or a code sent from one: the request cards are redrawn at once.
        self._take(inbound, redraw=True)
        return {}  # at once: Feishu waits three seconds at most for the answer to a callback

    def _take(self, inbound: Inbound, *, redraw: bool = False) -> None:
        if inbound.user_id and (not inbound.event_id or self.first_time(inbound.event_id)):
            self.spawn(self._converse(inbound, redraw))

    async def _converse(self, inbound: Inbound, redraw: bool) -> None:
        async with self.people[inbound.user_id]:
            await self.link_by_email(inbound.team_id, inbound.user_id, lambda: self._email(inbound.user_id))
            await self._send(inbound.user_id, await self.engine.handle(inbound))
        if redraw:
            await self.update_cards()

    async def _email(self, open_id: str) -> str | None:
        request = contact.GetUserRequest.builder().user_id(open_id).user_id_type("open_id").build()
        try:
            response = await self._call(self.client.contact.v3.user.aget, request)
        except FeishuRefused as exc:  # outside the app's contact range, say
            log.info("feishu: the contact API would not describe %s: %s", open_id, exc)
            return None
        return verified_email(response.data.user)

    # ---- from the engine to Feishu --------------------------------------------------------------

    async def send_unprompted(self, user_id: str, replies: list[Rendered]) -> None:
        await self._send(user_id, replies)

    async def _send(self, open_id: str, replies: Sequence[Rendered]) -> None:
        for reply in replies:
            if reply.image is not None:  # replies go to the private chat only, so the QR code does too
                await self._send_image("open_id", open_id, reply.image)
            if reply.text.strip() or reply.buttons:
                locale = reply.locale or self.default_locale
                form = cards.CodeForm(self.label("feishu_code_label", locale), self.label("feishu_send", locale))
                await self._create("open_id", open_id, "interactive", cards.content(cards.card(reply, form)))

    async def _create(self, id_type: str, receiver: str, kind: str, content: str) -> str:
        body = im.CreateMessageRequestBody.builder().receive_id(receiver).msg_type(kind).content(content).build()
        request = im.CreateMessageRequest.builder().receive_id_type(id_type).request_body(body).build()
        return str((await self._call(self.client.im.v1.message.acreate, request)).data.message_id)

    async def _send_image(self, id_type: str, receiver: str, image: Image) -> None:
        await self._create(id_type, receiver, "image", json.dumps({"image_key": await self._upload(image)}))

    async def _upload(self, image: Image) -> str:
        picture = BytesIO(image.png)
        picture.name = image.name
        body = im.CreateImageRequestBody.builder().image_type("message").image(picture).build()
        request = im.CreateImageRequest.builder().request_body(body).build()
        return str((await self._call(self.client.im.v1.image.acreate, request)).data.image_key)

    @property
    def card_destination(self) -> str:
        return self.settings.admin_chat_id

    async def post_card(self, destination: str, request_id: int, card: Rendered) -> str:
        return await self._create("chat_id", destination, "interactive", cards.content(cards.card(card)))

    async def redraw_card(self, destination: str, message_ref: str, request_id: int, card: Rendered) -> None:
        body = im.PatchMessageRequestBody.builder().content(cards.content(cards.card(card))).build()
        request = im.PatchMessageRequest.builder().message_id(message_ref).request_body(body).build()
        try:
            await self._call(self.client.im.v1.message.apatch, request)
        except FeishuRefused as exc:
            if exc.busy:
                raise
            # Recalled, or older than Feishu lets a card be edited: nothing left to redraw.
            log.warning("feishu: could not redraw the card of request %s: %s", request_id, exc)

    async def post_to_admins(self, destination: str, post: Rendered) -> None:
        await self._create("chat_id", destination, "interactive", cards.content(cards.card(post)))
        if post.image is not None:
            await self._send_image("chat_id", destination, post.image)

    def worth_retrying(self, error: Exception) -> bool:
        if isinstance(error, FeishuRefused):
            return error.busy
        return isinstance(error, (httpx.TransportError, OSError, TimeoutError))

    # ---- API calls --------------------------------------------------------------------------------

    async def _call(self, method: Callable[..., Awaitable[Any]], request: Any) -> Any:
        """One SDK call with the tenant token; a token Feishu no longer takes is fetched again, once."""
        for attempt in (1, 2):
            option = lark.RequestOption.builder().tenant_access_token(await self._tenant_token()).build()
            response = await _answered(method(request, option))
            if response.success():
                return response
            if response.code not in TOKEN_REJECTED or attempt == 2:
                raise FeishuRefused(response.code, response.msg, response.raw.status_code if response.raw else 200)
            self._token = None
        raise AssertionError("unreachable")

    async def _tenant_token(self) -> str:
        async with self._token_lock:
            if self._token is not None and self._token[1] > self.clock.now():
                return self._token[0]
            body = auth.InternalTenantAccessTokenRequestBody.builder().app_id(self.settings.app_id)
            request = auth.InternalTenantAccessTokenRequest.builder().request_body(
                body.app_secret(self._secret).build()
            )
            response = await _answered(self.client.auth.v3.tenant_access_token.ainternal(request.build()))
            # Feishu puts the token beside ``code``, not in ``data``, where the SDK's model looks.
            answer = json.loads(response.raw.content or b"{}") if response.raw is not None else {}
            token = answer.get("tenant_access_token")
            if answer.get("code") != 0 or not isinstance(token, str):
                raise FeishuRefused(int(answer.get("code", -1)), str(answer.get("msg", "no tenant_access_token")))
            self._token = (token, self.clock.now() + timedelta(seconds=int(answer.get("expire", 0))) - TOKEN_MARGIN)
            return token


async def _answered(call: Awaitable[Any]) -> Any:
    try:
        return await call
    except ValueError as exc:  # lark-oapi reads every answer as JSON: a proxy's error page ends here
        raise FeishuRefused(-1, "an answer that is not JSON", 502) from exc


def _origin(data: Any) -> dict[str, Any]:
    """Who the event is from, in Feishu's words: the tenant, and the event id that makes a retry recognisable."""
    return {"team_id": str(data.header.tenant_key or ""), "event_id": data.header.event_id or None}
