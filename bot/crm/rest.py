"""The ``rest`` backend: an in-house CRM behind a JSON admin API, its paths and field names mapped in config.

``docs/crm-rest-openapi.yaml`` describes what the CRM must answer; what every
HTTP backend shares is in ``bot.crm.http``. Beyond its own words, a CRM may
give structured facts that replies put into each locale's sentences: a flagged
action's ``kind``, ``records`` and ``record_type``, and a ``place``
(``country``, ``city``, ``city_names``) for a sign-in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from bot.config import RestCrmSettings
from bot.crm.base import (
    Account,
    ActionKind,
    Capability,
    Evidence,
    FlaggedAction,
    Incident,
    LicenceInfo,
    LockEvent,
    LockReason,
    LockStatus,
    LoginAttempt,
    MaintenanceWindow,
    PasswordReset,
    Place,
    Reachability,
    RecordType,
    SeatHolder,
    SystemStatus,
)
from bot.crm.http import http_client, parse_time, read_json, required_time, send
from bot.errors import AccountNotFound, CrmError, CrmUnsupported

SYSTEM = "the CRM's REST API"
T = TypeVar("T")


def _pick(document: Any, dotted: str) -> Any:
    """The value at a dotted field name (``data.login``), or None when any step is missing."""
    value = document
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, Mapping):
        for key in ("message", "error_description", "error", "detail"):
            if body.get(key):
                return str(body[key])[:200]
    return str(body)[:200]


def _place(data: Any) -> Place | None:
    """A ``place`` object; ``None`` when there is none (the location text is then read instead)."""
    if not isinstance(data, Mapping):
        return None
    names = data.get("city_names")
    return Place(
        country=str(data["country"]).upper() if data.get("country") else None,
        city=str(data["city"]) if data.get("city") else None,
        city_names={str(k): str(v) for k, v in names.items()} if isinstance(names, Mapping) else {},
    )


def _attempt(data: Mapping[str, Any]) -> LoginAttempt:
    at = required_time(data.get("at"), "at")
    return LoginAttempt(
        at,
        str(data.get("ip") or ""),
        bool(data.get("success", False)),
        data.get("location"),
        _place(data.get("place")),
    )


def _flagged(data: Mapping[str, Any]) -> FlaggedAction:
    records = data.get("records")
    return FlaggedAction(
        required_time(data.get("at"), "flagged_action.at"),
        str(data["action"]),
        str(data.get("detail") or ""),
        kind=ActionKind.read(str(data.get("kind") or data["action"])),
        records=int(records) if records is not None else None,
        record_type=RecordType.read(data.get("record_type")),
    )


def _licence(data: Mapping[str, Any]) -> LicenceInfo:
    return LicenceInfo(
        name=str(data["name"]),
        expires_at=parse_time(data.get("expires_at")),
        seats_total=data.get("seats_total"),
        seats_used=data.get("seats_used"),
        trial=bool(data.get("trial", False)),
        usage_cap=data.get("usage_cap"),
        usage_used=data.get("usage_used"),
    )


def _seat_holder(data: Mapping[str, Any]) -> SeatHolder:
    username = str(data["username"])
    return SeatHolder(username, str(data.get("display_name") or username), parse_time(data.get("last_sign_in_at")))


def _listed(parse: Callable[[Mapping[str, Any]], T]) -> Callable[[Any], list[T]]:
    """A parser of a JSON array of objects, each read by ``parse``."""

    def read(data: Any) -> list[T]:
        if not isinstance(data, list):
            raise TypeError(f"expected a list, got {type(data).__name__}")
        return [parse(item) for item in data]

    return read


def _window(data: Mapping[str, Any]) -> MaintenanceWindow:
    starts, ends = required_time(data.get("starts_at"), "starts_at"), required_time(data.get("ends_at"), "ends_at")
    return MaintenanceWindow(starts, ends, str(data.get("note") or ""))


def _incident(data: Mapping[str, Any]) -> Incident:
    started = required_time(data.get("started_at"), "started_at")
    return Incident(
        str(data["id"]), str(data["title"]), started, str(data["status"]), parse_time(data.get("resolved_at"))
    )


def _evidence(data: Mapping[str, Any]) -> Evidence:
    flagged = data.get("flagged_action")
    return Evidence(
        failed_attempts=tuple(_attempt(a) for a in data.get("failed_attempts") or ()),
        flagged_action=_flagged(flagged) if flagged else None,
        licence=_licence(data["licence"]) if data.get("licence") else None,
        ip=data.get("ip"),
        location=data.get("location"),
        operations=data.get("operations"),
        window_minutes=data.get("window_minutes"),
        lifts_at=parse_time(data.get("lifts_at")),
        maintenance=_window(data["maintenance"]) if data.get("maintenance") else None,
        incident=_incident(data["incident"]) if data.get("incident") else None,
        detail=str(data.get("detail") or ""),
        place=_place(data.get("place")),
    )


class RestCrm:
    """An in-house CRM's JSON admin API; what it supports is what ``[crm.rest] capabilities`` says."""

    name = "rest"

    def __init__(self, settings: RestCrmSettings, *, timeout: float) -> None:
        self._settings = settings
        self._paths = settings.paths
        self._fields = settings.fields
        self._capabilities = frozenset(Capability(c) for c in settings.capabilities)
        headers = {"Accept": "application/json"}
        token = settings.token.get_secret_value() if settings.token else ""
        if settings.auth == "bearer":
            headers["Authorization"] = f"Bearer {token}"
        elif settings.auth == "header":
            headers[settings.header_name] = token
        self._client = http_client(settings.base_url, timeout=timeout, ca_file=settings.ca_file, headers=headers)

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self._capabilities

    def _require(self, capability: Capability) -> None:
        if capability not in self._capabilities:
            raise CrmUnsupported(capability.value)

    def _url(self, template: str, **values: str) -> str:
        for name, value in values.items():
            template = template.replace("{" + name + "}", quote(value, safe=""))
        return template

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response | None:
        """The answer, or None for a 404; refusals become our errors."""
        response = await send(self._client, method, url, system=SYSTEM, **kwargs)
        if response.is_success:
            return response
        if response.status_code == httpx.codes.NOT_FOUND:
            return None
        if response.status_code in (httpx.codes.UNAUTHORIZED, httpx.codes.FORBIDDEN):
            raise CrmError(f"{SYSTEM} refused our credentials ({response.status_code}): {_message(response)}")
        raise CrmError(f"{SYSTEM} answered {response.status_code}: {_message(response)}")

    async def _about(self, username: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """A call about one account: a 404 means the CRM has no such account."""
        response = await self._send(method, url, **kwargs)
        if response is None:
            raise AccountNotFound(username)
        return response

    def _body(self, response: httpx.Response) -> Any:
        if response.status_code == httpx.codes.NO_CONTENT or not response.content:
            return None
        return read_json(response, system=SYSTEM)

    def _read(self, what: str, parse: Callable[[Any], T], data: Any) -> T:
        try:
            return parse(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise CrmError(f"{SYSTEM} answered {what} in a shape we cannot read: {exc!r}") from exc

    def _account(self, data: Any) -> Account:
        fields = self._fields
        username = _pick(data, fields.username)
        if not username:
            raise ValueError(f"no {fields.username!r} field")
        active = _pick(data, fields.active)
        return Account(
            username=str(username),
            email=str(_pick(data, fields.email) or ""),
            display_name=str(_pick(data, fields.display_name) or username),
            active=True if active is None else bool(active),
        )

    def _reason(self, code: Any) -> LockReason:
        code = str(code or "")
        mapped = self._settings.reasons.get(code, code)
        return LockReason(mapped) if mapped in set(LockReason) else LockReason.UNKNOWN

    def _lock(self, username: str, data: Any) -> LockStatus:
        fields = self._fields
        if not _pick(data, fields.locked):
            return LockStatus(username=username, locked=False)
        return LockStatus(
            username=username,
            locked=True,
            reason=self._reason(_pick(data, fields.reason)),
            locked_at=parse_time(_pick(data, fields.locked_at)),
            evidence=_evidence(_pick(data, fields.evidence) or {}),
        )

    async def find_account(self, query: str) -> Account | None:
        response = await self._send("GET", self._url(self._paths.find_account, query=query))
        data = self._body(response) if response is not None else None
        if isinstance(data, list):
            data = data[0] if data else None
        if not data:
            return None
        return self._read("an account", self._account, data)

    async def lock_status(self, username: str) -> LockStatus:
        self._require(Capability.LOCK_STATUS)
        response = await self._about(username, "GET", self._url(self._paths.lock_status, username=username))
        return self._read("a lock status", lambda d: self._lock(username, d), self._body(response))

    async def unlock(self, username: str, *, idempotency_key: str) -> None:
        self._require(Capability.UNLOCK)
        await self._about(
            username,
            "POST",
            self._url(self._paths.unlock, username=username),
            headers={"Idempotency-Key": idempotency_key},
        )

    async def reset_password(self, username: str, *, idempotency_key: str) -> PasswordReset:
        self._require(Capability.RESET_PASSWORD)
        response = await self._about(
            username,
            "POST",
            self._url(self._paths.reset_password, username=username),
            headers={"Idempotency-Key": idempotency_key},
        )
        sent_to = _pick(self._body(response), self._fields.sent_to)
        return PasswordReset(sent_to=str(sent_to) if sent_to else None)

    async def add_trusted_ip(self, username: str, ip: str, *, note: str) -> None:
        self._require(Capability.TRUSTED_IPS)
        await self._about(
            username,
            "POST",
            self._url(self._paths.add_trusted_ip, username=username),
            json={"ip": ip, "note": note},
        )

    async def licence(self, username: str) -> LicenceInfo | None:
        self._require(Capability.LICENCES)
        response = await self._about(username, "GET", self._url(self._paths.licence, username=username))
        data = self._body(response)
        if not data:
            return None
        return self._read("a licence", _licence, data)

    async def all_licences(self) -> list[LicenceInfo]:
        self._require(Capability.LICENCE_LIST)
        response = await self._send("GET", self._paths.licences)
        if response is None:
            raise CrmError(f"{SYSTEM} has no licence list at {self._paths.licences}")
        return self._read("the licences", _listed(_licence), self._body(response) or [])

    async def inactive_users(self, licence: str, *, limit: int) -> list[SeatHolder]:
        self._require(Capability.SEAT_USAGE)
        url = self._url(self._paths.inactive_users, licence=licence, limit=str(limit))
        response = await self._send("GET", url)
        if response is None:
            return []  # the CRM knows no such licence: nobody holds its seats
        holders = self._read("the seat holders", _listed(_seat_holder), self._body(response) or [])
        return holders[:limit]

    async def system_status(self) -> SystemStatus:
        self._require(Capability.SYSTEM_STATUS)
        response = await self._send("GET", self._paths.system_status)
        if response is None:
            raise CrmError(f"{SYSTEM} has no system status at {self._paths.system_status}")

        def parse(data: Mapping[str, Any]) -> SystemStatus:
            channels = data.get("inbound_channels")
            return SystemStatus(
                maintenance=tuple(_window(w) for w in data.get("maintenance") or ()),
                incidents=tuple(_incident(i) for i in data.get("incidents") or ()),
                last_backup_at=parse_time(data.get("last_backup_at")),
                writes_paused=data.get("writes_paused"),
                inbound_channels={str(k): bool(v) for k, v in channels.items()} if channels is not None else None,
            )

        return self._read("the system status", parse, self._body(response))

    async def locks_since(self, since: datetime) -> int:
        self._require(Capability.LOCK_STATISTICS)
        url = self._url(self._paths.locks_since, since=since.astimezone(UTC).isoformat())
        response = await self._send("GET", url)
        if response is None:
            raise CrmError(f"{SYSTEM} has no lock count at {self._paths.locks_since}")
        return self._read("a lock count", lambda d: int(_pick(d, self._fields.count)), self._body(response))

    async def lock_events(self, since: datetime) -> list[LockEvent]:
        self._require(Capability.LOCK_EVENTS)
        url = self._url(self._paths.lock_events, since=since.astimezone(UTC).isoformat())
        response = await self._send("GET", url)
        if response is None:
            raise CrmError(f"{SYSTEM} has no lock events at {self._paths.lock_events}")
        fields = self._fields

        def event(data: Mapping[str, Any]) -> LockEvent:
            return LockEvent(
                id=str(data["id"]),
                username=str(_pick(data, fields.username)),
                reason=self._reason(_pick(data, fields.reason)),
                at=required_time(_pick(data, fields.locked_at), fields.locked_at),
            )

        def parse(body: Any) -> list[LockEvent]:
            events = body.get("events") if isinstance(body, Mapping) else body
            return sorted(_listed(event)(events), key=lambda e: e.at)

        return self._read("lock events", parse, self._body(response))

    async def probe(self) -> Reachability:
        started = time.perf_counter()
        try:
            response = await self._send("GET", self._paths.probe)
        except CrmError as exc:
            return Reachability(False, None, str(exc))
        if response is None:
            return Reachability(False, None, f"{SYSTEM} has no health check at {self._paths.probe}")
        return Reachability(True, (time.perf_counter() - started) * 1000)

    async def aclose(self) -> None:
        await self._client.aclose()
