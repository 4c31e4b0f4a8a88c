"""A fake DingTalk on 127.0.0.1: the open API and oapi calls the DingTalk channel makes, and the Stream gateway.

``FakeDingTalk`` records every call (path, body, token) and answers the way DingTalk does for the people
a test adds: an access token for the app's Client ID and Secret, 401 without it, the contact API's user
details, media uploads. It keeps each chat as the people in it see it: a person's private chat with the
robot (keyed by their user id) and each group (keyed by its openConversationId), holding texts, images
and cards, a card as it is after its last update. The Stream gateway hands out a ticket for the
websocket at ``/connect``; ``push`` sends a callback frame over it and returns the app's
acknowledgement, ``ping`` and ``disconnect`` send the system frames.

``DingTalkSender`` posts to the app's callback URL what DingTalk's robot posts in http mode, with the
``timestamp`` and ``sign`` headers. ``message`` and ``press`` build the robot message and the card
callback payloads, with the fields DingTalk documents.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

CLIENT_ID = "dingunlockbotfake01"
CLIENT_SECRET = "fake-dingtalk-app-secret_0123456789"
CORP = "dingcorp0fake"
ADMIN_GROUP = "cidADMINS0fakeGroup=="
CHATBOT_TOPIC = "/v1.0/im/bot/messages/get"
CARD_TOPIC = "/v1.0/card/instances/callback"

Json = dict[str, Any]


@dataclass(frozen=True)
class Call:
    """One API call the bot made."""

    method: str
    path: str
    body: Json
    token: str
    at: float = field(default_factory=time.monotonic)


@dataclass
class Posted:
    """What the robot put in a chat: a text, an image, or a card (as it is now)."""

    kind: str  # "text", "image" or "card"
    text: str = ""
    card_id: str = ""
    title: str = ""
    buttons: list[tuple[str, str]] = field(default_factory=list)  # (label, action id)
    png: bytes = b""
    updates: int = 0

    @property
    def labels(self) -> list[str]:
        return [label for label, _ in self.buttons]

    def action(self, label: str) -> str:
        for shown, action in self.buttons:
            if shown.casefold() == label.casefold():
                return action
        raise AssertionError(f"no button {label!r} on {self.text[:60]!r}: {self.labels}")


def _draw(posted: Posted, raw: str) -> None:
    data = json.loads(raw)
    posted.title = data["header"]["title"]["text"]
    posted.text = "\n".join(part["text"] for part in data["contents"] if part["type"] in ("text", "markdown"))
    posted.buttons = [
        (button["label"]["text"], button["id"])
        for part in data["contents"]
        if part["type"] == "action"
        for button in part["actions"]
        if button.get("actionType") == "request"
    ]


class FakeDingTalk:
    """api.dingtalk.com and oapi.dingtalk.com on one port, and the Stream websocket at ``/connect``."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.people: dict[str, Json] = {}
        self.chats: dict[str, list[Posted]] = {}
        self.cards: dict[str, Posted] = {}
        self.media: dict[str, bytes] = {}
        self.acks: dict[str, Json] = {}
        self.connections = 0
        self._token = ""
        self._tickets: set[str] = set()
        self._failures: dict[str, list[tuple[int, Json]]] = {}
        self._ids = itertools.count(1)
        self._socket: web.WebSocketResponse | None = None
        self._connected = asyncio.Event()
        self._acked = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---- running ----------------------------------------------------------------------------

    async def start(self) -> None:
        server = web.Application(client_max_size=4 * 1024 * 1024)
        server.router.add_route("*", "/{path:v1\\.0/.*}", self._api)
        server.router.add_post("/topapi/v2/user/get", self._user_get)
        server.router.add_post("/media/upload", self._media_upload)
        server.router.add_get("/connect", self._connect)
        self._runner = web.AppRunner(server, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- what a test sets up and reads --------------------------------------------------------

    def add_person(self, user_id: str, name: str, *, org_email: str | None = None, active: bool = True) -> None:
        """A member of the organisation; ``org_email=""`` for one without an org mailbox."""
        self.people[user_id] = {
            "userid": user_id,
            "unionid": f"union-{user_id}",
            "name": name.title(),
            "active": active,
            "email": f"{name}@home.example.net",  # what people type themselves: never vouched for
            "org_email": f"{name}@example.com" if org_email is None else org_email,
        }

    def fail_next(self, path: str, status: int, body: Json) -> None:
        """Answer the next call to ``path`` (such as ``/v1.0/robot/oToMessages/batchSend``) with this."""
        self._failures.setdefault(path, []).append((status, body))

    def calls_to(self, path: str) -> list[Call]:
        return [call for call in self.calls if call.path == path]

    def chat(self, where: str) -> list[Posted]:
        """A private chat (a user id) or a group (an openConversationId), oldest first."""
        return self.chats.get(where, [])

    def said(self, where: str) -> str:
        return "\n".join(posted.text for posted in self.chat(where))

    def last_card(self, where: str, label: str | None = None) -> Posted:
        for posted in reversed(self.chat(where)):
            if posted.kind == "card" and (label is None or label.casefold() in map(str.casefold, posted.labels)):
                return posted
        raise AssertionError(f"no card{f' with {label!r}' if label else ''} in {where}: {self.said(where)[-300:]!r}")

    async def wait_for(self, condition: Callable[[], object], within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError("the fake DingTalk never saw what the test waited for")
            await asyncio.sleep(0.01)

    # ---- the open API -------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["path"]
        body = await request.json() if request.can_read_body else {}
        token = request.headers.get("x-acs-dingtalk-access-token", "")
        self.calls.append(Call(request.method, path, body, token))
        if self._failures.get(path):
            status, answer = self._failures[path].pop(0)
            return web.json_response(answer, status=status)
        if path == "/v1.0/oauth2/accessToken":
            return self._access_token(body)
        if path == "/v1.0/gateway/connections/open":
            return self._open_connection(body)
        if not token or token != self._token:
            return web.json_response({"code": "InvalidAuthentication", "message": "不合法的access_token"}, status=401)
        handler = {
            "/v1.0/robot/oToMessages/batchSend": self._batch_send,
            "/v1.0/robot/groupMessages/send": self._group_send,
            "/v1.0/im/v1.0/robot/interactiveCards/send": self._card_send,
            "/v1.0/im/robots/interactiveCards": self._card_update,
            "/v1.0/card/callbacks/register": self._register,
        }.get(path)
        if handler is None:
            return web.json_response({"code": "InvalidAction.NotFound", "message": path}, status=404)
        return handler(body)

    def _access_token(self, body: Json) -> web.Response:
        if (body.get("appKey"), body.get("appSecret")) != (CLIENT_ID, CLIENT_SECRET):
            return web.json_response(
                {"code": "invalidClientIdOrSecret", "message": "无效的clientId或者clientSecret"}, status=400
            )
        self._token = f"token-{next(self._ids)}"
        return web.json_response({"accessToken": self._token, "expireIn": 7200})

    def _open_connection(self, body: Json) -> web.Response:
        if (body.get("clientId"), body.get("clientSecret")) != (CLIENT_ID, CLIENT_SECRET):
            return web.json_response({"code": "invalidClientIdOrSecret", "message": "bad credentials"}, status=400)
        ticket = f"ticket-{next(self._ids)}+/="  # characters that must be escaped in the query
        self._tickets.add(ticket)
        return web.json_response({"endpoint": f"ws://127.0.0.1:{self.port}/connect", "ticket": ticket})

    def _robot(self, body: Json) -> web.Response | None:
        if body.get("robotCode") != CLIENT_ID:
            return web.json_response({"code": "robot.notExist", "message": "机器人不存在"}, status=400)
        return None

    def _message(self, body: Json) -> Posted:
        param = json.loads(body["msgParam"])
        if body["msgKey"] == "sampleText":
            return Posted("text", text=param["content"])
        if body["msgKey"] == "sampleImageMsg":
            return Posted("image", png=self.media[param["photoURL"]])
        raise AssertionError(f"the fake does not draw {body['msgKey']}")

    def _batch_send(self, body: Json) -> web.Response:
        refused = self._robot(body)
        if refused is not None:
            return refused
        unknown = [user for user in body["userIds"] if user not in self.people]
        for user in body["userIds"]:
            if user not in unknown:
                self.chats.setdefault(user, []).append(self._message(body))
        return web.json_response(
            {"processQueryKey": f"q{next(self._ids)}", "invalidStaffIdList": unknown, "flowControlledStaffIdList": []}
        )

    def _group_send(self, body: Json) -> web.Response:
        refused = self._robot(body)
        if refused is not None:
            return refused
        self.chats.setdefault(body["openConversationId"], []).append(self._message(body))
        return web.json_response({"processQueryKey": f"q{next(self._ids)}"})

    def _card_send(self, body: Json) -> web.Response:
        refused = self._robot(body)
        if refused is not None:
            return refused
        if body.get("cardTemplateId") != "StandardCard" or body["cardBizId"] in self.cards:
            return web.json_response({"code": "param.invalid", "message": "cardTemplateId or cardBizId"}, status=400)
        if "openConversationId" in body:
            where = body["openConversationId"]
        else:
            where = json.loads(body["singleChatReceiver"])["userId"]
        card = Posted("card", card_id=body["cardBizId"])
        _draw(card, body["cardData"])
        self.cards[card.card_id] = card
        self.chats.setdefault(where, []).append(card)
        return web.json_response({"processQueryKey": f"q{next(self._ids)}"})

    def _card_update(self, body: Json) -> web.Response:
        card = self.cards.get(body.get("cardBizId", ""))
        if card is None:
            return web.json_response({"code": "param.cardBizIdNotExist", "message": "卡片不存在"}, status=400)
        _draw(card, body["cardData"])
        card.updates += 1
        return web.json_response({"success": True, "result": True})

    def _register(self, body: Json) -> web.Response:
        return web.json_response({"success": True, "result": {"callbackUrl": body["callbackUrl"]}})

    # ---- the older server API (oapi) ----------------------------------------------------------

    def _oapi_call(self, request: web.Request, body: Json) -> web.Response | None:
        token = request.query.get("access_token", "")
        self.calls.append(Call(request.method, request.path, body, token))
        if not token or token != self._token:
            return web.json_response({"errcode": 40014, "errmsg": "不合法的access_token"})
        return None

    async def _user_get(self, request: web.Request) -> web.Response:
        body = await request.json()
        refused = self._oapi_call(request, body)
        if refused is not None:
            return refused
        person = self.people.get(body.get("userid", ""))
        if person is None:
            return web.json_response({"errcode": 60121, "errmsg": "找不到该用户"})
        return web.json_response({"errcode": 0, "errmsg": "ok", "result": person, "request_id": "r1"})

    async def _media_upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("media")
        refused = self._oapi_call(request, {"type": request.query.get("type", "")})
        if refused is not None:
            return refused
        assert isinstance(upload, web.FileField)
        media_id = f"@lADP{next(self._ids):08d}"
        self.media[media_id] = upload.file.read()
        return web.json_response({"errcode": 0, "errmsg": "ok", "type": "image", "media_id": media_id})

    # ---- the Stream gateway -------------------------------------------------------------------

    async def _connect(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.Response(status=401, text="unknown ticket")
        self._tickets.discard(ticket)  # one connection per ticket
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        self._socket = socket
        self.connections += 1
        self._connected.set()
        async for message in socket:
            if message.type is aiohttp.WSMsgType.TEXT:
                ack = json.loads(message.data)
                async with self._acked:
                    self.acks[ack["headers"]["messageId"]] = ack
                    self._acked.notify_all()
        if self._socket is socket:
            self._connected.clear()
        return socket

    async def _frame(self, kind: str, topic: str, data: Json, message_id: str | None = None) -> Json:
        await asyncio.wait_for(self._connected.wait(), timeout=10)
        assert self._socket is not None
        message_id = message_id or f"stream-{next(self._ids)}"
        frame = {
            "specVersion": "1.0",
            "type": kind,
            "headers": {
                "appId": "app-fake",
                "connectionId": "connection-fake",
                "contentType": "application/json",
                "messageId": message_id,
                "time": str(int(time.time() * 1000)),
                "topic": topic,
            },
            "data": json.dumps(data, ensure_ascii=False),
        }
        await self._socket.send_json(frame)
        if topic == "disconnect":
            return {}
        async with self._acked:
            await asyncio.wait_for(self._acked.wait_for(lambda: message_id in self.acks), timeout=10)
        return self.acks.pop(message_id)

    async def push(self, topic: str, data: Json, *, message_id: str | None = None) -> Json:
        """A callback over the Stream connection (a robot message or a card press); the app's acknowledgement."""
        return await self._frame("CALLBACK", topic, data, message_id)

    async def ping(self) -> Json:
        return await self._frame("SYSTEM", "ping", {"opaque": f"opaque-{next(self._ids)}"})

    async def disconnect(self) -> None:
        """DingTalk's notice that it closes this connection: the app is to open a new one."""
        await self._frame("SYSTEM", "disconnect", {"reason": "server restarting"})


# ---- what DingTalk sends to the app -----------------------------------------------------------

_message_ids = itertools.count(1)


def message(user: str, text: str, *, group: str = "", message_id: str | None = None) -> Json:
    """A person writes to the robot: in its private chat, or @-mentioning it in ``group``."""
    now = int(time.time() * 1000)
    body: Json = {
        "msgtype": "text",
        "text": {"content": f" {text}" if group else text},  # DingTalk leaves a space where the @ was
        "msgId": message_id or f"msg{next(_message_ids):08d}",
        "createAt": now,
        "conversationType": "2" if group else "1",
        "conversationId": group or f"cidPRIVATE{user}==",
        "senderId": f"$:LWCP_v1:${user}",
        "senderNick": user.title(),
        "senderCorpId": CORP,
        "senderStaffId": user,
        "chatbotCorpId": CORP,
        "chatbotUserId": "$:LWCP_v1:$robot",
        "robotCode": CLIENT_ID,
        "isAdmin": False,
        "sessionWebhook": "http://127.0.0.1:9/robot/sendBySession?session=unused",
        "sessionWebhookExpiredTime": now + 5_400_000,
    }
    if group:
        body.update({"isInAtList": True, "conversationTitle": "CRM admins", "atUsers": [{"dingtalkId": "$robot"}]})
    return body


def press(user: str, card: Posted, label: str) -> Json:
    """A person presses a button on a card the robot sent (the card callback)."""
    content = {"cardPrivateData": {"actionIds": [card.action(label)], "params": {}}}
    return {
        "type": "actionCallback",
        "outTrackId": card.card_id,
        "corpId": CORP,
        "userId": user,
        "content": json.dumps(content),
        "extension": "{}",
    }


def sign(timestamp: str, secret: str) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


@dataclass
class Sent:
    status: int
    body: str


class DingTalkSender:
    """Posts to the app's callback URL as DingTalk does: ``timestamp`` (ms) and ``sign`` headers."""

    def __init__(self, url: str, secret: str = CLIENT_SECRET) -> None:
        self.url = url
        self.secret = secret

    async def post(
        self,
        body: Json,
        *,
        timestamp: int | None = None,
        secret: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Sent:
        stamp = str(int(time.time() * 1000) if timestamp is None else timestamp)
        sent_headers = {"timestamp": stamp, "sign": sign(stamp, secret or self.secret)} if headers is None else headers
        raw = json.dumps(body, ensure_ascii=False).encode()
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.url, data=raw, headers={"Content-Type": "application/json", **sent_headers}) as answer,
        ):
            return Sent(answer.status, await answer.text())
