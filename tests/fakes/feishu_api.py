"""A fake Feishu open platform on 127.0.0.1, for lark-oapi to talk to over real HTTP and a real websocket.

``FakeFeishu`` serves the calls the Feishu channel makes under ``/open-apis``: the tenant token, sending and
patching messages, uploading an image and reading a user from the contact API. Each call is recorded with
the token it came with, and calls without a token the fake issued are refused as Feishu refuses them. It
also serves the long connection: ``/callback/ws/endpoint`` hands out a websocket URL, and ``push`` sends an
event down that websocket as the protobuf frame lark-oapi decodes, then returns the app's acknowledgement.

``FeishuSender`` posts an event the way Feishu posts to a webhook: the JSON encrypted with the encrypt key
(AES-256-CBC under its SHA-256, as ``{"encrypt": ...}``) and signed, ``X-Lark-Signature`` being the SHA-256
of timestamp, nonce, encrypt key and body. The builders below make the events Feishu documents.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from lark_oapi.ws.pb.pbbp2_pb2 import Frame

APP_ID = "cli_fakeunlockbot01"
APP_SECRET = "fake-app-secret-0123456789"
VERIFICATION_TOKEN = "fake-verification-token"
ENCRYPT_KEY = "fake-encrypt-key-for-tests"
TENANT = "tenant-unlock-01"
ADMIN_CHAT = "oc_admins01"
SERVICE_ID = "7"

Json = dict[str, Any]


@dataclass(frozen=True)
class Call:
    """One API call the bot made: what (``token``, ``send``, ``patch``, ``image``, ``user``, ``endpoint``)."""

    kind: str
    path: str
    query: Json
    body: Json
    token: str


@dataclass
class Message:
    """A message the bot sent, as it is now."""

    message_id: str
    chat_id: str
    msg_type: str
    content: Json
    edits: int = 0


@dataclass
class Person:
    open_id: str
    name: str
    enterprise_email: str | None
    status: Json = field(default_factory=dict)


def p2p_of(open_id: str) -> str:
    """The chat id of the bot's private chat with a person."""
    return "oc_p2p" + open_id.removeprefix("ou_")


