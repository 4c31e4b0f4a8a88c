"""A fake Salesforce org over HTTPS: the OAuth token endpoint and the REST resources the backend uses.

It answers the SOQL the backend sends (``User``, ``UserLogin``, ``LoginHistory``,
``UserLicense``, ``COUNT()``) with a small evaluator of ``=``/``>=`` conditions
on fields or parents' fields (``Profile.UserLicense.Name``) joined by AND or OR,
ordered with SOQL's NULLS FIRST / LAST, in Salesforce's shapes: query results
with ``totalSize``, ``done`` and ``records`` (each with ``attributes``), times as
``2026-11-29T08:55:00.000+0000``, errors as ``[{"message": ..., "errorCode": ...}]``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.fakes import FakeService, bearer

API = "/services/data/v62.0"
CLIENT_ID = "3MVG9unlockbot"
CLIENT_SECRET = "fake-consumer-secret"


def sf_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def sf_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response([{"message": message, "errorCode": code}], status=status)


@dataclass
class SfUser:
    id: str
    username: str
    email: str
    name: str
    active: bool = True
    licence_id: str | None = None
    last_login: datetime | None = None


@dataclass
class SfLogin:
    id: str
    user_id: str
    password_locked: bool = False
    frozen: bool = False
    modified: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))


@dataclass
class SfLoginRow:
    user_id: str
    at: datetime
    ip: str
    status: str
    country: str | None = None


_CONDITION = re.compile(r"([\w.]+)\s*(=|>=|<=)\s*('(?:\\.|[^'\\])*'|true|false|[0-9T:\-Z.+]+)|\b(AND|OR)\b")
_QUERY = re.compile(
    r"^SELECT (?P<fields>.+?) FROM (?P<object>\w+)(?: WHERE (?P<where>.+?))?"
    r"(?: ORDER BY (?P<order>\w+) (?P<direction>ASC|DESC)(?: NULLS (?P<nulls>FIRST|LAST))?)?(?: LIMIT (?P<limit>\d+))?$"
)


def _literal(text: str) -> Any:
    if text.startswith("'"):
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    if text in ("true", "false"):
        return text == "true"
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _matches(row: dict[str, Any], where: str | None) -> bool:
    """Conditions joined by AND bind tighter than OR, as in SOQL without parentheses."""
    if not where:
        return True
    any_group, group = False, True
    for match in _CONDITION.finditer(where):
        name, operator, value, joiner = match.groups()
        if joiner == "OR":
            any_group, group = any_group or group, True
            continue
        if joiner == "AND":
            continue
        have, want = row.get(name), _literal(value)
        if isinstance(have, str) and isinstance(want, str):
            have, want = have.lower(), want.lower()
        if operator == "=":
            group = group and have == want
        elif operator == ">=":
            group = group and have is not None and have >= want
        else:
            group = group and have is not None and have <= want
    return any_group or group


def _ordered(rows: list[dict[str, Any]], field: str, *, descending: bool, nulls: str | None) -> list[dict[str, Any]]:
    """SOQL's ORDER BY: nulls first when ascending and last when descending, unless NULLS says otherwise."""
    empty = [row for row in rows if row.get(field) is None]
    full = sorted((row for row in rows if row.get(field) is not None), key=lambda row: row[field], reverse=descending)
    first = nulls == "FIRST" if nulls else not descending
    return empty + full if first else full + empty


