"""A fake in-house CRM that serves the JSON admin API of ``docs/crm-rest-openapi.yaml``.

Its answers can be reshaped (``account_shape``, ``lock_shape``) to stand for a
CRM whose field names differ, which ``[crm.rest.fields]`` then maps; repeated
``Idempotency-Key`` headers are answered without acting again, as the document asks.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.fakes import FakeService, iso

TOKEN = "fake-rest-token"
Shape = Callable[[dict[str, Any]], dict[str, Any]]


def _same(document: dict[str, Any]) -> dict[str, Any]:
    return document


class FakeRestCrm(FakeService):
    """Accounts with locks, evidence, licences and trusted addresses, plus system facts."""

    error_body = {"message": "internal error"}

    def __init__(self, now: Callable[[], datetime], *, auth_header: str = "Authorization", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.now = now
        self.auth_header = auth_header
        self.accounts: dict[str, dict[str, Any]] = {}
        self.licences: dict[str, dict[str, Any]] = {}  # by username: the licence each account uses
        self.last_sign_in: dict[str, datetime] = {}  # by username; none: never signed in
        self.trusted: dict[str, set[str]] = {}
        self.keys: set[str] = set()
        self.unlocks = 0
        self.resets: list[str] = []
        self.lock_log: list[dict[str, Any]] = []  # every lock, as the CRM's security log keeps it
        self.system: dict[str, Any] = {"maintenance": [], "incidents": [], "writes_paused": False}
        self.account_shape: Shape = _same
        self.lock_shape: Shape = _same

    # --- the CRM's state, as a test sets it up ---------------------------------------------------------------

    def add_account(self, username: str, email: str, display_name: str) -> dict[str, Any]:
        account = {
            "username": username,
            "email": email,
            "display_name": display_name,
            "active": True,
            "locked": False,
            "reason": None,
            "locked_at": None,
            "evidence": {},
        }
        self.accounts[username] = account
        return account

    def lock(self, username: str, reason: str, at: datetime, evidence: dict[str, Any] | None = None) -> None:
        account = self.accounts[username]
        account.update(locked=True, reason=reason, locked_at=iso(at), evidence=evidence or {})
        self.lock_log.append(
            {"id": f"lk-{len(self.lock_log) + 1}", "username": username, "reason": reason, "locked_at": iso(at)}
        )

    # --- the API ----------------------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/accounts", self._find)
        app.router.add_get("/accounts/{username}/lock", self._lock)
        app.router.add_post("/accounts/{username}/unlock", self._unlock)
        app.router.add_post("/accounts/{username}/password-reset", self._reset)
        app.router.add_post("/accounts/{username}/trusted-ips", self._trust)
        app.router.add_get("/accounts/{username}/licence", self._licence)
        app.router.add_get("/licences", self._licences)
        app.router.add_get("/licences/{licence}/users", self._seat_holders)
        app.router.add_get("/system/status", self._system)
        app.router.add_get("/locks/count", self._count)
        app.router.add_get("/locks/events", self._events)
        app.router.add_get("/health", self._health)

    def _refused(self, request: web.Request) -> web.Response | None:
        expected = f"Bearer {TOKEN}" if self.auth_header == "Authorization" else TOKEN
        if request.headers.get(self.auth_header) != expected:
            return web.json_response({"message": "missing or wrong credentials"}, status=401)
        return None

    def _account(self, request: web.Request) -> dict[str, Any] | web.Response:
        refused = self._refused(request)
        if refused:
            return refused
        account = self.accounts.get(request.match_info["username"])
        if account is None:
            return web.json_response({"message": "no such account"}, status=404)
        return account

    async def _find(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused:
            return refused
        query = request.query.get("query", "").lower()
        for account in self.accounts.values():
            if query in (account["username"].lower(), account["email"].lower()):
                fields = ("username", "email", "display_name", "active")
                return web.json_response(self.account_shape({k: account[k] for k in fields}))
        return web.json_response({"message": "no such account"}, status=404)

    async def _lock(self, request: web.Request) -> web.Response:
        account = self._account(request)
        if isinstance(account, web.Response):
            return account
        fields = ("locked", "reason", "locked_at", "evidence")
        return web.json_response(self.lock_shape({k: account[k] for k in fields}))

    def _first_time(self, request: web.Request) -> bool:
        key = request.headers.get("Idempotency-Key")
        if not key or key in self.keys:
            return False
        self.keys.add(key)
        return True

    async def _unlock(self, request: web.Request) -> web.Response:
        account = self._account(request)
        if isinstance(account, web.Response):
            return account
        if not request.headers.get("Idempotency-Key"):
            return web.json_response({"message": "Idempotency-Key is required"}, status=400)
        if self._first_time(request) and account["locked"]:
            account.update(locked=False, reason=None, locked_at=None, evidence={})
            self.unlocks += 1
        return web.Response(status=204)

    async def _reset(self, request: web.Request) -> web.Response:
        account = self._account(request)
        if isinstance(account, web.Response):
            return account
        if self._first_time(request):
            self.resets.append(account["username"])
        local, _, domain = account["email"].partition("@")
        return web.json_response({"sent_to": f"{local[:1]}***@{domain}"})

    async def _trust(self, request: web.Request) -> web.Response:
        account = self._account(request)
        if isinstance(account, web.Response):
            return account
        body = await request.json()
        self.trusted.setdefault(account["username"], set()).add(str(body["ip"]))
        return web.Response(status=204)

    async def _licence(self, request: web.Request) -> web.Response:
        account = self._account(request)
        if isinstance(account, web.Response):
            return account
        licence = self.licences.get(account["username"])
        return web.json_response(licence) if licence else web.Response(status=204)

    async def _licences(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused:
            return refused
        named = {str(licence.get("name")): licence for licence in self.licences.values()}
        return web.json_response([named[name] for name in sorted(named)])

    async def _seat_holders(self, request: web.Request) -> web.Response:
        """The active accounts on a licence, the longest without a sign-in first (never signed in: first of all)."""
        refused = self._refused(request)
        if refused:
            return refused
        name = request.match_info["licence"]
        if name not in {licence.get("name") for licence in self.licences.values()}:
            return web.json_response({"message": "no such licence"}, status=404)
        if request.query.get("order") != "last_sign_in":
            return web.json_response({"message": "order must be last_sign_in"}, status=400)
        holders = [
            account
            for username, account in self.accounts.items()
            if account["active"] and self.licences.get(username, {}).get("name") == name
        ]
        never = datetime.min.replace(tzinfo=UTC)
        holders.sort(key=lambda account: (self.last_sign_in.get(account["username"], never), account["username"]))
        limit = int(request.query.get("limit", "10"))
        return web.json_response(
            [
                {
                    "username": account["username"],
                    "display_name": account["display_name"],
                    "last_sign_in_at": iso(at) if (at := self.last_sign_in.get(account["username"])) else None,
                }
                for account in holders[:limit]
            ]
        )

    async def _system(self, request: web.Request) -> web.Response:
        return self._refused(request) or web.json_response(self.system)

    async def _count(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused:
            return refused
        since = datetime.fromisoformat(request.query["since"])
        count = sum(
            1
            for account in self.accounts.values()
            if account["locked"] and account["locked_at"] and datetime.fromisoformat(account["locked_at"]) >= since
        )
        return web.json_response({"count": count})

    async def _events(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused:
            return refused
        since = datetime.fromisoformat(request.query["since"])
        events = [event for event in self.lock_log if datetime.fromisoformat(event["locked_at"]) >= since]
        return web.json_response({"events": events})

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})


def rest_settings(fake: FakeRestCrm, **extra: Any) -> dict[str, Any]:
    return {"base_url": fake.url, "auth": "bearer", "token": TOKEN, **extra}