class FakeFeishu:
    """The open platform under ``/open-apis``, the long connection's endpoint call and its websocket."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.people: dict[str, Person] = {}
        self.messages: dict[str, Message] = {}
        self.images: dict[str, bytes] = {}
        self.tokens: set[str] = set()
        self.acks: dict[str, asyncio.Future[Json]] = {}
        self.pings = 0
        self._failures: dict[str, list[web.Response]] = {}
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._socket: web.WebSocketResponse | None = None
        self._connected = asyncio.Event()
        self.port = 0

    async def start(self) -> None:
        server = web.Application()
        server.router.add_post("/open-apis/auth/v3/tenant_access_token/internal", self._token)
        server.router.add_post("/open-apis/im/v1/messages", self._send)
        server.router.add_patch("/open-apis/im/v1/messages/{message_id}", self._patch)
        server.router.add_post("/open-apis/im/v1/images", self._image)
        server.router.add_get("/open-apis/contact/v3/users/{user_id}", self._user)
        server.router.add_post("/callback/ws/endpoint", self._endpoint)
        server.router.add_get("/ws", self._ws)
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
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- what a test sets up and reads --------------------------------------------------------

    def add_person(self, open_id: str, name: str, *, mailbox: bool = True, **status: bool) -> None:
        """A member of the tenant; ``status`` such as ``is_resigned=True`` overrides an active member's."""
        flags = {"is_activated": True, "is_frozen": False, "is_resigned": False, "is_exited": False, **status}
        self.people[open_id] = Person(open_id, name, f"{name}@example.com" if mailbox else None, flags)

    def fail_next(self, kind: str, code: int, *, status: int = 400, msg: str = "refused") -> None:
        """Answer the next call of ``kind`` with Feishu's error ``code``."""
        self._failures.setdefault(kind, []).append(_error(code, msg, status))

    def break_next(self, kind: str) -> None:
        """Answer the next call of ``kind`` as a proxy in front of Feishu does when Feishu is down."""
        page = web.Response(status=502, text="<html><body>502 Bad Gateway</body></html>", content_type="text/html")
        self._failures.setdefault(kind, []).append(page)

    def calls_to(self, kind: str) -> list[Call]:
        return [call for call in self.calls if call.kind == kind]

    def chat(self, chat_id: str) -> list[Message]:
        """Messages the bot sent to a chat, oldest first, as they are now."""
        return [message for message in self.messages.values() if message.chat_id == chat_id]

    async def wait_for(self, condition: Callable[[], object], what: str = "the awaited state") -> None:
        """Until ``condition`` holds; the deadline only keeps a broken test from hanging."""
        deadline = time.monotonic() + 10
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"the fake Feishu never saw {what}")
            await asyncio.sleep(0.01)

    # ---- the open platform --------------------------------------------------------------------

    async def _record(self, kind: str, request: web.Request, body: Json | None = None) -> web.Response | None:
        """Record the call; an error answer when its token is not one the fake issued, or a failure is due."""
        if body is None:
            body = await request.json() if request.can_read_body else {}
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ")
        self.calls.append(Call(kind, request.path, dict(request.query), body, token))
        if kind not in ("token", "endpoint") and token not in self.tokens:
            return _error(
                99991663, "Invalid access token for authorization. Please make a request with token attached."
            )
        if self._failures.get(kind):
            return self._failures[kind].pop(0)
        return None

    async def _token(self, request: web.Request) -> web.Response:
        body = await request.json()
        if refused := await self._record("token", request, body):
            return refused
        if (body.get("app_id"), body.get("app_secret")) != (APP_ID, APP_SECRET):
            return _error(10014, "app secret invalid")
        token = f"t-fake-{next(self._ids)}"
        self.tokens.add(token)
        return web.json_response({"code": 0, "msg": "ok", "tenant_access_token": token, "expire": 7200})

    def revoke_tokens(self) -> None:
        """Every token issued so far stops working, as after Feishu rotated them."""
        self.tokens.clear()

    async def _send(self, request: web.Request) -> web.Response:
        body = await request.json()
        if refused := await self._record("send", request, body):
            return refused
        kind = request.query.get("receive_id_type")
        receiver = str(body["receive_id"])
        if kind == "open_id" and receiver in self.people:
            chat_id = p2p_of(receiver)
        elif kind == "chat_id" and receiver == ADMIN_CHAT:
            chat_id = receiver
        else:
            return _error(230001, "Your request contains an invalid request parameter, ext=invalid receive_id.")
        message = Message(f"om_{next(self._ids)}", chat_id, str(body["msg_type"]), json.loads(body["content"]))
        if message.msg_type == "image" and message.content.get("image_key") not in self.images:
            return _error(230001, "invalid image_key")
        self.messages[message.message_id] = message
        data = {"message_id": message.message_id, "chat_id": chat_id, "msg_type": message.msg_type}
        return web.json_response({"code": 0, "msg": "success", "data": data})

    async def _patch(self, request: web.Request) -> web.Response:
        body = await request.json()
        if refused := await self._record("patch", request, body):
            return refused
        message = self.messages.get(request.match_info["message_id"])
        if message is None or message.msg_type != "interactive":
            return _error(230001, "Your request contains an invalid request parameter.")
        message.content = json.loads(body["content"])
        message.edits += 1
        return web.json_response({"code": 0, "msg": "success", "data": {}})

    async def _image(self, request: web.Request) -> web.Response:
        form = await request.post()
        image = form.get("image")
        if refused := await self._record("image", request, {"image_type": form.get("image_type")}):
            return refused
        if not isinstance(image, web.FileField) or form.get("image_type") != "message":
            return _error(234001, "Invalid request param.")
        key = f"img_v3_fake_{next(self._ids)}"
        self.images[key] = image.file.read()
        return web.json_response({"code": 0, "msg": "success", "data": {"image_key": key}})

    async def _user(self, request: web.Request) -> web.Response:
        if refused := await self._record("user", request, {}):
            return refused
        person = self.people.get(request.match_info["user_id"])
        if person is None or request.query.get("user_id_type") != "open_id":
            return _error(41050, "no user authority error")
        user: Json = {"open_id": person.open_id, "name": person.name, "status": person.status}
        user["email"] = f"{person.name}.personal@example.org"  # typed in by an admin: never trusted
        if person.enterprise_email:
            user["enterprise_email"] = person.enterprise_email
        return web.json_response({"code": 0, "msg": "success", "data": {"user": user}})

    # ---- the long connection --------------------------------------------------------------------

    async def _endpoint(self, request: web.Request) -> web.Response:
        body = await request.json()
        await self._record("endpoint", request, {"AppID": body.get("AppID")})
        if (body.get("AppID"), body.get("AppSecret")) != (APP_ID, APP_SECRET):
            return web.json_response({"code": 10014, "msg": "app secret invalid"})
        url = f"ws://127.0.0.1:{self.port}/ws?device_id=dev-1&service_id={SERVICE_ID}&ticket=fake-ticket"
        config = {"ReconnectCount": -1, "ReconnectInterval": 1, "ReconnectNonce": 0, "PingInterval": 120}
        return web.json_response({"code": 0, "msg": "ok", "data": {"URL": url, "ClientConfig": config}})

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._socket = socket
        self._connected.set()
        async for message in socket:
            if message.type is aiohttp.WSMsgType.BINARY:
                await self._answer(socket, message.data)
        return socket

    async def _answer(self, socket: web.WebSocketResponse, data: bytes) -> None:
        frame = Frame()
        frame.ParseFromString(data)
        headers = {header.key: header.value for header in frame.headers}
        if frame.method == 0 and headers.get("type") == "ping":
            self.pings += 1
            pong = _frame(0, {"type": "pong"}, b"")
            await socket.send_bytes(pong.SerializeToString())
        elif frame.method == 1 and headers.get("message_id") in self.acks:
            self.acks[headers["message_id"]].set_result(json.loads(frame.payload))

    async def push(self, envelope: Json, *, frame_type: str = "event") -> Json:
        """Send an event over the long connection; the app's answer: ``code`` and ``data`` (decoded)."""
        await asyncio.wait_for(self._connected.wait(), timeout=10)
        assert self._socket is not None
        message_id = f"msg-{next(self._ids)}"
        self.acks[message_id] = asyncio.get_running_loop().create_future()
        headers = {"type": frame_type, "message_id": message_id, "trace_id": "trace", "sum": "1", "seq": "0"}
        await self._socket.send_bytes(_frame(1, headers, json.dumps(envelope).encode()).SerializeToString())
        answer = await asyncio.wait_for(self.acks[message_id], timeout=10)
        data = answer.get("data")
        return {"code": answer.get("code"), "data": json.loads(base64.b64decode(data)) if data else None}

    async def drop_connection(self) -> None:
        """Close the websocket from Feishu's side, as when Feishu restarts a gateway."""
        assert self._socket is not None
        self._connected.clear()
        await self._socket.close()