class FakeSalesforce(FakeService):
    """One org: users, their UserLogin flags, their LoginHistory, and licences."""

    error_body = [{"message": "An unexpected error occurred.", "errorCode": "UNKNOWN_EXCEPTION"}]

    def __init__(self, now: Callable[[], datetime], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.now = now
        self.users: dict[str, SfUser] = {}
        self.logins: dict[str, SfLogin] = {}
        self.history: list[SfLoginRow] = []
        self.licences: dict[str, dict[str, Any]] = {}
        self.tokens: set[str] = set()
        self.sign_ins = 0
        self.password_resets: list[str] = []
        self.unlocks = 0  # UserLogin records that went from locked or frozen to neither
        self._ids = 0

    def _id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids:015d}"

    # --- the org's state, as a test sets it up ---------------------------------------------------------------

    def add_licence(self, name: str, total: int, used: int) -> str:
        licence_id = self._id("100")
        self.licences[licence_id] = {"Name": name, "TotalLicenses": total, "UsedLicenses": used, "Status": "Active"}
        return licence_id

    def add_user(self, username: str, email: str, name: str, *, licence_id: str | None = None) -> SfUser:
        user = SfUser(self._id("005"), username, email, name, licence_id=licence_id)
        self.users[user.id] = user
        self.logins[user.id] = SfLogin(self._id("060"), user.id, modified=self.now() - timedelta(days=30))
        return user

    def user(self, username: str) -> SfUser:
        return next(u for u in self.users.values() if u.username.lower() == username.lower())

    def sign_in(self, username: str, at: datetime, ip: str, status: str, country: str | None = None) -> None:
        self.history.append(SfLoginRow(self.user(username).id, at, ip, status, country))

    def lock_out(self, username: str, at: datetime, ip: str, *, failures: int = 3) -> None:
        """Wrong passwords until Salesforce locks the user out."""
        for n in range(failures - 1):
            self.sign_in(username, at - timedelta(minutes=failures - n), ip, "Invalid Password", "CN")
        self.sign_in(username, at, ip, "Password Lockout", "CN")
        login = self.logins[self.user(username).id]
        login.password_locked, login.modified = True, at

    def freeze(self, username: str, at: datetime) -> None:
        login = self.logins[self.user(username).id]
        login.frozen, login.modified = True, at

    def expire_sessions(self) -> None:
        self.tokens.clear()

    # --- the API ----------------------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/services/oauth2/token", self._token)
        app.router.add_get(f"{API}/query", self._query)
        app.router.add_get(f"{API}/limits", self._limits)
        app.router.add_patch(f"{API}/sobjects/UserLogin/{{id}}", self._patch_login)
        app.router.add_delete(f"{API}/sobjects/User/{{id}}/password", self._reset_password)
        app.router.add_get(f"{API}/sobjects/UserLicense/{{id}}", self._licence)

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return web.json_response(
                {"error": "invalid_client", "error_description": "invalid client credentials"}, status=400
            )
        token = secrets.token_urlsafe(16)
        self.tokens.add(token)
        self.sign_ins += 1
        return web.json_response(
            {
                "access_token": token,
                "instance_url": self.url,
                "id": f"{self.url}/id/00D000000000001/005000000000001",
                "token_type": "Bearer",
                "issued_at": str(int(self.now().timestamp() * 1000)),
                "signature": "c2lnbmF0dXJl",
            }
        )

    def _refused(self, request: web.Request) -> web.Response | None:
        if bearer(request) not in self.tokens:
            return sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
        return None

    def _rows(self, object_name: str) -> list[dict[str, Any]]:
        if object_name == "User":
            return [
                {
                    "Id": u.id,
                    "Username": u.username,
                    "Email": u.email,
                    "Name": u.name,
                    "IsActive": u.active,
                    "LastLoginDate": u.last_login,
                    "Profile.UserLicenseId": u.licence_id,
                    "Profile.UserLicense.Name": self.licences.get(u.licence_id or "", {}).get("Name"),
                }
                for u in self.users.values()
            ]
        if object_name == "UserLicense":
            return [{"Id": licence_id, **licence} for licence_id, licence in self.licences.items()]
        if object_name == "UserLogin":
            return [
                {
                    "Id": login.id,
                    "UserId": login.user_id,
                    "IsPasswordLocked": login.password_locked,
                    "IsFrozen": login.frozen,
                    "LastModifiedDate": login.modified,
                }
                for login in self.logins.values()
            ]
        if object_name == "LoginHistory":
            return [
                {
                    "Id": f"0Ya{n:015d}",
                    "UserId": row.user_id,
                    "LoginTime": row.at,
                    "SourceIp": row.ip,
                    "Status": row.status,
                    "CountryIso": row.country,
                }
                for n, row in enumerate(self.history)
            ]
        raise KeyError(object_name)

    async def _query(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused:
            return refused
        soql = request.query.get("q", "")
        parsed = _QUERY.match(soql)
        if parsed is None:
            return sf_error(400, "MALFORMED_QUERY", f"unexpected token in: {soql}")
        try:
            rows = [row for row in self._rows(parsed["object"]) if _matches(row, parsed["where"])]
        except KeyError:
            return sf_error(400, "INVALID_TYPE", f"sObject type '{parsed['object']}' is not supported.")
        if parsed["order"]:
            rows = _ordered(rows, parsed["order"], descending=parsed["direction"] == "DESC", nulls=parsed["nulls"])
        if parsed["limit"]:
            rows = rows[: int(parsed["limit"])]
        if parsed["fields"].strip() == "COUNT()":
            return web.json_response({"totalSize": len(rows), "done": True, "records": []})
        fields = [f.strip() for f in parsed["fields"].split(",")]
        records = [self._record(parsed["object"], row, fields) for row in rows]
        return web.json_response({"totalSize": len(records), "done": True, "records": records})

    def _record(self, object_name: str, row: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        record: dict[str, Any] = {
            "attributes": {"type": object_name, "url": f"{API}/sobjects/{object_name}/{row['Id']}"}
        }
        for name in fields:
            value = row.get(name)
            value = sf_time(value) if isinstance(value, datetime) else value
            if "." in name:
                parent, child = name.split(".", 1)
                record.setdefault(parent, {"attributes": {"type": parent}})[child] = value
            else:
                record[name] = value
        return record

    async def _limits(self, request: web.Request) -> web.Response:
        return self._refused(request) or web.json_response({"DailyApiRequests": {"Max": 15000, "Remaining": 14990}})

    async def _patch_login(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused:
            return refused
        login = next((item for item in self.logins.values() if item.id == request.match_info["id"]), None)
        if login is None:
            return sf_error(404, "NOT_FOUND", "The requested resource does not exist")
        body = await request.json()
        if body.get("IsPasswordLocked") is True:
            return sf_error(400, "INVALID_FIELD_FOR_INSERT_UPDATE", "IsPasswordLocked can only be set to false")
        was_locked = login.password_locked or login.frozen
        if body.get("IsPasswordLocked") is False:
            login.password_locked = False
        if "IsFrozen" in body:
            login.frozen = bool(body["IsFrozen"])
        login.modified = self.now()
        if was_locked and not (login.password_locked or login.frozen):
            self.unlocks += 1
        return web.Response(status=204)

    async def _reset_password(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused:
            return refused
        user = self.users.get(request.match_info["id"])
        if user is None:
            return sf_error(404, "NOT_FOUND", "The requested resource does not exist")
        self.password_resets.append(user.id)
        return web.json_response({"NewPassword": secrets.token_urlsafe(9)})

    async def _licence(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused:
            return refused
        licence = self.licences.get(request.match_info["id"])
        if licence is None:
            return sf_error(404, "NOT_FOUND", "The requested resource does not exist")
        record = {"attributes": {"type": "UserLicense"}, "Id": request.match_info["id"], **licence}
        return web.json_response(record)


def salesforce_settings(fake: FakeSalesforce, ca_file: Path) -> dict[str, Any]:
    return {
        "instance_url": fake.url,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "api_version": API.rsplit("v", 1)[1],
        "ca_file": str(ca_file),
    }
