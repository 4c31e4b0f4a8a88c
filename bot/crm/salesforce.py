"""The ``salesforce`` backend: Salesforce's REST API, reached with httpx as a connected app.

The lock comes from ``UserLogin`` (``IsPasswordLocked``, ``IsFrozen``) and the
reason and evidence from the user's recent ``LoginHistory`` rows; unlocking
sets both flags false, a password reset asks Salesforce to e-mail the person a
reset link, licence facts come from ``UserLicense`` (seats, never an end date:
Salesforce does not publish one) and who holds the seats from ``User.LastLoginDate``.
httpx rather than simple-salesforce: the calls stay async, so a time-out really
stops the request instead of leaving a blocked thread behind. ``docs/backends.md`` says
how each ``LoginHistory`` status maps to a reason.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from bot.config import SalesforceSettings
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
from bot.crm.http import ClientCredentials, http_client, parse_time, read_json
from bot.crm.sql import mask_email
from bot.errors import AccountNotFound, CrmError, CrmUnavailable, CrmUnsupported
from bot.storage.crm_keys import DoneKeys, MemoryKeys

SYSTEM = "Salesforce"
SUCCESS = "Success"

# LoginHistory.Status texts that refused a sign-in, matched in lower case anywhere in the status
# ("Failed: Computer activation required" and "Computer activation required" both count).
REFUSALS: tuple[tuple[str, LockReason], ...] = (
    ("password lockout", LockReason.FAILED_PASSWORD),
    ("invalid password", LockReason.FAILED_PASSWORD),
    ("restricted ip", LockReason.UNUSUAL_IP),
    ("computer activation", LockReason.UNUSUAL_IP),
    ("frozen", LockReason.UNKNOWN),
)
USER_FIELDS = "SELECT Id, Username, Email, Name, IsActive, Profile.UserLicenseId FROM User"
USER_BY_NAME = USER_FIELDS + " WHERE Username = :name LIMIT 2"
USER_BY_NAME_OR_EMAIL = USER_FIELDS + " WHERE Username = :query OR Email = :query LIMIT 2"
USER_LOGIN = "SELECT Id, IsPasswordLocked, IsFrozen, LastModifiedDate FROM UserLogin WHERE UserId = :user LIMIT 1"
LOGIN_HISTORY = (
    "SELECT LoginTime, SourceIp, Status, CountryIso FROM LoginHistory"
    " WHERE UserId = :user ORDER BY LoginTime DESC LIMIT :rows"
)
LOCKS_SINCE = "SELECT COUNT() FROM UserLogin WHERE IsPasswordLocked = true AND LastModifiedDate >= :since"
LICENCES = (
    "SELECT Id, Name, MasterLabel, TotalLicenses, UsedLicenses FROM UserLicense"
    " WHERE Status = 'Active' ORDER BY Name ASC"
)
# Never signed in (no LastLoginDate) is the longest of all: NULLS FIRST.
INACTIVE_USERS = (
    "SELECT Username, Name, LastLoginDate FROM User"
    " WHERE IsActive = true AND Profile.UserLicense.Name = :licence"
    " ORDER BY LastLoginDate ASC NULLS FIRST LIMIT :rows"
)
FROZEN_NOTE = "A Salesforce administrator froze this user; the bot cannot tell why."


def refusal_reason(status: str) -> LockReason | None:
    """Our reason for one ``LoginHistory.Status``; None for a success or a status we do not know."""
    lowered = status.lower()
    for fragment, reason in REFUSALS:
        if fragment in lowered:
            return reason
    return None


def soql_literal(value: str | int | datetime) -> str:
    """A SOQL literal: strings quoted with quotes and backslashes escaped, so a value can never widen a query."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def soql(template: str, **values: str | int | datetime) -> str:
    """``template`` with each ``:name`` replaced, in one pass, by its value as a literal (REST has no binds)."""
    return re.sub(r":(\w+)", lambda match: soql_literal(values[match.group(1)]), template)