def _frame(method: int, headers: dict[str, str], payload: bytes) -> Any:
    frame = Frame()
    frame.SeqID, frame.LogID, frame.service, frame.method = next(_frame_ids), 0, int(SERVICE_ID), method
    for key, value in headers.items():
        header = frame.headers.add()
        header.key, header.value = key, value
    frame.payload = payload
    return frame


def _error(code: int, msg: str, status: int = 400) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status)


# ---- what Feishu sends to the app -----------------------------------------------------------------

_frame_ids = itertools.count(1)
_event_ids = itertools.count(1)
_message_ids = itertools.count(1)


def envelope(event_type: str, event: Json, *, token: str = VERIFICATION_TOKEN, event_id: str | None = None) -> Json:
    """An event in Feishu's 2.0 schema."""
    header = {
        "event_id": event_id or f"ev-{next(_event_ids):08d}",
        "token": token,
        "create_time": str(int(time.time() * 1000)),
        "event_type": event_type,
        "tenant_key": TENANT,
        "app_id": APP_ID,
    }
    return {"schema": "2.0", "header": header, "event": event}


def message_event(
    open_id: str, text: str, *, chat_id: str | None = None, message_type: str = "text", **kw: Any
) -> Json:
    """A person writes to the bot (``im.message.receive_v1``), in their private chat unless ``chat_id`` says."""
    content = json.dumps({"text": text}) if message_type == "text" else json.dumps({"image_key": "img_x"})
    message = {
        "message_id": f"om_in_{next(_message_ids)}",
        "create_time": str(int(time.time() * 1000)),
        "chat_id": chat_id or p2p_of(open_id),
        "chat_type": "group" if chat_id else "p2p",
        "message_type": message_type,
        "content": content,
    }
    sender = {"sender_id": {"open_id": open_id, "union_id": "on_" + open_id[3:]}, "sender_type": "user"}
    return envelope("im.message.receive_v1", {"sender": {**sender, "tenant_key": TENANT}, "message": message}, **kw)


