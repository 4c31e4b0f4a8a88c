"""A fake WeCom (企业微信) server API on 127.0.0.1, and what WeCom sends to an app: encrypted, signed callbacks.

``FakeWeCom`` serves the calls the WeCom channel makes under ``/cgi-bin/`` (gettoken, message/send,
message/update_template_card, message/recall, media/upload, user/get, menu/create) with WeCom's JSON shapes and
error codes, checks the access token on each, records every call, and keeps each member's chat with the app as
WeCom would show it: texts, images and template cards, a card updated in place for everyone it went to. It is
stricter than WeCom where that catches our mistakes: a text over 2048 bytes is refused, not cut.

``WeComSender`` does what WeCom does to the app's callback URL: it writes the message or event as XML, has
wechatpy's ``WeChatCrypto`` encrypt it with the EncodingAESKey and sign it with the Token, and posts it with
``msg_signature``, ``timestamp`` and ``nonce``; or it verifies the URL with a signed GET.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode
from xml.etree import ElementTree

import aiohttp
from aiohttp import web
from wechatpy.enterprise.crypto import WeChatCrypto

CORP_ID = "ww0a1b2c3d4e5f6a7b"
AGENT_ID = 1000002
SECRET = "fake-wecom-app-secret-0123456789abcdefghijk"
TOKEN = "fakeCallbackToken42"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as the console makes them
TEXT_BYTES = 2048

Json = dict[str, Any]

ERRORS = {
    40001: "invalid credential",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40056: "invalid agentid",
    40058: "invalid Request Parameter",
    41001: "access_token missing",
    60111: "userid not found",
    81013: "user & party & tag all invalid",
}


@dataclass(frozen=True)
class Call:
    """One API call the bot made: its path under /cgi-bin/, query (without the token) and JSON body."""

    path: str
    query: Json
    body: Json
    at: float = field(default_factory=time.monotonic)


@dataclass
class Message:
    """A message the app sent, as it is now; the same object sits in every recipient's chat."""

    msgid: str
    msgtype: str
    body: Json  # what was sent under the message type: {"content": ...}, {"media_id": ...}, or the card
    safe: int = 0
    recalled: bool = False
    response_code: str = ""

    @property
    def text(self) -> str:
        """What a person reads: a text's content, or a card's title and subtitle."""
        if self.msgtype == "text":
            return str(self.body["content"])
        if self.msgtype == "template_card":
            return "\n".join(filter(None, (self.body["main_title"].get("title"), self.body.get("sub_title_text"))))
        return ""

    @property
    def buttons(self) -> list[Json]:
        if self.msgtype != "template_card" or "replace_text" in self.body:
            return []  # a card with replace_text shows one grey button nobody can press
        return list(self.body.get("button_list", []))

    @property
    def labels(self) -> list[str]:
        return [button["text"] for button in self.buttons]