@dataclass(frozen=True, slots=True)
class _User:
    id: str
    username: str
    email: str
    name: str
    active: bool
    licence_id: str | None


@dataclass(frozen=True, slots=True)
class _Login:
    id: str
    password_locked: bool
    frozen: bool
    modified_at: datetime | None


@dataclass(frozen=True, slots=True)
class _HistoryRow:
    at: datetime
    ip: str
    status: str
    country: str | None


SALESFORCE_CAN = frozenset(
    {
        Capability.LOCK_STATUS,
        Capability.LOGIN_HISTORY,
        Capability.UNLOCK,
        Capability.RESET_PASSWORD,
        Capability.LICENCES,
        Capability.LICENCE_LIST,
        Capability.SEAT_USAGE,
        Capability.LOCK_STATISTICS,
        Capability.PROBE,
    }
)


class SalesforceCrm:
    """Salesforce through its REST API, signed in with the OAuth client credentials flow."""

    name = "salesforce"

    def __init__(self, settings: SalesforceSettings, *, timeout: float, keys: DoneKeys | None = None) -> None:
        self._settings = settings
        self._client = http_client(settings.instance_url, timeout=timeout, ca_file=settings.ca_file)
        self._api = f"/services/data/v{settings.api_version}"
        # Salesforce sessions carry no lifetime the bot can trust: a refused one is renewed instead.
        self._auth = ClientCredentials(
            self._client,
            "/services/oauth2/token",
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            system=SYSTEM,
        )
        # The keys already carried out: in the database (``StoredKeys``) when replicas share the work.
        self._keys: DoneKeys = keys if keys is not None else MemoryKeys()

    @property
    def capabilities(self) -> frozenset[Capability]:
        return SALESFORCE_CAN

    # --- talking to Salesforce ---------------------------------------------------------------------------------

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self._auth.call(method, self._api + path, **kwargs)

    def _check(self, response: httpx.Response, *, username: str | None = None) -> None:
        if response.is_success:
            return
        code, message = _error(response)
        if code == "REQUEST_LIMIT_EXCEEDED":
            raise CrmUnavailable(f"{SYSTEM} API request limit reached: {message}")
        if response.status_code == httpx.codes.NOT_FOUND and username is not None:
            raise AccountNotFound(username)
        if code == "INVALID_NEW_PASSWORD":
            raise CrmError(f"{SYSTEM} refused the new password: {message}")
        if response.status_code == httpx.codes.FORBIDDEN:
            raise CrmError(f"{SYSTEM} does not let the connected app do this ({code}): {message}")
        raise CrmError(f"{SYSTEM} answered {response.status_code} ({code}): {message}")

    async def _query(self, soql: str) -> Mapping[str, Any]:
        response = await self._call("GET", "/query", params={"q": soql})
        self._check(response)
        body = read_json(response, system=SYSTEM)
        if not isinstance(body, Mapping):
            raise CrmError(f"{SYSTEM} answered a query with something other than a result")
        return body

    async def _records(self, soql: str) -> list[Mapping[str, Any]]:
        return list((await self._query(soql)).get("records") or [])

    # --- reading Salesforce's objects --------------------------------------------------------------------------

    async def _users(self, query: str) -> list[_User]:
        rows = await self._records(query)
        return [
            _User(
                id=str(row["Id"]),
                username=str(row["Username"]),
                email=str(row.get("Email") or ""),
                name=str(row.get("Name") or row["Username"]),
                active=bool(row.get("IsActive", True)),
                licence_id=(row.get("Profile") or {}).get("UserLicenseId"),
            )
            for row in rows
        ]

    async def _user(self, username: str) -> _User:
        for user in await self._users(soql(USER_BY_NAME, name=username)):
            if user.username.lower() == username.lower():
                return user
        raise AccountNotFound(username)

    async def _login(self, user: _User) -> _Login | None:
        rows = await self._records(soql(USER_LOGIN, user=user.id))
        if not rows:
            return None
        row = rows[0]
        return _Login(
            id=str(row["Id"]),
            password_locked=bool(row.get("IsPasswordLocked")),
            frozen=bool(row.get("IsFrozen")),
            modified_at=_sf_time(row.get("LastModifiedDate")),
        )

    async def _history(self, user: _User) -> list[_HistoryRow]:
        """Recent sign-ins, newest first."""
        rows = await self._records(soql(LOGIN_HISTORY, user=user.id, rows=self._settings.history_rows))
        return [
            _HistoryRow(at, str(row.get("SourceIp") or ""), str(row.get("Status") or ""), row.get("CountryIso") or None)
            for row in rows
            if (at := _sf_time(row.get("LoginTime"))) is not None
        ]

    # --- the CrmBackend protocol -------------------------------------------------------------------------------

    async def find_account(self, query: str) -> Account | None:
        users = await self._users(soql(USER_BY_NAME_OR_EMAIL, query=query))
        chosen = next((u for u in users if u.username.lower() == query.lower()), None)
        if chosen is None and len(users) == 1:
            chosen = users[0]
        # An e-mail address shared by two users finds nobody rather than the wrong person.
        if chosen is None:
            return None
        return Account(chosen.username, chosen.email, chosen.name, chosen.active)

    async def lock_status(self, username: str) -> LockStatus:
        user = await self._user(username)
        login = await self._login(user)
        history = await self._history(user)
        return lock_from(username, login, history)

    async def unlock(self, username: str, *, idempotency_key: str) -> None:
        if await self._keys.result(f"unlock:{idempotency_key}") is not None:
            return
        user = await self._user(username)
        login = await self._login(user)
        if login is not None and (login.password_locked or login.frozen):
            # Setting the flags false is itself idempotent: a repeat after a lost answer changes nothing more.
            response = await self._call(
                "PATCH", f"/sobjects/UserLogin/{login.id}", json={"IsPasswordLocked": False, "IsFrozen": False}
            )
            self._check(response, username=username)
        await self._keys.done(f"unlock:{idempotency_key}", {})

    async def reset_password(self, username: str, *, idempotency_key: str) -> PasswordReset:
        done = await self._keys.result(f"reset_password:{idempotency_key}")
        if done is not None:
            return PasswordReset(sent_to=done.get("sent_to"))
        user = await self._user(username)
        # Salesforce e-mails the person a reset link and answers with a temporary password,
        # which the bot neither reads nor keeps.
        response = await self._call("DELETE", f"/sobjects/User/{user.id}/password")
        self._check(response, username=username)
        reset = PasswordReset(sent_to=mask_email(user.email) if user.email else None)
        await self._keys.done(f"reset_password:{idempotency_key}", {"sent_to": reset.sent_to})
        return reset

    async def add_trusted_ip(self, username: str, ip: str, *, note: str) -> None:
        raise CrmUnsupported(Capability.TRUSTED_IPS.value)

    async def licence(self, username: str) -> LicenceInfo | None:
        user = await self._user(username)
        if not user.licence_id:
            return None
        response = await self._call("GET", f"/sobjects/UserLicense/{user.licence_id}")
        if response.status_code == httpx.codes.NOT_FOUND:
            return None
        self._check(response)
        body = read_json(response, system=SYSTEM)
        if not isinstance(body, Mapping):
            raise CrmError(f"{SYSTEM} answered a UserLicense with something other than a record")
        return _licence(body)

    async def all_licences(self) -> list[LicenceInfo]:
        # Every org lists licence types it holds none of (TotalLicenses 0): those are not the company's.
        return [_licence(row) for row in await self._records(LICENCES) if row.get("TotalLicenses")]

    async def inactive_users(self, licence: str, *, limit: int) -> list[SeatHolder]:
        rows = await self._records(soql(INACTIVE_USERS, licence=licence, rows=limit))
        return [
            SeatHolder(username, str(row.get("Name") or username), _sf_time(row.get("LastLoginDate")))
            for row in rows
            if (username := str(row.get("Username") or ""))  # a row without one names nobody: left out
        ]

    async def system_status(self) -> SystemStatus:
        raise CrmUnsupported(Capability.SYSTEM_STATUS.value)

    async def locks_since(self, since: datetime) -> int:
        result = await self._query(soql(LOCKS_SINCE, since=since))
        return int(result.get("totalSize") or 0)

    async def lock_events(self, since: datetime) -> list[LockEvent]:
        # UserLogin says who is locked now, not when or why; nothing in the REST API lists locks as they happen.
        raise CrmUnsupported(Capability.LOCK_EVENTS.value)

    async def probe(self) -> Reachability:
        started = time.perf_counter()
        try:
            response = await self._call("GET", "/limits")
            self._check(response)
        except CrmError as exc:
            return Reachability(False, None, str(exc))
        return Reachability(True, (time.perf_counter() - started) * 1000)

    async def aclose(self) -> None:
        await self._client.aclose()


