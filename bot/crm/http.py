"""What every HTTP CRM backend shares.

``http_client`` builds the ``httpx.AsyncClient``; ``send`` turns a refused
connection, a time-out, a 5xx or a 429 into ``CrmUnavailable``, so the vendor
modules read only answers that mean something; ``ClientCredentials`` keeps an
OAuth client-credentials token and renews it once when the CRM refuses it.
Which idempotency keys were carried out is kept in ``bot.storage.crm_keys``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from bot.clock import Clock
from bot.errors import CrmError, CrmUnavailable

# A token is renewed this long before it expires (or at half its life, if that is shorter).
TOKEN_MARGIN = timedelta(seconds=30)


def http_client(
    base_url: str, *, timeout: float, ca_file: Path | None, headers: Mapping[str, str] | None = None
) -> httpx.AsyncClient:
    """A client for one CRM: every request bounded by ``timeout``, TLS checked against ``ca_file`` when given."""
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
    return httpx.AsyncClient(
        base_url=base_url, timeout=httpx.Timeout(timeout), verify=verify, headers=dict(headers or {})
    )


async def send(client: httpx.AsyncClient, method: str, url: str, *, system: str, **kwargs: Any) -> httpx.Response:
    """One request; ``CrmUnavailable`` when the CRM cannot answer now, the response for anything it did answer."""
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        raise CrmUnavailable(f"{system} did not answer in time") from exc
    except httpx.TransportError as exc:
        raise CrmUnavailable(f"{system} could not be reached: {exc or type(exc).__name__}") from exc
    if response.status_code >= 500 or response.status_code == httpx.codes.TOO_MANY_REQUESTS:
        raise CrmUnavailable(f"{system} answered {response.status_code} {response.reason_phrase}")
    return response


def read_json(response: httpx.Response, *, system: str) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise CrmError(f"{system} answered {response.status_code} with something that is not JSON") from exc


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time as aware UTC; a time without a zone is taken as UTC."""
    if value in (None, ""):
        return None
    when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def required_time(value: Any, name: str) -> datetime:
    when = parse_time(value)
    if when is None:
        raise ValueError(f"{name} is missing")
    return when


class ClientCredentials:
    """An OAuth 2 client-credentials session: a token fetched when needed and renewed once when refused."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        token_url: str,
        *,
        client_id: str,
        client_secret: SecretStr | None,
        system: str,
        clock: Clock | None = None,
    ) -> None:
        self._client = client
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._system = system
        self._clock = clock  # with a clock, a token's expires_in is honoured
        self._token: tuple[str, datetime | None] | None = None
        self._signing_in = asyncio.Lock()

    def __repr__(self) -> str:
        return f"ClientCredentials(client_id={self._client_id!r}, secret=<hidden>)"

    async def _sign_in(self) -> tuple[str, datetime | None]:
        secret = self._client_secret.get_secret_value() if self._client_secret else ""
        data = {"grant_type": "client_credentials", "client_id": self._client_id, "client_secret": secret}
        response = await send(self._client, "POST", self._token_url, system=self._system, data=data)
        body = read_json(response, system=self._system)
        if not response.is_success or not isinstance(body, Mapping) or not body.get("access_token"):
            detail = body.get("error_description") or body.get("error") if isinstance(body, Mapping) else None
            raise CrmError(f"{self._system} refused the bot's client credentials: {detail or response.status_code}")
        expires = None
        if self._clock is not None and body.get("expires_in"):
            lifetime = timedelta(seconds=float(body["expires_in"]))
            # A short-lived token is still used for half its life rather than not at all.
            expires = self._clock.now() + lifetime - min(TOKEN_MARGIN, lifetime / 2)
        return str(body["access_token"]), expires

    async def token(self, stale: str | None = None) -> str:
        """The current token: a new one when there is none, it expired, or it is ``stale`` (was refused)."""
        async with self._signing_in:
            if self._token is None or self._token[0] == stale or self._expired(self._token[1]):
                self._token = await self._sign_in()
            return self._token[0]

    def _expired(self, expires: datetime | None) -> bool:
        return expires is not None and self._clock is not None and self._clock.now() >= expires

    async def call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """A request with the bearer token; on 401 one fresh token and one more try, then ``CrmError``."""
        token = await self.token()
        response = await self._send(token, method, url, **kwargs)
        if response.status_code == httpx.codes.UNAUTHORIZED:
            # The token expired early or was revoked (or the server restarted): sign in once more.
            response = await self._send(await self.token(stale=token), method, url, **kwargs)
            if response.status_code == httpx.codes.UNAUTHORIZED:
                raise CrmError(f"{self._system} refused even a fresh session ({response.status_code})")
        return response

    async def _send(self, token: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        return await send(self._client, method, url, system=self._system, headers=headers, **kwargs)
