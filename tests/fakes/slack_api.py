"""A fake Slack on 127.0.0.1: the Web API methods the Slack channel calls, file uploads, and Socket Mode.

``FakeSlack`` records every Web API call (method, arguments, token) and answers the way Slack does for
the people a test adds; it can answer 429 with ``Retry-After`` a given number of times. ``SlackSender``
sends what Slack sends to an app over HTTP, signed with the signing secret; ``FakeSlack.send_envelope``
sends the same over the Socket Mode websocket and returns the app's acknowledgement. The payload
builders below make the events and interactions Slack would send, with only the fields Slack documents.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

TEAM = "T0UNLOCK"
BOT_USER = "U0BOT"
BOT_ID = "B0BOT"
BOT_TOKEN = "xoxb-1-fake-bot-token"
APP_TOKEN = "xapp-1-fake-app-token"
SIGNING_SECRET = "fake-signing-secret"

Json = dict[str, Any]


@dataclass(frozen=True)
class Call:
    """One Web API call the bot made."""

    method: str
    args: Json
    token: str
    at: float = field(default_factory=time.monotonic)


def dm_of(user_id: str) -> str:
    """The ID of the bot's direct-message channel with a person."""
    return "D" + user_id[1:]


class FakeSlack:
    """The Web API under ``/api/``, uploads under ``/upload/``, the Socket Mode websocket at ``/link``."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.people: dict[str, Json] = {}
        self.messages: dict[tuple[str, str], Json] = {}  # (channel, ts) -> the message as it is now
        self.uploads: dict[str, bytes] = {}
        self.acks: dict[str, Json] = {}
        self._limits: dict[str, tuple[int, int]] = {}
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._socket: web.WebSocketResponse | None = None
        self._connected = asyncio.Event()
        self._acked = asyncio.Condition()
        self.port = 0
        # Told of every Web API call as it arrives, before it is answered (a benchmark times replies with it).
        self.on_call: Callable[[Call], object] | None = None

    # ---- running ----------------------------------------------------------------------------

    async def start(self) -> None:
        server = web.Application()
        server.router.add_route("*", "/api/{method}", self._api)
        server.router.add_post("/upload/{file_id}", self._upload)
        server.router.add_get("/link", self._link)
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
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    # ---- what a test sets up and reads --------------------------------------------------------

    def add_person(
        self,
        user_id: str,
        name: str,
        *,
        email: str | None = None,
        confirmed: bool = True,
        locale: str = "en-US",
        tz: str = "UTC",
        **flags: bool,
    ) -> None:
        """A workspace member; ``flags`` such as ``is_restricted=True`` make a guest, a bot, a deleted one."""
        self.people[user_id] = {
            "id": user_id,
            "team_id": TEAM,
            "name": name,
            "deleted": False,
            "is_bot": False,
            "is_app_user": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_email_confirmed": confirmed,
            "locale": locale,
            "tz": tz,
            "profile": {"real_name": name.title(), "email": email or f"{name}@example.com"},
            **flags,
        }

    def rate_limit(self, method: str, *, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with 429 and ``Retry-After``."""
        self._limits[method] = (times, retry_after)

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def posted(self, channel: str) -> list[Json]:
        """Messages posted to a channel (chat.postMessage), oldest first, as they are now."""
        return [message for (where, _), message in self.messages.items() if where == channel]

    def ephemeral(self, channel: str, user: str) -> list[Json]:
        return [
            call.args
            for call in self.calls_to("chat.postEphemeral")
            if (call.args["channel"], call.args["user"]) == (channel, user)
        ]

    async def wait_for(self, condition: Callable[[], object], within: float = 5.0) -> None:
        deadline = time.monotonic() + within
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError("the fake Slack never saw what the test waited for")
            await asyncio.sleep(0.01)

    # ---- the Web API --------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: Json = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                args.update(await request.json())
            else:
                args.update(await request.post())  # type: ignore[arg-type]
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else str(args.pop("token", ""))
        args.pop("token", None)
        call = Call(method, args, token)
        self.calls.append(call)
        if self.on_call is not None:
            self.on_call(call)
        times, retry_after = self._limits.get(method, (0, 0))
        if times:
            self._limits[method] = (times - 1, retry_after)
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": str(retry_after)}
            )
        expected = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if token != expected:
            return web.json_response({"ok": False, "error": "invalid_auth" if token else "not_authed"})
        answer = getattr(self, "_" + method.replace(".", "_"), None)
        if answer is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        return web.json_response({"ok": True, **answer(args)})

    def _auth_test(self, args: Json) -> Json:
        return {"user_id": BOT_USER, "bot_id": BOT_ID, "team_id": TEAM, "user": "unlockbot", "team": "Unlock"}

    def _users_info(self, args: Json) -> Json:
        person = self.people.get(str(args.get("user")))
        if person is None:
            return {"ok": False, "error": "user_not_found"}
        return {"user": person}

    def _conversations_open(self, args: Json) -> Json:
        return {"channel": {"id": dm_of(str(args["users"]))}}

    def _new_ts(self) -> str:
        return f"1700000000.{next(self._ts):06d}"

    def _chat_postMessage(self, args: Json) -> Json:
        ts = self._new_ts()
        message = {"channel": args["channel"], "ts": ts, "text": args.get("text", ""), "blocks": args.get("blocks", [])}
        self.messages[(args["channel"], ts)] = message
        return {"channel": args["channel"], "ts": ts, "message": message}

    def _chat_postEphemeral(self, args: Json) -> Json:
        return {"message_ts": self._new_ts()}

    def _chat_update(self, args: Json) -> Json:
        key = (args["channel"], args["ts"])
        if key not in self.messages:
            return {"ok": False, "error": "message_not_found"}
        self.messages[key] = {**self.messages[key], "text": args.get("text", ""), "blocks": args.get("blocks", [])}
        return {"channel": args["channel"], "ts": args["ts"]}

    def _views_open(self, args: Json) -> Json:
        if not args.get("trigger_id"):
            return {"ok": False, "error": "invalid_trigger_id"}
        view = json.loads(args["view"]) if isinstance(args["view"], str) else args["view"]
        return {"view": {**view, "id": f"V{next(self._ids):06d}", "hash": "1.abc"}}

    def _views_publish(self, args: Json) -> Json:
        return {"view": {"id": f"V{next(self._ids):06d}"}}

    def _reactions_add(self, args: Json) -> Json:
        return {}

    def _reactions_remove(self, args: Json) -> Json:
        return {}

    def _files_getUploadURLExternal(self, args: Json) -> Json:
        file_id = f"F{next(self._ids):06d}"
        return {"file_id": file_id, "upload_url": f"http://127.0.0.1:{self.port}/upload/{file_id}"}

    def _files_completeUploadExternal(self, args: Json) -> Json:
        files = json.loads(args["files"]) if isinstance(args["files"], str) else args["files"]
        if any(item["id"] not in self.uploads for item in files):
            return {"ok": False, "error": "file_not_found"}
        return {"files": [{"id": item["id"], "title": item.get("title", "")} for item in files]}

    def _apps_connections_open(self, args: Json) -> Json:
        return {"url": f"ws://127.0.0.1:{self.port}/link"}

    async def _upload(self, request: web.Request) -> web.Response:
        self.uploads[request.match_info["file_id"]] = await request.read()
        return web.Response(text=f"OK - {len(self.uploads[request.match_info['file_id']])}")

    # ---- Socket Mode --------------------------------------------------------------------------

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        self._socket = socket
        await socket.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0UNLOCK"}})
        self._connected.set()
        async for message in socket:
            if message.type is aiohttp.WSMsgType.TEXT:
                ack = json.loads(message.data)
                async with self._acked:
                    self.acks[ack["envelope_id"]] = ack
                    self._acked.notify_all()
        return socket

    async def send_envelope(
        self, kind: str, payload: Json, *, retry_attempt: int = 0, within: float = 3.0
    ) -> tuple[Json, float]:
        """Send one envelope as Slack does over Socket Mode; the app's acknowledgement and how long it took."""
        await asyncio.wait_for(self._connected.wait(), timeout=5)
        assert self._socket is not None
        envelope_id = f"envelope-{next(self._ids)}"
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": retry_attempt,
            "retry_reason": "timeout" if retry_attempt else "",
        }
        sent = time.monotonic()
        await self._socket.send_json(envelope)
        async with self._acked:
            await asyncio.wait_for(self._acked.wait_for(lambda: envelope_id in self.acks), timeout=within)
        return self.acks[envelope_id], time.monotonic() - sent


