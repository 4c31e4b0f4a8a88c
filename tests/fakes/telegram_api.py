"""A fake Telegram Bot API server on 127.0.0.1, for the real python-telegram-bot to talk to.

It answers ``/bot<token>/<method>`` in the Bot API's shapes (``{"ok": true,
"result": ...}``; errors with ``error_code``, ``description`` and
``parameters.retry_after``), records every call, and keeps each chat as the
people in it would see it: messages sent, edited and deleted. Tests speak as
Telegram users: ``say`` and ``press`` queue updates for ``getUpdates``, and
``message_update`` / ``press_update`` build the same updates to POST to a
webhook instead. Like the real API, the bot cannot write first to someone who
never opened a private chat with it, and cannot delete other people's
messages in a group unless it has been given the right.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import count
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

BOT_ID = 7_000_001
BOT_USERNAME = "unlock_test_bot"
TOKEN = f"{BOT_ID}:TEST-fake_token_for_tests"
# Parameters PTB sends as raw text; every other parameter arrives JSON-encoded.
_TEXT_PARAMETERS = frozenset(
    {"text", "caption", "callback_query_id", "url", "secret_token", "parse_mode", "filename", "language_code"}
)
_MENTION = re.compile(r"@\w+")
T = TypeVar("T")


@dataclass(frozen=True)
class FakeUser:
    id: int
    first_name: str
    language_code: str | None = "en"

    def as_json(self) -> dict[str, Any]:
        user: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.language_code:
            user["language_code"] = self.language_code
        return user


@dataclass(frozen=True)
class Call:
    method: str
    params: dict[str, Any]
    status: int  # the HTTP status the fake answered with


@dataclass
class ChatMessage:
    """One message in one chat, as the people there see it now."""

    chat_id: int
    message_id: int
    sender_id: int
    text: str = ""
    photo: bytes | None = None
    reply_markup: dict[str, Any] | None = None
    reply_to: int | None = None
    protect_content: bool = False
    parse_mode: str | None = None
    deleted: bool = False
    edits: int = 0

    @property
    def from_bot(self) -> bool:
        return self.sender_id == BOT_ID

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback_data) of every inline button, in order."""
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [(button["text"], button.get("callback_data", "")) for row in rows for button in row]

    @property
    def labels(self) -> list[str]:
        return [label for label, _ in self.buttons]

    def data(self, label: str) -> str:
        for text, data in self.buttons:
            if label.casefold() == text.casefold():
                return data
        raise AssertionError(f"no button {label!r} on message {self.message_id}: {self.labels}")


def _chat_json(chat_id: int, users: dict[int, FakeUser]) -> dict[str, Any]:
    if chat_id > 0:
        user = users.get(chat_id)
        return {"id": chat_id, "type": "private", "first_name": user.first_name if user else "someone"}
    return {"id": chat_id, "type": "supergroup", "title": "CRM admins"}


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _shown(text: str, parse_mode: str | None) -> str:
    """The text as people see it: Telegram's limits count it after markup is parsed."""
    if parse_mode != "HTML":
        return text
    return html.unescape(re.sub(r"<[^>]*>", "", text))


# What counts towards the flood limit: sending messages.
SENDS = frozenset({"sendMessage", "sendPhoto"})