class FakeWeCom:
    """The server API under ``/cgi-bin/``; a test adds members and reads their chats."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.members: dict[str, Json] = {}
        self.chats: dict[str, list[Message]] = {}
        self.media: dict[str, bytes] = {}
        self.menu: Json = {}
        self.tokens: set[str] = set()
        self.fail: list[tuple[str, int]] = []  # (path, errcode): the next call to path answers that error
        self._codes: dict[str, Message] = {}  # unused response codes, and the card each updates
        self._tasks: set[str] = set()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        server = web.Application()
        server.router.add_route("*", "/cgi-bin/{path:.+}", self._api)
        self._runner = web.AppRunner(server, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- what a test sets up and reads --------------------------------------------------------

    def add_member(self, userid: str, name: str, *, email: str = "", biz_mail: str = "", status: int = 1) -> None:
        """A member of the company in the app's visible range; ``status`` 1 is active, 2 disabled, 5 left."""
        self.members[userid] = {
            "userid": userid,
            "name": name,
            "department": [1],
            "status": status,
            "email": email,
            "biz_mail": biz_mail,
        }

    def calls_to(self, path: str) -> list[Call]:
        return [call for call in self.calls if call.path == path]

    def chat(self, userid: str) -> list[Message]:
        """The app's messages to a member, oldest first, as they are now (recalled ones included)."""
        return self.chats.get(userid, [])

    def click_code(self, card: Message) -> str:
        """The response code WeCom puts in the callback of a click on ``card``: good for one update of it."""
        code = f"click-{secrets.token_hex(8)}"
        self._codes[code] = card
        return code

    async def wait_for(self, condition: Callable[[], object], within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError("the fake WeCom never saw what the test waited for")
            await asyncio.sleep(0.01)

    # ---- the API ------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        query = dict(request.query)
        body: Json = {}
        if request.content_type == "application/json":
            body = await request.json()
        elif request.content_type == "multipart/form-data":
            form = await request.post()
            upload = form["media"]
            assert isinstance(upload, web.FileField)
            body = {"filename": upload.filename, "bytes": upload.file.read()}
        token = query.pop("access_token", None)
        self.calls.append(Call(path, query, body))
        if path == "gettoken":
            return self._gettoken(query)
        if token is None:
            return _error(41001)
        if token not in self.tokens:
            return _error(40014)
        for number, (failing, errcode) in enumerate(self.fail):
            if failing == path:
                del self.fail[number]
                return _error(errcode)
        answer = getattr(self, "_" + path.replace("/", "_"), None)
        if answer is None:
            return web.json_response({"errcode": 404, "errmsg": "no such API in the fake"}, status=404)
        result: Json | int = answer(query, body)
        if isinstance(result, int):
            return _error(result)
        return web.json_response({"errcode": 0, "errmsg": "ok", **result})

    def _gettoken(self, query: Mapping[str, str]) -> web.Response:
        if query.get("corpid") != CORP_ID:
            return _error(40013)
        if query.get("corpsecret") != SECRET:
            return _error(40001)
        token = f"fake-access-token-{next(self._ids)}-{secrets.token_hex(8)}"
        self.tokens.add(token)
        return web.json_response({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200})

    def expire_tokens(self) -> None:
        self.tokens.clear()

    def _message_send(self, query: Json, body: Json) -> Json | int:
        if body.get("agentid") != AGENT_ID:
            return 40056
        wanted = [user for user in str(body.get("touser", "")).split("|") if user]
        reached = [user for user in wanted if user in self.members]
        if not reached:
            return 81013
        kind = body.get("msgtype", "")
        content = body.get(kind)
        if not isinstance(content, dict):
            return 40058
        message = Message(f"msg-{next(self._ids)}", kind, content, safe=int(body.get("safe", 0)))
        if kind == "text" and len(str(content.get("content", "")).encode()) > TEXT_BYTES:
            return 40058
        if kind == "image" and content.get("media_id") not in self.media:
            return 40058
        if kind == "template_card":
            if not self._fair_card(content) or content["task_id"] in self._tasks:
                return 40058
            self._tasks.add(content["task_id"])
            message.response_code = f"send-{secrets.token_hex(8)}"
            self._codes[message.response_code] = message
        for user in reached:
            self.chats.setdefault(user, []).append(message)
        answer: Json = {"invaliduser": "|".join(u for u in wanted if u not in reached), "msgid": message.msgid}
        if message.response_code:
            answer["response_code"] = message.response_code
        return answer

    @staticmethod
    def _fair_card(card: Json) -> bool:
        buttons = card.get("button_list") or []
        keys = [button.get("key") for button in buttons]
        return (
            card.get("card_type") == "button_interaction"
            and bool(card.get("task_id"))
            and bool((card.get("main_title") or {}).get("title"))
            and 0 < len(buttons) <= 6
            and len(set(keys)) == len(keys)
            and all(isinstance(key, str) and 0 < len(key.encode()) <= 1024 for key in keys)
        )

    def _message_update_template_card(self, query: Json, body: Json) -> Json | int:
        card = self._codes.pop(str(body.get("response_code", "")), None)
        if card is None or body.get("agentid") != AGENT_ID:
            return 40058  # unknown, used or expired code
        template = body.get("template_card") or {}
        if not self._fair_card(template) or template["task_id"] != card.body["task_id"]:
            return 40058
        card.body = template
        return {"invaliduser": []}

    def _message_recall(self, query: Json, body: Json) -> Json | int:
        for chat in self.chats.values():
            for message in chat:
                if message.msgid == body.get("msgid"):
                    message.recalled = True
                    return {}
        return 40058

    def _media_upload(self, query: Json, body: Json) -> Json | int:
        if query.get("type") != "image" or "bytes" not in body:
            return 40058
        media_id = f"media-{next(self._ids)}"
        self.media[media_id] = body["bytes"]
        return {"type": "image", "media_id": media_id, "created_at": str(int(time.time()))}

    def _user_get(self, query: Json, body: Json) -> Json | int:
        member = self.members.get(str(query.get("userid")))
        return 60111 if member is None else dict(member)

    def _menu_create(self, query: Json, body: Json) -> Json | int:
        if query.get("agentid") != str(AGENT_ID):
            return 40056
        self.menu = body
        return {}


def _error(errcode: int) -> web.Response:
    return web.json_response({"errcode": errcode, "errmsg": ERRORS.get(errcode, "error")})


# ---- what WeCom sends to the app ------------------------------------------------------------------

_msg_ids = itertools.count(7_000_000_000_000_000_001)


def _xml(fields: Mapping[str, object]) -> str:
    inner = "".join(
        f"<{key}>{value}</{key}>" if isinstance(value, int) else f"<{key}><![CDATA[{value}]]></{key}>"
        for key, value in fields.items()
    )
    return f"<xml>{inner}</xml>"


def text_xml(user: str, content: str, *, created: int, msg_id: int | None = None) -> str:
    """A member writes to the app."""
    return _xml(
        {
            "ToUserName": CORP_ID,
            "FromUserName": user,
            "CreateTime": created,
            "MsgType": "text",
            "Content": content,
            "MsgId": msg_id if msg_id is not None else next(_msg_ids),
            "AgentID": AGENT_ID,
        }
    )


def event_xml(user: str, event: str, *, created: int, **fields: object) -> str:
    """An event: ``click`` on the app's menu (``EventKey``), ``template_card_event`` on a card's button."""
    head = {"ToUserName": CORP_ID, "FromUserName": user, "CreateTime": created, "MsgType": "event", "Event": event}
    return _xml({**head, **fields, "AgentID": AGENT_ID})


@dataclass
class Answer:
    """The app's HTTP answer to one callback, and the callback itself (to send it again)."""

    status: int
    body: str
    query: dict[str, str]
    data: bytes


class WeComSender:
    """Posts callbacks to the app's URL as WeCom does: encrypted, signed, at ``now()`` (Unix seconds)."""

    def __init__(self, url: str, *, now: Callable[[], int] = lambda: int(time.time())) -> None:
        self.url = url
        self.now = now

    async def text(self, user: str, content: str, **kwargs: Any) -> Answer:
        msg_id = kwargs.pop("msg_id", None)
        return await self.post(text_xml(user, content, created=self.now(), msg_id=msg_id), **kwargs)

    async def click(self, user: str, key: str, **kwargs: Any) -> Answer:
        """A member picks an item of the app's menu."""
        return await self.post(event_xml(user, "click", created=self.now(), EventKey=key), **kwargs)

    async def press(self, user: str, card: Message, key: str, *, response_code: str = "", **kwargs: Any) -> Answer:
        """A member presses the button ``key`` on a template card."""
        event = event_xml(
            user,
            "template_card_event",
            created=self.now(),
            EventKey=key,
            TaskId=card.body["task_id"],
            CardType=card.body["card_type"],
            ResponseCode=response_code or "none",
        )
        return await self.post(event, **kwargs)

    async def post(
        self,
        plain: str,
        *,
        timestamp: int | None = None,
        token: str = TOKEN,
        corp_id: str = CORP_ID,
        signature: str | None = None,
    ) -> Answer:
        stamp, nonce = str(self.now() if timestamp is None else timestamp), secrets.token_hex(5)
        # wechatpy encrypts and signs exactly as WeCom does; we take its envelope apart into WeCom's request.
        sealed = WeChatCrypto(token, AES_KEY, corp_id).encrypt_message(plain, nonce, stamp)
        envelope = ElementTree.fromstring(sealed)  # noqa: S314 (wechatpy's own output)
        encrypted, signed = envelope.findtext("Encrypt", ""), envelope.findtext("MsgSignature", "")
        query = {"msg_signature": signature or signed, "timestamp": stamp, "nonce": nonce}
        body = _xml({"ToUserName": CORP_ID, "AgentID": str(AGENT_ID), "Encrypt": encrypted}).encode()
        return await self.send(query, body)

    async def send(self, query: dict[str, str], data: bytes, *, method: str = "POST") -> Answer:
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                method, f"{self.url}?{urlencode(query)}", data=data or None, headers={"Content-Type": "text/xml"}
            ) as response,
        ):
            return Answer(response.status, await response.text(), query, data)

    async def verify_url(self, echo: str, *, token: str = TOKEN) -> Answer:
        """WeCom checking the URL when an admin saves it: the answer must be ``echo``, decrypted."""
        stamp, nonce = str(self.now()), secrets.token_hex(5)
        sealed = WeChatCrypto(token, AES_KEY, CORP_ID).encrypt_message(echo, nonce, stamp)
        envelope = ElementTree.fromstring(sealed)  # noqa: S314 (wechatpy's own output)
        query = {
            "msg_signature": envelope.findtext("MsgSignature", ""),
            "timestamp": stamp,
            "nonce": nonce,
            "echostr": envelope.findtext("Encrypt", ""),
        }
        return await self.send(query, b"", method="GET")