# ---- what Slack sends to the app ---------------------------------------------------------------

_event_ids = itertools.count(1)
_triggers = itertools.count(1)
_message_ts = itertools.count(1)


def trigger_id() -> str:
    return f"{next(_triggers)}.1000.fake-trigger"


def message_event(user: str, text: str, *, event_id: str | None = None) -> Json:
    """A person writes to the bot in its direct messages (``message.im``)."""
    ts = f"1700000100.{next(_message_ts):06d}"
    return {
        "token": "unused",
        "team_id": TEAM,
        "api_app_id": "A0UNLOCK",
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_event_ids):08d}",
        "event_time": int(time.time()),
        "event": {
            "type": "message",
            "channel_type": "im",
            "channel": dm_of(user),
            "user": user,
            "text": text,
            "ts": ts,
            "event_ts": ts,
            "team": TEAM,
        },
        "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
    }


def home_opened(user: str) -> Json:
    return {
        "team_id": TEAM,
        "api_app_id": "A0UNLOCK",
        "type": "event_callback",
        "event_id": f"Ev{next(_event_ids):08d}",
        "event_time": int(time.time()),
        "event": {"type": "app_home_opened", "user": user, "channel": dm_of(user), "tab": "home"},
        "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
    }


def _person(user: str) -> Json:
    return {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM}


