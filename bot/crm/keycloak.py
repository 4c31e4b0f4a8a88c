"""The ``keycloak`` backend: a CRM behind Keycloak single sign-on, whose brute-force detection is the lock.

Signs in to the admin REST API as a service account (client credentials; the
token is kept until shortly before it expires, by the injected clock). A user
temporarily locked by brute-force detection is locked for ``failed_password``
with the failure count, time and address as evidence; a user disabled by
permanent lock-out is too; a user disabled by an administrator is locked for
``unknown``. Unlocking clears the login failures and enables the user. Keycloak
knows nothing of licences, seats, incidents or lock counts, and the backend says so.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from bot.clock import Clock
from bot.config import KeycloakSettings
from bot.crm.base import (
    Account,
    Capability,
    Evidence,
    LicenceInfo,
    LockEvent,
    LockReason,
    LockStatus,
    LoginAttempt,
    PasswordReset,
    Reachability,
    SeatHolder,
    SystemStatus,
)
from bot.crm.http import ClientCredentials, http_client, read_json
from bot.crm.sql import mask_email
from bot.errors import AccountNotFound, CrmError, CrmUnsupported
from bot.storage.crm_keys import DoneKeys, MemoryKeys

SYSTEM = "Keycloak"
# A token is renewed this long before Keycloak says it expires, so a call never carries a dying one.
PERMANENT_LOCKOUT = "permanentLockout"
DISABLED_NOTE = "The Keycloak user is disabled; the bot cannot tell why."

KEYCLOAK_CAN = frozenset(
    {
        Capability.LOCK_STATUS,
        Capability.LOGIN_HISTORY,
        Capability.UNLOCK,
        Capability.RESET_PASSWORD,
        Capability.PROBE,
    }
)


class KeycloakCrm:
    """Keycloak's admin REST API for one realm."""

    name = "keycloak"

    def __init__(
        self, settings: KeycloakSettings, clock: Clock, *, timeout: float, keys: DoneKeys | None = None
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._client = http_client(settings.base_url, timeout=timeout, ca_file=settings.ca_file)
        self._admin = f"/admin/realms/{quote(settings.realm, safe='')}"
        token_realm = quote(settings.client_realm or settings.realm, safe="")
        self._auth = ClientCredentials(
            self._client,
            f"/realms/{token_realm}/protocol/openid-connect/token",
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            system=SYSTEM,
            clock=clock,
        )
        # The keys already carried out: in the database (``StoredKeys``) when replicas share the work.
        self._keys: DoneKeys = keys if keys is not None else MemoryKeys()

    @property
    def capabilities(self) -> frozenset[Capability]:
        return KEYCLOAK_CAN

    # --- talking to Keycloak -----------------------------------------------------------------------------------

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self._auth.call(method, self._admin + path, **kwargs)

    def _check(self, response: httpx.Response, *, username: str | None = None) -> None:
        if response.is_success:
            return
        if response.status_code == httpx.codes.NOT_FOUND and username is not None:
            raise AccountNotFound(username)
        if response.status_code == httpx.codes.FORBIDDEN:
            raise CrmError(f"{SYSTEM} does not let the service account do this (it needs manage-users)")
        raise CrmError(f"{SYSTEM} answered {response.status_code}: {_error(response)}")

    async def _json(self, path: str, *, username: str | None = None, **kwargs: Any) -> Any:
        response = await self._call("GET", path, **kwargs)
        self._check(response, username=username)
        return read_json(response, system=SYSTEM)

    # --- users -------------------------------------------------------------------------------------------------

    async def _search(self, field: str, value: str) -> Mapping[str, Any] | None:
        found = await self._json("/users", params={field: value, "exact": "true"})
        for user in found if isinstance(found, list) else []:
            if isinstance(user, Mapping) and str(user.get(field) or "").lower() == value.lower():
                return user
        return None

    async def _user(self, username: str) -> Mapping[str, Any]:
        user = await self._search("username", username)
        if user is None:
            raise AccountNotFound(username)
        return user

    async def _brute_force(self, user: Mapping[str, Any], username: str) -> Mapping[str, Any]:
        status = await self._json(f"/attack-detection/brute-force/users/{_id(user)}", username=username)
        return status if isinstance(status, Mapping) else {}

    # --- the CrmBackend protocol -------------------------------------------------------------------------------

    async def find_account(self, query: str) -> Account | None:
        order = ("email", "username") if "@" in query else ("username", "email")
        for field in order:
            user = await self._search(field, query)
            if user is not None:
                return _account(user)
        return None

    async def lock_status(self, username: str) -> LockStatus:
        user = await self._user(username)
        failures = await self._brute_force(user, username)
        try:
            return lock_from(username, user, failures)
        except (TypeError, ValueError) as exc:
            raise CrmError(f"{SYSTEM} answered a brute-force status we cannot read: {exc!r}") from exc

    async def unlock(self, username: str, *, idempotency_key: str) -> None:
        if await self._keys.result(f"unlock:{idempotency_key}") is not None:
            return
        user = await self._user(username)
        # Both steps are idempotent: clearing no failures and enabling an enabled user change nothing.
        response = await self._call("DELETE", f"/attack-detection/brute-force/users/{_id(user)}")
        self._check(response, username=username)
        if not user.get("enabled", True):
            response = await self._call("PUT", f"/users/{_id(user)}", json={"enabled": True})
            self._check(response, username=username)
        await self._keys.done(f"unlock:{idempotency_key}", {})

    async def reset_password(self, username: str, *, idempotency_key: str) -> PasswordReset:
        done = await self._keys.result(f"reset_password:{idempotency_key}")
        if done is not None:
            return PasswordReset(sent_to=done.get("sent_to"))
        user = await self._user(username)
        email = str(user.get("email") or "")
        if not email:
            raise CrmError(f"{SYSTEM} has no e-mail address for {username} to send the reset link to")
        # Keycloak e-mails a link that asks the person to choose a new password.
        response = await self._call("PUT", f"/users/{_id(user)}/execute-actions-email", json=["UPDATE_PASSWORD"])
        self._check(response, username=username)
        reset = PasswordReset(sent_to=mask_email(email))
        await self._keys.done(f"reset_password:{idempotency_key}", {"sent_to": reset.sent_to})
        return reset

    async def add_trusted_ip(self, username: str, ip: str, *, note: str) -> None:
        raise CrmUnsupported(Capability.TRUSTED_IPS.value)

    async def licence(self, username: str) -> LicenceInfo | None:
        raise CrmUnsupported(Capability.LICENCES.value)

    async def all_licences(self) -> list[LicenceInfo]:
        raise CrmUnsupported(Capability.LICENCE_LIST.value)

    async def inactive_users(self, licence: str, *, limit: int) -> list[SeatHolder]:
        raise CrmUnsupported(Capability.SEAT_USAGE.value)

    async def system_status(self) -> SystemStatus:
        raise CrmUnsupported(Capability.SYSTEM_STATUS.value)

    async def locks_since(self, since: datetime) -> int:
        raise CrmUnsupported(Capability.LOCK_STATISTICS.value)

    async def lock_events(self, since: datetime) -> list[LockEvent]:
        # Keycloak records no event when its brute-force detector locks someone: its user events (kept only when
        # the realm saves them) show refused sign-ins, and "user_temporarily_disabled" only once a locked user
        # tries again; the brute-force status is per user. Neither tells honestly who was locked when.
        raise CrmUnsupported(Capability.LOCK_EVENTS.value)

    async def probe(self) -> Reachability:
        started = time.perf_counter()
        try:
            await self._json("/users/count")
        except CrmError as exc:
            return Reachability(False, None, str(exc))
        return Reachability(True, (time.perf_counter() - started) * 1000)

    async def aclose(self) -> None:
        await self._client.aclose()


def lock_from(username: str, user: Mapping[str, Any], failures: Mapping[str, Any]) -> LockStatus:
    """The lock from a user representation and its brute-force status."""
    count = int(failures.get("numFailures") or 0)
    last_ms = int(failures.get("lastFailure") or 0)
    last_at = datetime.fromtimestamp(last_ms / 1000, UTC) if last_ms > 0 else None
    last_ip = str(failures.get("lastIPFailure") or "")
    attempts = (LoginAttempt(last_at, last_ip if last_ip != "n/a" else "", False),) if last_at else ()
    counted = f"Keycloak counted {count} failed sign-in(s) in a row." if count else ""
    enabled = bool(user.get("enabled", True))
    reasons = (user.get("attributes") or {}).get("disabledReason") or []
    if failures.get("disabled") or (not enabled and PERMANENT_LOCKOUT in reasons):
        return LockStatus(
            username, True, LockReason.FAILED_PASSWORD, last_at, Evidence(failed_attempts=attempts, detail=counted)
        )
    if not enabled:
        detail = f"{DISABLED_NOTE} {counted}".strip()
        return LockStatus(username, True, LockReason.UNKNOWN, None, Evidence(failed_attempts=attempts, detail=detail))
    return LockStatus(username, False)


def _id(user: Mapping[str, Any]) -> str:
    return quote(str(user["id"]), safe="")


def _account(user: Mapping[str, Any]) -> Account:
    name = " ".join(str(part) for part in (user.get("firstName"), user.get("lastName")) if part)
    return Account(
        username=str(user["username"]),
        email=str(user.get("email") or ""),
        display_name=name or str(user["username"]),
        active=bool(user.get("enabled", True)),
    )


def _error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, Mapping):
        return str(body.get("errorMessage") or body.get("error_description") or body.get("error") or body)[:200]
    return str(body)[:200]