class FakeBotApi:
    """The Bot API for one bot, on a free loopback port."""

    def __init__(self, token: str = TOKEN, *, flood_limit: int | None = None) -> None:
        self.token = token
        # Like Telegram's flood control: more than this many messages sent in any one second are answered 429.
        self.flood_limit = flood_limit
        self._sent_at: deque[float] = deque()
        self.port = 0
        self.calls: list[Call] = []
        self.messages: dict[tuple[int, int], ChatMessage] = {}
        # The bot may delete other people's messages in groups (an admin with the right to delete).
        self.can_delete_in_groups = False
        self._users: dict[int, FakeUser] = {}
        self._started: set[int] = set()  # people who opened a private chat with the bot
        self._updates: list[dict[str, Any]] = []
        self._update_ids = count(10_001)
        self._message_ids = count(1)
        self._query_ids = count(1)
        self._arrived = asyncio.Event()
        self._failures: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self._runner: web.AppRunner | None = None
        # Told of every call once it is answered (a benchmark times replies and counts 429s with it).
        self.on_call: Callable[[Call], object] | None = None

    # -- the server --------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    async def __aenter__(self) -> FakeBotApi:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._dispatch)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._arrived.set()  # let a waiting getUpdates answer
        if self._runner is not None:
            await self._runner.cleanup()

    async def _dispatch(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._params(request)
        if request.match_info["token"] != self.token:
            return self._answer(method, params, self._error(401, "Unauthorized"))
        scripted = self._failures.get(method)
        if scripted:
            status, body = scripted.pop(0)
            return self._answer(method, params, (status, body))
        if self.flood_limit is not None and method in SENDS and self._flooded():
            return self._answer(method, params, self._error(429, "Too Many Requests: retry after 1", retry_after=1))
        handler = getattr(self, "_" + re.sub(r"(?<!^)([A-Z])", r"_\1", method).lower(), None)
        if handler is None:
            return self._answer(method, params, self._error(404, "Not Found: method not found"))
        outcome = await handler(params)
        return self._answer(method, params, outcome if isinstance(outcome, tuple) else (200, self._ok(outcome)))

    def _flooded(self) -> bool:
        now = time.monotonic()
        while self._sent_at and self._sent_at[0] <= now - 1:
            self._sent_at.popleft()
        if len(self._sent_at) >= (self.flood_limit or 0):
            return True
        self._sent_at.append(now)
        return False

    def _answer(self, method: str, params: dict[str, Any], outcome: tuple[int, dict[str, Any]]) -> web.Response:
        status, body = outcome
        call = Call(method, params, status)
        self.calls.append(call)
        if self.on_call is not None:
            self.on_call(call)
        return web.json_response(body, status=status)

    @staticmethod
    async def _params(request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            loaded = await request.json()
            return dict(loaded) if isinstance(loaded, dict) else {}
        params: dict[str, Any] = {}
        for key, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                params[key] = value.file.read()
            elif key in _TEXT_PARAMETERS:
                params[key] = value
            else:
                try:
                    params[key] = json.loads(value)
                except ValueError:
                    params[key] = value
        return params

    @staticmethod
    def _ok(result: Any) -> dict[str, Any]:
        return {"ok": True, "result": result}

    @staticmethod
    def _error(code: int, description: str, **parameters: Any) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
        if parameters:
            body["parameters"] = parameters
        return code, body

    def fail_next(self, method: str, status: int = 429, *, retry_after: int = 1) -> None:
        """The next call of ``method`` fails: by default Telegram's flood control asking to wait a second."""
        description = f"Too Many Requests: retry after {retry_after}" if status == 429 else "Internal Server Error"
        extra = {"retry_after": retry_after} if status == 429 else {}
        self._failures.setdefault(method, []).append(self._error(status, description, **extra))

    # -- Bot API methods ---------------------------------------------------------------------------

    def _message_json(self, message: ChatMessage) -> dict[str, Any]:
        sender = (
            {"id": BOT_ID, "is_bot": True, "first_name": "Unlock", "username": BOT_USERNAME}
            if message.from_bot
            else self._users[message.sender_id].as_json()
        )
        body: dict[str, Any] = {
            "message_id": message.message_id,
            "date": int(time.time()),
            "chat": _chat_json(message.chat_id, self._users),
            "from": sender,
        }
        if message.photo is not None:
            body["photo"] = [
                {
                    "file_id": f"photo-{message.message_id}",
                    "file_unique_id": f"p{message.message_id}",
                    "width": 300,
                    "height": 300,
                }
            ]
        else:
            body["text"] = message.text
        if message.reply_markup:
            body["reply_markup"] = message.reply_markup
        if message.reply_to is not None and (message.chat_id, message.reply_to) in self.messages:
            body["reply_to_message"] = self._message_json(self.messages[(message.chat_id, message.reply_to)])
        return body

    async def _get_me(self, _: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "Unlock",
            "username": BOT_USERNAME,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _delete_webhook(self, _: dict[str, Any]) -> bool:
        return True

    async def _set_webhook(self, _: dict[str, Any]) -> bool:
        return True

    async def _set_my_commands(self, _: dict[str, Any]) -> bool:
        return True

    async def _answer_callback_query(self, _: dict[str, Any]) -> bool:
        return True

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]  # an offset confirms the rest
        if not self._updates:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout=float(params.get("timeout") or 0))
            except TimeoutError:
                return []
        limit = int(params.get("limit") or 100)
        return [u for u in self._updates if u["update_id"] >= offset][:limit]

    def _reply_to(self, params: dict[str, Any]) -> int | None:
        reply = params.get("reply_parameters")
        return int(reply["message_id"]) if isinstance(reply, dict) else None

    def _can_write(self, chat_id: int) -> tuple[int, dict[str, Any]] | None:
        if chat_id > 0 and chat_id not in self._started:
            return self._error(403, "Forbidden: bot can't initiate conversation with a user")
        return None

    async def _send_message(self, params: dict[str, Any]) -> dict[str, Any] | tuple[int, dict[str, Any]]:
        chat_id = int(params["chat_id"])
        refused = self._can_write(chat_id)
        if refused is not None:
            return refused
        if not 1 <= _utf16(_shown(params["text"], params.get("parse_mode"))) <= 4096:
            return self._error(400, "Bad Request: message is too long")
        message = self._add(
            ChatMessage(
                chat_id,
                next(self._message_ids),
                BOT_ID,
                text=params["text"],
                reply_markup=params.get("reply_markup"),
                reply_to=self._reply_to(params),
                protect_content=bool(params.get("protect_content")),
                parse_mode=params.get("parse_mode"),
            )
        )
        return self._message_json(message)

    async def _send_photo(self, params: dict[str, Any]) -> dict[str, Any] | tuple[int, dict[str, Any]]:
        chat_id = int(params["chat_id"])
        refused = self._can_write(chat_id)
        if refused is not None:
            return refused
        photo = params["photo"]
        if not isinstance(photo, bytes):
            return self._error(400, "Bad Request: expected an uploaded photo")
        message = self._add(
            ChatMessage(
                chat_id,
                next(self._message_ids),
                BOT_ID,
                text=params.get("caption", ""),
                photo=photo,
                reply_markup=params.get("reply_markup"),
                reply_to=self._reply_to(params),
                protect_content=bool(params.get("protect_content")),
            )
        )
        return self._message_json(message)

    async def _edit_message_text(self, params: dict[str, Any]) -> dict[str, Any] | tuple[int, dict[str, Any]]:
        message = self.messages.get((int(params["chat_id"]), int(params["message_id"])))
        if message is None or message.deleted or not message.from_bot:
            return self._error(400, "Bad Request: message to edit not found")
        markup = params.get("reply_markup")
        if message.text == params["text"] and message.reply_markup == markup:
            return self._error(
                400,
                "Bad Request: message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup of the message",
            )
        message.text, message.reply_markup, message.parse_mode = params["text"], markup, params.get("parse_mode")
        message.edits += 1
        return self._message_json(message)

    async def _delete_message(self, params: dict[str, Any]) -> bool | tuple[int, dict[str, Any]]:
        message = self.messages.get((int(params["chat_id"]), int(params["message_id"])))
        if message is None or message.deleted:
            return self._error(400, "Bad Request: message to delete not found")
        if message.chat_id < 0 and not message.from_bot and not self.can_delete_in_groups:
            return self._error(400, "Bad Request: message can't be deleted")
        message.deleted = True
        return True

    def _add(self, message: ChatMessage) -> ChatMessage:
        self.messages[(message.chat_id, message.message_id)] = message
        return message

    # -- people using Telegram ---------------------------------------------------------------------

    def sticker_update(self, user: FakeUser) -> dict[str, Any]:
        """An update for ``user`` sending a sticker, with no text at all, in their private chat."""
        update = self.message_update(user, "")
        del update["message"]["text"]
        sticker = {"file_id": "s1", "file_unique_id": "s1", "width": 512, "height": 512, "type": "regular"}
        update["message"]["sticker"] = sticker | {"is_animated": False, "is_video": False}
        return update

    def message_update(
        self, user: FakeUser, text: str, *, chat_id: int | None = None, reply_to: ChatMessage | None = None
    ) -> dict[str, Any]:
        """An update for ``user`` writing ``text`` in their private chat, or in the group ``chat_id``."""
        self._users[user.id] = user
        chat = user.id if chat_id is None else chat_id
        if chat == user.id:
            self._started.add(user.id)
        message = self._add(
            ChatMessage(
                chat, next(self._message_ids), user.id, text=text, reply_to=reply_to.message_id if reply_to else None
            )
        )
        body = self._message_json(message)
        entities = []
        if text.startswith("/"):
            entities.append({"type": "bot_command", "offset": 0, "length": _utf16(text.split(maxsplit=1)[0])})
        for mention in _MENTION.finditer(text):
            entities.append(
                {"type": "mention", "offset": _utf16(text[: mention.start()]), "length": _utf16(mention[0])}
            )
        if entities:
            body["entities"] = entities
        return {"update_id": next(self._update_ids), "message": body}

    def press_update(self, user: FakeUser, message: ChatMessage, data: str) -> dict[str, Any]:
        """An update for ``user`` pressing a button whose callback_data is ``data`` on ``message``."""
        self._users[user.id] = user
        query = {
            "id": f"query-{next(self._query_ids)}",
            "from": user.as_json(),
            "chat_instance": f"instance{message.chat_id}",
            "data": data,
            "message": self._message_json(message),
        }
        return {"update_id": next(self._update_ids), "callback_query": query}

    def queue(self, update: dict[str, Any]) -> dict[str, Any]:
        """Hand ``update`` to the next getUpdates (again, if it was handed out before)."""
        self._updates.append(update)
        self._updates.sort(key=lambda u: u["update_id"])
        self._arrived.set()
        return update

    def say(
        self, user: FakeUser, text: str, *, chat_id: int | None = None, reply_to: ChatMessage | None = None
    ) -> ChatMessage:
        """``user`` writes ``text``; the message as it now stands in the chat."""
        update = self.queue(self.message_update(user, text, chat_id=chat_id, reply_to=reply_to))
        return self.messages[(update["message"]["chat"]["id"], update["message"]["message_id"])]

    def press(self, user: FakeUser, message: ChatMessage, label: str) -> dict[str, Any]:
        return self.queue(self.press_update(user, message, message.data(label)))

    # -- what the bot did --------------------------------------------------------------------------

    def called(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def chat(self, chat_id: int) -> list[ChatMessage]:
        """The bot's messages in a chat that are still there, oldest first."""
        return [m for m in self.messages.values() if m.chat_id == chat_id and m.from_bot and not m.deleted]

    def bot_messages(self) -> Iterator[ChatMessage]:
        return (m for m in self.messages.values() if m.from_bot)

    async def wait_for(self, check: Callable[[], T | None], *, within: float = 10.0, what: str = "") -> T:
        """Poll ``check`` until it gives something true; fail with the last calls when it never does."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            result = check()
            if result:
                return result
            if asyncio.get_running_loop().time() > deadline:
                recent = [(c.method, c.status, str(c.params.get("text", ""))[:80]) for c in self.calls[-12:]]
                raise AssertionError(f"waited {within}s for {what or check}; last calls: {recent}")
            await asyncio.sleep(0.01)

    async def reply_in(self, chat_id: int, containing: str, *, after: int = 0, within: float = 10.0) -> ChatMessage:
        """The first bot message in ``chat_id`` numbered above ``after`` whose text contains ``containing``."""

        def found() -> ChatMessage | None:
            for message in self.chat(chat_id):
                if message.message_id > after and containing in message.text:
                    return message
            return None

        return await self.wait_for(found, within=within, what=f"{containing!r} in chat {chat_id}")

    @property
    def last_message_id(self) -> int:
        return max((message_id for _, message_id in self.messages), default=0)


@dataclass
class Person:
    """A Telegram user talking to the bot through the fake, like a line of a chat transcript."""

    api: FakeBotApi
    user: FakeUser
    said: list[ChatMessage] = field(default_factory=list)

    @property
    def id(self) -> int:
        return self.user.id

    async def says(
        self, text: str, *, expect: str, chat_id: int | None = None, reply_to: ChatMessage | None = None
    ) -> ChatMessage:
        """Write ``text`` (privately, or in group ``chat_id``) and wait for a reply containing ``expect``."""
        before = self.api.last_message_id
        self.said.append(self.api.say(self.user, text, chat_id=chat_id, reply_to=reply_to))
        return await self.api.reply_in(chat_id or self.id, expect, after=before)

    async def presses(
        self, message: ChatMessage, label: str, *, expect: str, reply_in: int | None = None
    ) -> ChatMessage:
        """Press a button on ``message``; wait for a reply containing ``expect`` (in ``reply_in``, else that chat)."""
        before = self.api.last_message_id
        self.api.press(self.user, message, label)
        return await self.api.reply_in(reply_in or message.chat_id, expect, after=before)
