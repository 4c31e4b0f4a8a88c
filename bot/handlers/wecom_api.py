"""The few WeCom server API calls the channel makes, over httpx, with the access token cached and renewed.

WeCom answers every call with JSON carrying ``errcode`` (0 when all went well); anything else is raised as
``WeComError``. An access token (``gettoken`` with the corp id and the app's secret) lasts about two hours:
it is fetched when first needed, again a little before it expires, and at once when WeCom refuses it.

Why httpx and not wechatpy's ``WeChatClient``: that client is synchronous (requests), so every call would
hold a thread of its own; its enterprise ``fetch_access_token`` ignores ``API_BASE_URL`` (always
qyapi.weixin.qq.com) and sets no timeout. The channel needs seven endpoints, and an async client with one
token cache keeps it on the event loop. wechatpy does the part that matters for security: signatures and AES.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import httpx

from bot.channel_settings import WeComSettings

Json = dict[str, Any]

API_TIMEOUT = 10.0
TOKEN_MARGIN = 300  # seconds before WeCom's expiry that a new access token is fetched
TOKEN_ERRORS = frozenset({40014, 41001, 42001})  # invalid, missing, expired access token: fetch one, try again
BUSY_ERRORS = frozenset({-1, 45009, 45033})  # system busy, API rate and concurrency limits: try again later


class WeComError(Exception):
    """WeCom answered a call with a non-zero ``errcode``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"errcode {code}: {message[:120]}")
        self.code = code


class WeComApi:
    """The server API calls the channel makes, with the access token fetched, cached and renewed."""

    def __init__(self, settings: WeComSettings) -> None:
        assert settings.secret is not None  # checked with the settings
        self._http = httpx.AsyncClient(base_url=f"{settings.api_base_url}/cgi-bin/", timeout=API_TIMEOUT)
        self._credentials = {"corpid": settings.corp_id, "corpsecret": settings.secret.get_secret_value()}
        self._token = ""
        self._expires = 0.0
        self._renewing = asyncio.Lock()

    async def token(self, *, instead_of: str = "") -> str:
        """A valid access token: the cached one, unless it expires soon or is ``instead_of`` (refused)."""
        async with self._renewing:
            if not self._token or self._token == instead_of or time.monotonic() >= self._expires:
                answer = _checked(await self._http.get("gettoken", params=self._credentials))
                self._token = str(answer["access_token"])
                self._expires = time.monotonic() + int(answer.get("expires_in", 7200)) - TOKEN_MARGIN
            return self._token

    async def call(
        self, path: str, *, body: Json | None = None, params: Mapping[str, str] | None = None, files: Any = None
    ) -> Json:
        """GET ``path`` (POST with a JSON ``body`` or ``files``); the answer, or ``WeComError``."""
        token = await self.token()
        for attempt in range(2):
            query = {**(params or {}), "access_token": token}
            if body is None and files is None:
                response = await self._http.get(path, params=query)
            else:
                response = await self._http.post(path, params=query, json=body, files=files)
            try:
                return _checked(response)
            except WeComError as exc:
                if exc.code not in TOKEN_ERRORS or attempt:
                    raise
                token = await self.token(instead_of=token)
        raise AssertionError("unreachable")

    async def close(self) -> None:
        await self._http.aclose()


def _checked(response: httpx.Response) -> Json:
    response.raise_for_status()
    answer = response.json()
    if not isinstance(answer, dict):
        raise WeComError(-1, "not a JSON object")
    if int(answer.get("errcode", 0)) != 0:
        raise WeComError(int(answer["errcode"]), str(answer.get("errmsg", "")))
    return answer