def lock_from(username: str, login: _Login | None, history: list[_HistoryRow]) -> LockStatus:
    """The lock, its reason and its evidence from ``UserLogin`` and the sign-ins since the last success."""
    refused = []
    for row in history:  # newest first
        if row.status == SUCCESS:
            break
        refused.append(row)
    attempts = tuple(LoginAttempt(r.at, r.ip, False, r.country) for r in reversed(refused))
    latest = refused[0] if refused else None
    latest_reason = refusal_reason(latest.status) if latest else None
    if login is not None and login.frozen:
        return LockStatus(
            username,
            True,
            LockReason.UNKNOWN,
            login.modified_at,
            Evidence(failed_attempts=attempts, detail=FROZEN_NOTE),
        )
    if login is not None and login.password_locked:
        lockout = next((r for r in refused if "lockout" in r.status.lower()), None)
        locked_at = lockout.at if lockout else login.modified_at
        return LockStatus(username, True, LockReason.FAILED_PASSWORD, locked_at, Evidence(failed_attempts=attempts))
    if latest is not None and latest_reason is LockReason.UNUSUAL_IP:
        # No flag in UserLogin, yet the person cannot get in from where they are: that is what they ask about.
        evidence = Evidence(
            failed_attempts=attempts, ip=latest.ip or None, location=latest.country, detail=latest.status
        )
        return LockStatus(username, True, LockReason.UNUSUAL_IP, latest.at, evidence)
    return LockStatus(username, False)


def _licence(row: Mapping[str, Any]) -> LicenceInfo:
    """A ``UserLicense``: seats only, since Salesforce does not publish when a contract ends."""
    return LicenceInfo(
        name=str(row.get("Name") or row.get("MasterLabel") or "Salesforce"),
        expires_at=None,
        seats_total=row.get("TotalLicenses"),
        seats_used=row.get("UsedLicenses"),
    )


def _sf_time(value: Any) -> datetime | None:
    """Salesforce writes times as 2026-11-29T08:55:00.000+0000."""
    if not value:
        return None
    text = str(value)
    if len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = f"{text[:-2]}:{text[-2:]}"
    return parse_time(text)


def _error(response: httpx.Response) -> tuple[str, str]:
    """(errorCode, message) from Salesforce's error list, e.g. [{"message": ..., "errorCode": ...}]."""
    try:
        body = response.json()
    except ValueError:
        return "", response.text[:200]
    first = body[0] if isinstance(body, list) and body else body
    if isinstance(first, Mapping):
        return str(first.get("errorCode") or first.get("error") or ""), str(
            first.get("message") or first.get("error_description") or ""
        )[:200]
    return "", str(body)[:200]
