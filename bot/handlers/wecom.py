"""The WeCom (企业微信) channel: a self-built app's callbacks on the shared HTTP server, replies as app messages.

WeCom posts every message and event to ``[wecom] events_path`` as XML encrypted with the app's EncodingAESKey and
signed with its Token (``msg_signature`` over the token, timestamp, nonce and ciphertext). wechatpy's
``WeChatCrypto`` checks the signature, decrypts, checks the ciphertext was made for this company, and answers
WeCom's URL verification (a signed GET with ``echostr``). A callback is refused (403) unless its signature holds
and its timestamp is within ``REPLAY_WINDOW`` of now; a signed callback whose timestamp and nonce were seen
already in that window (a replay) is dropped, and so is a message id or event seen before (WeCom retries a
callback it got no answer to within five seconds). Who spoke is WeCom's word: ``FromUserName`` inside the
signed ciphertext. The HTTP answer is empty and immediate; the turn runs after it.

Replies go out through the app-message API (``message/send``, called by ``wecom_api``): text, images, and
template cards with buttons (``wecom_cards``). Request cards go to each of ``admin_users``; once a request
moves on, the card is updated (``message/update_template_card``) with a one-time response code: the newest
an admin's click on it brought, else the one sending it did. Newcomers are linked by the company e-mail
``user/get`` gives, or by a link code.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any
from xml.etree import ElementTree

import httpx
from aiohttp import web
from cachetools import TTLCache
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.exceptions import InvalidSignatureException

from bot.handlers.base import RECENT_EVENTS, Channel, ChannelContext, describe_error
from bot.handlers.wecom_api import BUSY_ERRORS, WeComApi, WeComError
from bot.handlers.wecom_cards import (
    CARD_TASK,
    Json,
    image_message,
    reply_messages,
    request_card,
    request_of_task,
    task_id,
    text_messages,
)
from bot.messages import Image, Inbound, InboundKind, Rendered

log = logging.getLogger(__name__)

CHANNEL = "wecom"
REPLAY_WINDOW = timedelta(minutes=5)
RESPONSE_CODE_LIFETIME = timedelta(hours=72)
# The app's menu, set at start: (label key, the command it sends as EventKey).
MENU = (("menu", "menu"), ("unlock", "unlock"))
COMMANDS = frozenset({"menu", "unlock", "why", "lang", "cancel", "request_status", "faq"})


def company_email(member: Mapping[str, Any]) -> str | None:
    """The e-mail WeCom's address book gives an active member: the company mailbox first, else the e-mail."""
    if member.get("status") != 1:  # 2 disabled, 4 never activated, 5 left the company
        return None
    for field in ("biz_mail", "email"):
        value = member.get(field)
        if isinstance(value, str) and "@" in value:
            return value
    return None