def menu_event(open_id: str, key: str) -> Json:
    """A person picks an item of the bot's menu (``application.bot.menu_v6``)."""
    operator = {"operator_name": "", "operator_id": {"open_id": open_id}}
    return envelope("application.bot.menu_v6", {"operator": operator, "event_key": key, "timestamp": 1})


def card_action(open_id: str, message: Message, value: Json, *, form: Json | None = None, **kw: Any) -> Json:
    """A person presses a button of a card the bot sent (``card.action.trigger``); ``value`` is the button's."""
    action: Json = {"value": value, "tag": "button"}
    if form is not None:
        action |= {"form_value": form, "name": "send"}
    event = {
        "operator": {"tenant_key": TENANT, "open_id": open_id, "union_id": "on_" + open_id[3:]},
        "token": f"c-{next(_event_ids)}",
        "action": action,
        "host": "im_message",
        "context": {"open_message_id": message.message_id, "open_chat_id": message.chat_id},
    }
    return envelope("card.action.trigger", event, **kw)


def url_verification(challenge: str, token: str = VERIFICATION_TOKEN) -> Json:
    return {"challenge": challenge, "token": token, "type": "url_verification"}


def encrypt(plaintext: bytes, key: str) -> str:
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    iv = os.urandom(16)
    encryptor = Cipher(algorithms.AES(hashlib.sha256(key.encode()).digest()), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + encryptor.update(padded) + encryptor.finalize()).decode()


@dataclass
class Sent:
    """The app's HTTP answer to one request from Feishu."""

    status: int
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


class FeishuSender:
    """Posts events to the app's webhook as Feishu does: encrypted, signed, with a timestamp and a nonce."""

    def __init__(self, url: str, *, now: Callable[[], float] = time.time, key: str = ENCRYPT_KEY) -> None:
        self.url = url
        self.now = now
        self.key = key

    async def send(
        self,
        event: Json,
        *,
        key: str | None = None,
        sign_with: str | None = None,
        timestamp: int | None = None,
        signed: bool = True,
        raw: bytes | None = None,
    ) -> Sent:
        """``key`` encrypts (and signs) instead of the app's; ``sign_with`` signs only; ``raw`` replaces the body."""
        body = raw if raw is not None else json.dumps({"encrypt": encrypt(json.dumps(event).encode(), key or self.key)})
        if isinstance(body, str):
            body = body.encode()
        stamp, nonce = str(int(self.now()) if timestamp is None else timestamp), os.urandom(8).hex()
        headers = {"Content-Type": "application/json"}
        if signed:
            signing_key = sign_with or key or self.key
            signature = hashlib.sha256((stamp + nonce + signing_key).encode() + body).hexdigest()
            headers |= {"X-Lark-Request-Timestamp": stamp, "X-Lark-Request-Nonce": nonce, "X-Lark-Signature": signature}
        async with aiohttp.ClientSession() as session, session.post(self.url, data=body, headers=headers) as response:
            return Sent(response.status, await response.text())