def click(user: str, button: Json, *, channel: str, message_ts: str = "", ephemeral: bool = False) -> Json:
    """A person clicks a button of a message (``block_actions``); ``button`` is the element as posted."""
    container: Json = {"type": "message", "channel_id": channel, "is_ephemeral": ephemeral}
    if message_ts:
        container["message_ts"] = message_ts
    payload: Json = {
        "type": "block_actions",
        "team": {"id": TEAM, "domain": "unlock"},
        "user": _person(user),
        "api_app_id": "A0UNLOCK",
        "trigger_id": trigger_id(),
        "container": container,
        "channel": {"id": channel, "name": "directmessage" if channel.startswith("D") else "admins"},
        "actions": [
            {
                "type": "button",
                "action_id": button["action_id"],
                "block_id": button.get("block_id", "b"),
                "text": button["text"],
                "value": button.get("value", ""),
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    if message_ts and not ephemeral:
        payload["message"] = {"type": "message", "ts": message_ts, "text": button.get("message_text", "")}
    return payload


def view_submission(user: str, view: Json, value: str) -> Json:
    """A person submits a modal the bot opened, having typed ``value`` into its input."""
    block, action = _input_of(view)
    return {
        "type": "view_submission",
        "team": {"id": TEAM, "domain": "unlock"},
        "user": _person(user),
        "api_app_id": "A0UNLOCK",
        "trigger_id": trigger_id(),
        "view": {**view, "state": {"values": {block: {action: {"type": "plain_text_input", "value": value}}}}},
    }


def view_closed(user: str, view: Json) -> Json:
    return {
        "type": "view_closed",
        "team": {"id": TEAM, "domain": "unlock"},
        "user": _person(user),
        "api_app_id": "A0UNLOCK",
        "view": view,
        "is_cleared": False,
    }


def _input_of(view: Json) -> tuple[str, str]:
    for block in view["blocks"]:
        if block["type"] == "input":
            return block["block_id"], block["element"]["action_id"]
    raise AssertionError("the modal has no input")


def slash_command(user: str, text: str, *, channel: str = "C0GENERAL") -> dict[str, str]:
    return {
        "token": "unused",
        "team_id": TEAM,
        "team_domain": "unlock",
        "channel_id": channel,
        "channel_name": "general",
        "user_id": user,
        "user_name": user.lower(),
        "command": "/unlock",
        "text": text,
        "api_app_id": "A0UNLOCK",
        "response_url": "http://127.0.0.1:9/unused",
        "trigger_id": trigger_id(),
    }


@dataclass
class Sent:
    """The app's HTTP answer to one request from Slack, and how long it took."""

    status: int
    body: str
    seconds: float


class SlackSender:
    """Posts to the app's ``/slack/events`` as Slack does: signed with the signing secret and a timestamp."""

    def __init__(self, url: str, signing_secret: str = SIGNING_SECRET) -> None:
        self.url = url
        self.signing_secret = signing_secret

    async def event(self, body: Json, *, retry: int = 0, **signing: Any) -> Sent:
        headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"} if retry else {}
        return await self.post(json.dumps(body), "application/json", headers=headers, **signing)

    async def interaction(self, payload: Json, **signing: Any) -> Sent:
        raw = urlencode({"payload": json.dumps(payload)})
        return await self.post(raw, "application/x-www-form-urlencoded", **signing)

    async def command(self, form: Mapping[str, str], **signing: Any) -> Sent:
        return await self.post(urlencode(form), "application/x-www-form-urlencoded", **signing)

    async def post(
        self,
        raw: str,
        content_type: str,
        *,
        headers: Mapping[str, str] | None = None,
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> Sent:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = SignatureVerifier(secret or self.signing_secret).generate_signature(timestamp=stamp, body=raw)
        sent_headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": signature or "",
            **(headers or {}),
        }
        started = time.monotonic()
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.url, data=raw.encode(), headers=sent_headers) as response,
        ):
            body = await response.text()
        return Sent(response.status, body, time.monotonic() - started)
