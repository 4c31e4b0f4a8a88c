"""DingTalk's wire: the open API with the app's access token, the robot callback's signature, and the
Stream connection.

The open API (api.dingtalk.com) takes the token in a header; the older server API (oapi), where a
user's details and media uploads still live, takes it in the URL, which ``HideTokens`` keeps out of
the log. The Stream connection is dingtalk-stream's own client (its frames, routing and
acknowledgements) with the connection opened through our HTTP client at the configured base URL: the
SDK's ``open_connection`` blocks the event loop and always calls api.dingtalk.com. It reconnects
after a failure, waiting longer each time, up to a minute.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus

import httpx
import websockets
from dingtalk_stream import (
    AckMessage,
    CallbackHandler,
    CallbackMessage,
    ChatbotMessage,
    Credential,
    DingTalkStreamClient,
    SystemMessage,
)
from dingtalk_stream.card_callback import Card_Callback_Router_Topic

from bot.channel_settings import DingTalkSettings
from bot.handlers.base import describe_error

log = logging.getLogger(__name__)

RECONNECT_PAUSE_MIN = 1.0  # seconds
RECONNECT_PAUSE_MAX = 60.0

Json = dict[str, Any]
Receiver = Callable[[Json, str], None]  # (the callback's data, the delivery's id): must return at once


class DingTalkError(Exception):
    """DingTalk answered a call with an error (``status`` is the HTTP status, ``code`` DingTalk's)."""

    def __init__(self, status: int, code: str, message: str = "") -> None:
        super().__init__(f"{status} {code} {message}".strip())
        self.status, self.code = status, code


def request_sign(timestamp: str, secret: str) -> str:
    """The ``sign`` header DingTalk sends with ``timestamp`` on a robot callback."""
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class HideTokens(logging.Filter):
    """httpx and websockets log request URLs; the oapi ones carry the access token, the Stream one its ticket."""

    _IN_URL = re.compile(r"\b(access_token|ticket)=[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self._IN_URL.search(message):
            record.msg, record.args = self._IN_URL.sub(r"\1=<hidden>", message), None
        return True


class DingTalkApi:
    """The open API and the older server API (oapi), called with the app's access token."""

    def __init__(self, settings: DingTalkSettings, secret: str) -> None:
        self.settings, self.secret = settings, secret
        self._http = httpx.AsyncClient(timeout=10)
        self._token, self._expires = "", 0.0
        self._refresh = asyncio.Lock()

    async def token(self) -> str:
        async with self._refresh:
            if not self._token or time.monotonic() >= self._expires:
                body = {"appKey": self.settings.client_id, "appSecret": self.secret}
                answer = await self.request("POST", f"{self.settings.api_base_url}/v1.0/oauth2/accessToken", json=body)
                # Renewed five minutes early, so that no call goes out with a token about to lapse.
                self._token = str(answer["accessToken"])
                self._expires = time.monotonic() + int(answer.get("expireIn", 7200)) - 300
            return self._token

    async def call(self, method: str, path: str, body: Json) -> Json:
        headers = {"x-acs-dingtalk-access-token": await self.token()}
        return await self.request(method, f"{self.settings.api_base_url}{path}", json=body, headers=headers)

    async def oapi(self, path: str, **options: Any) -> Json:
        params = {"access_token": await self.token(), **options.pop("params", {})}
        answer = await self.request("POST", f"{self.settings.oapi_base_url}{path}", params=params, **options)
        if answer.get("errcode", 0) != 0:
            raise DingTalkError(200, str(answer.get("errcode")), str(answer.get("errmsg", "")))
        return answer

    async def request(self, method: str, url: str, **options: Any) -> Json:
        response = await self._http.request(method, url, **options)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code >= 400 or not isinstance(answer, dict):
            if response.status_code == 401:
                self._token = ""  # revoked or expired early: fetch a new one next time
            found = answer if isinstance(answer, dict) else {}
            raise DingTalkError(response.status_code, str(found.get("code", "")), str(found.get("message", "")))
        return answer

    async def aclose(self) -> None:
        await self._http.aclose()


class _Acknowledged(CallbackHandler):  # type: ignore[misc]
    """An SDK callback handler that acknowledges at once and leaves the handling to ``receive``."""

    def __init__(self, receive: Receiver) -> None:
        super().__init__()
        self._receive = receive

    async def process(self, message: CallbackMessage) -> tuple[int, str]:
        self._receive(message.data if isinstance(message.data, dict) else {}, str(message.headers.message_id or ""))
        return AckMessage.STATUS_OK, "OK"


class StreamConnection(DingTalkStreamClient):  # type: ignore[misc]
    """dingtalk-stream's client, opening its connection through our HTTP client and configured API: the
    SDK's own ``open_connection`` blocks the event loop and always calls api.dingtalk.com."""

    def __init__(self, api: DingTalkApi, on_message: Receiver, on_press: Receiver) -> None:
        super().__init__(Credential(api.settings.client_id, api.secret), logger=log.getChild("stream"))
        self._api = api
        self.register_callback_handler(ChatbotMessage.TOPIC, _Acknowledged(on_message))
        self.register_callback_handler(Card_Callback_Router_Topic, _Acknowledged(on_press))
        self.up = False

    async def run(self) -> None:
        self.pre_start()
        pause = RECONNECT_PAUSE_MIN / 2
        while True:
            failure: Exception | None = None
            try:
                await self._connection()
            except (OSError, ValueError, httpx.HTTPError, DingTalkError, websockets.WebSocketException) as exc:
                failure = exc
            finally:
                was_up, self.up = self.up, False
            # A connection that was up starts over at the shortest pause; failing to connect waits longer each time.
            pause = RECONNECT_PAUSE_MIN if was_up else min(pause * 2, RECONNECT_PAUSE_MAX)
            if failure is not None:
                log.warning(
                    "dingtalk: the Stream connection failed (%s); again in %.0fs", describe_error(failure), pause
                )
            await asyncio.sleep(pause)

    async def _connection(self) -> None:
        body = {
            "clientId": self._api.settings.client_id,
            "clientSecret": self._api.secret,
            "subscriptions": [{"type": "CALLBACK", "topic": topic} for topic in self.callback_handler_map],
            "ua": "unlockbot",
            "localIp": "",
        }
        opened = await self._api.request(
            "POST", f"{self._api.settings.api_base_url}/v1.0/gateway/connections/open", json=body
        )
        async with websockets.connect(f"{opened['endpoint']}?ticket={quote_plus(str(opened['ticket']))}") as socket:
            self.websocket, self.up = socket, True
            log.info("dingtalk: Stream connection open")
            async for raw in socket:
                frame = json.loads(raw)
                if frame.get("type") != SystemMessage.TYPE:
                    await self.route_message(frame)  # the SDK's routing: our handlers, then its acknowledgement
                    continue
                system = SystemMessage.from_dict(frame)  # a ping is answered with its own data; a disconnect ends it
                await socket.send(json.dumps((await self.system_handler.raw_process(system)).to_dict()))
                if system.headers.topic == SystemMessage.TOPIC_DISCONNECT:
                    return