class WeComChannel(Channel):
    """One self-built WeCom app: callbacks in, app messages out, request cards to ``admin_users``."""

    name = CHANNEL

    def __init__(self, context: ChannelContext) -> None:
        super().__init__(context)
        settings = context.settings.wecom
        if not settings.configured or settings.token is None or settings.encoding_aes_key is None:
            raise ValueError("the WeCom channel needs [wecom] corp_id, agent_id, secret, token and encoding_aes_key")
        self._settings = settings
        self._clock = context.clock  # what WeCom's timestamps are compared with, against replays
        self._crypto = WeChatCrypto(
            settings.token.get_secret_value(), settings.encoding_aes_key.get_secret_value(), settings.corp_id
        )
        self._api = WeComApi(settings)
        window = REPLAY_WINDOW.total_seconds()
        self._nonces: TTLCache[str, bool] = TTLCache(maxsize=RECENT_EVENTS, ttl=2 * window)
        # Response codes for updating request cards: the newest a click brought, per request; those used up.
        self._click_codes: TTLCache[int, str] = TTLCache(RECENT_EVENTS, RESPONSE_CODE_LIFETIME.total_seconds())
        self._spent: TTLCache[str, bool] = TTLCache(RECENT_EVENTS, RESPONSE_CODE_LIFETIME.total_seconds())
        self._qr_codes: TTLCache[str, list[str]] = TTLCache(RECENT_EVENTS, timedelta(hours=24).total_seconds())
        self._receiving = False

    # ---- what serve calls -----------------------------------------------------------------------

    def add_routes(self, server: web.Application) -> None:
        server.router.add_get(self._settings.events_path, self._on_callback)
        server.router.add_post(self._settings.events_path, self._on_callback)

    async def start(self) -> None:
        self._receiving = True
        menu = [{"type": "click", "name": self.label(key, None), "key": command} for key, command in MENU]
        try:  # the app's menu, as Telegram's command list: a failure only loses the shortcut
            await self._api.call("menu/create", body={"button": menu}, params={"agentid": str(self._settings.agent_id)})
        except (WeComError, httpx.HTTPError) as exc:
            log.warning("wecom: could not set the app's menu: %s", describe_error(exc))
        log.info("WeCom channel ready: callbacks at %s", self._settings.events_path)

    async def disconnect(self) -> None:
        self._receiving = False  # WeCom retries what is refused now; another replica, or the next start, takes it

    async def close(self) -> None:
        await self._api.close()

    async def check(self) -> str | None:
        api = WeComApi(self._settings)  # a client of its own: a channel that is only checked is never stopped
        try:
            await api.token()
        except WeComError as exc:
            return f"gettoken refused the corp_id and secret: {exc}"
        except httpx.HTTPError as exc:
            return f"WeCom's API is not reachable: {describe_error(exc)}"
        finally:
            await api.close()
        return None

    def worth_retrying(self, error: Exception) -> bool:
        if isinstance(error, WeComError):
            return error.code in BUSY_ERRORS
        return isinstance(error, (httpx.TransportError, httpx.HTTPStatusError, OSError, TimeoutError))

    # ---- receiving ------------------------------------------------------------------------------

    async def _on_callback(self, request: web.Request) -> web.Response:
        query = request.query
        signature, stamp, nonce = (query.get(key, "") for key in ("msg_signature", "timestamp", "nonce"))
        if not self._receiving:
            return web.Response(status=503)
        if not stamp.isdigit() or abs(self._clock.now().timestamp() - int(stamp)) > REPLAY_WINDOW.total_seconds():
            log.warning("wecom: refused a callback whose timestamp is not within %s of now", REPLAY_WINDOW)
            return web.Response(status=403)
        try:
            if request.method == "GET":  # URL verification: the decrypted echostr proves we hold the key
                return web.Response(text=self._crypto.check_signature(signature, stamp, nonce, query.get("echostr")))
            plain = self._crypto.decrypt_message(await request.read(), signature, stamp, nonce)
            # The decrypted XML is flat and signed; wechatpy's parser knows no template_card_event: read it as is.
            fields = {child.tag: (child.text or "") for child in ElementTree.fromstring(plain)}  # noqa: S314
        except (InvalidSignatureException, InvalidCorpIdException):
            log.warning("wecom: refused a callback with a bad signature or for another company")
            return web.Response(status=403)
        except Exception as exc:  # not WeCom's XML at all: checked before the signature, so anyone can send it
            log.warning("wecom: refused a malformed callback: %s", type(exc).__name__)
            return web.Response(status=400)
        if f"{stamp}:{nonce}" in self._nonces:
            log.warning("wecom: a callback was replayed (timestamp %s, same nonce); dropped", stamp)
            return web.Response(text="")
        self._nonces[f"{stamp}:{nonce}"] = True
        inbound = self._inbound(fields)
        if inbound is not None and inbound.event_id and self.first_time(inbound.event_id):
            self.spawn(self._converse(inbound))
        return web.Response(text="")

    def _inbound(self, fields: Mapping[str, str]) -> Inbound | None:
        user, kind = fields.get("FromUserName", ""), fields.get("MsgType", "")
        if not user or fields.get("AgentID") != str(self._settings.agent_id):
            return None
        team = self._settings.corp_id
        if kind != "event":  # a message: text, or a picture, voice or file, which is answered as saying nothing
            text = fields.get("Content", "") if kind == "text" else ""
            return Inbound(
                CHANNEL,
                user,
                InboundKind.TEXT,
                text=text,
                team_id=team,
                event_id=f"msg:{fields.get('MsgId') or user + fields.get('CreateTime', '')}",
            )
        event, key = fields.get("Event", "").lower(), fields.get("EventKey", "")
        event_id = f"event:{user}:{fields.get('CreateTime')}:{event}:{key}:{fields.get('TaskId', '')}"
        if event == "click" and key in COMMANDS:
            return Inbound(CHANNEL, user, InboundKind.COMMAND, command=key, team_id=team, event_id=event_id)
        if event != "template_card_event":
            return None  # entering the app, joining its visible range, a location: nothing to answer
        task = fields.get("TaskId", "")
        request_id = request_of_task(task)
        if request_id is not None and fields.get("ResponseCode"):
            self._click_codes[request_id] = fields["ResponseCode"]  # one more update of that card
        on_card = task.startswith(CARD_TASK)
        return Inbound(
            CHANNEL, user, InboundKind.BUTTON, button=key, team_id=team, event_id=event_id, from_card=on_card
        )

    async def _converse(self, inbound: Inbound) -> None:
        user = inbound.user_id

        async def email() -> str | None:
            try:
                return company_email(await self._api.call("user/get", params={"userid": user}))
            except WeComError as exc:  # outside the app's visible range, say
                log.info("wecom: user/get refused for %s: %s", user, exc)
                return None

        async with self.people[user]:
            await self.link_by_email(inbound.team_id, user, email)
            await self._send(user, await self.engine.handle(inbound))
        if user in self._settings.admin_users:
            await self.update_cards()  # a decision taken just now shows on the admins' cards at once

    # ---- sending --------------------------------------------------------------------------------

    async def send_unprompted(self, user_id: str, replies: list[Rendered]) -> None:
        await self._send(user_id, replies)

    async def _send(self, user_id: str, replies: Sequence[Rendered]) -> None:
        for reply in replies:
            if reply.image is not None:
                sent = await self._post(user_id, await self._image(reply.image, protected=reply.secret_input))
                if reply.secret_input:
                    self._qr_codes[user_id] = [*self._qr_codes.get(user_id, []), str(sent.get("msgid", ""))]
            for message in reply_messages(reply, self.label("wecom_choose", reply.locale)):
                await self._post(user_id, message)
        if replies and not any(reply.secret_input for reply in replies):
            # Enrolment is over: recall the QR code (its secret) from the chat.
            for msgid in self._qr_codes.pop(user_id, []):
                try:
                    await self._api.call("message/recall", body={"msgid": msgid})
                except WeComError as exc:
                    log.info("wecom: could not recall a QR code: %s", exc)

    async def _post(self, to: str, message: Json) -> Json:
        body = {"touser": to, "agentid": self._settings.agent_id, **message}
        answer = await self._api.call("message/send", body=body)
        if answer.get("invaliduser"):
            log.warning("wecom: not delivered to %s (outside the app's visible range?)", answer["invaliduser"])
        return answer

    async def _image(self, image: Image, *, protected: bool) -> Json:
        media = (image.name, image.png, "image/png")
        uploaded = await self._api.call("media/upload", params={"type": "image"}, files={"media": media})
        return image_message(str(uploaded["media_id"]), protected=protected)

    # ---- request cards --------------------------------------------------------------------------

    @property
    def card_destination(self) -> str:
        users = "|".join(self._settings.admin_users)
        return users if len(users) <= 128 else "admins:" + hashlib.sha256(users.encode()).hexdigest()[:24]

    async def post_card(self, destination: str, request_id: int, card: Rendered) -> str:
        to = "|".join(self._settings.admin_users)
        task = task_id(CARD_TASK, request_id)
        lead, template = request_card(card, task, self.label("wecom_decided", None))
        for message in text_messages(lead):  # the evidence the card cannot hold
            await self._post(to, message)
        answer = await self._post(to, {"msgtype": "template_card", "template_card": template})
        ref = f"{task}:{answer.get('response_code', '')}"
        return ref if len(ref) <= 128 else f"{task}:"  # a code too long to keep: clicks bring fresh ones

    async def redraw_card(self, destination: str, message_ref: str, request_id: int, card: Rendered) -> None:
        task, _, sent_code = message_ref.partition(":")
        _, template = request_card(card, task, self.label("wecom_decided", None))
        body = {"atall": 1, "agentid": self._settings.agent_id, "template_card": template}
        # A response code works once: the newest a click brought, else the one sending the card did.
        for code in (self._click_codes.get(request_id, ""), sent_code):
            if not code or code in self._spent:
                continue
            try:
                await self._api.call("message/update_template_card", body={**body, "response_code": code})
            except WeComError as exc:
                if self.worth_retrying(exc):
                    raise
                self._spent[code] = True  # used already, or past its 72 hours
                log.warning("wecom: could not update the card of request %s: %s", request_id, exc)
                continue
            self._spent[code] = True
            return
        log.info("wecom: no response code left to update the card of request %s", request_id)

    async def post_to_admins(self, destination: str, post: Rendered) -> None:
        # An app has no group of its own: the admins get it each in their chat with the app, as the cards.
        to = "|".join(self._settings.admin_users)
        for message in text_messages(post.text):
            await self._post(to, message)
        if post.image is not None:
            await self._post(to, await self._image(post.image, protected=False))
