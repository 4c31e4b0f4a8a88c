"""A fake Keycloak realm: the client-credentials token endpoint and the admin REST resources the backend uses.

Users are ``UserRepresentation`` dicts; brute-force status is
``{"numFailures", "disabled", "lastIPFailure", "lastFailure"}`` with the last
failure in epoch milliseconds, and ``"n/a"`` for no address, as Keycloak answers.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from tests.fakes import FakeService, bearer

REALM = "acme"
CLIENT_ID = "unlockbot"
CLIENT_SECRET = "fake-client-secret"
TOKEN_SECONDS = 300
NO_FAILURES = {"numFailures": 0, "disabled": False, "lastIPFailure": "n/a", "lastFailure": 0}


class FakeKeycloak(FakeService):
    """One realm with users, their login failures, and a service-account client."""

    error_body = {"error": "unknown_error"}

    def __init__(self, now: Callable[[], datetime], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.now = now
        self.users: dict[str, dict[str, Any]] = {}
        self.failures: dict[str, dict[str, Any]] = {}
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.action_emails: list[tuple[str, list[str]]] = []
        self.unlocks = 0  # users who went from locked or disabled to neither

    # --- the realm's state, as a test sets it up -------------------------------------------------------------

    def add_user(self, username: str, email: str, first: str = "", last: str = "") -> dict[str, Any]:
        user = {
            "id": str(uuid.uuid4()),
            "username": username.lower(),
            "email": email.lower(),
            "firstName": first,
            "lastName": last,
            "enabled": True,
            "emailVerified": True,
            "createdTimestamp": int(self.now().timestamp() * 1000),
            "attributes": {},
        }
        self.users[user["id"]] = user
        return user

    def user(self, username: str) -> dict[str, Any]:
        return next(u for u in self.users.values() if u["username"] == username.lower())

    def lock_out(self, username: str, at: datetime, ip: str, *, failures: int = 5) -> None:
        """Brute-force detection locks the user out for a while."""
        self.failures[self.user(username)["id"]] = {
            "numFailures": failures,
            "disabled": True,
            "lastIPFailure": ip,
            "lastFailure": int(at.timestamp() * 1000),
        }

    def disable(self, username: str, *, reason: str | None = None) -> None:
        user = self.user(username)
        user["enabled"] = False
        if reason:
            user["attributes"]["disabledReason"] = [reason]

    def is_locked(self, username: str) -> bool:
        user = self.user(username)
        return not user["enabled"] or bool(self.failures.get(user["id"], NO_FAILURES)["disabled"])

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    # --- the API ----------------------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        admin = f"/admin/realms/{REALM}"
        app.router.add_post(f"/realms/{REALM}/protocol/openid-connect/token", self._token)
        app.router.add_get(f"{admin}/users", self._search)
        app.router.add_get(f"{admin}/users/count", self._count)
        app.router.add_put(f"{admin}/users/{{id}}", self._update)
        app.router.add_put(f"{admin}/users/{{id}}/execute-actions-email", self._actions_email)
        app.router.add_get(f"{admin}/attack-detection/brute-force/users/{{id}}", self._brute_force)
        app.router.add_delete(f"{admin}/attack-detection/brute-force/users/{{id}}", self._clear_failures)

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.token_requests += 1
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return web.json_response(
                {"error": "unauthorized_client", "error_description": "Invalid client or Invalid client credentials"},
                status=401,
            )
        token = secrets.token_urlsafe(16)
        self.tokens.add(token)
        return web.json_response(
            {
                "access_token": token,
                "expires_in": TOKEN_SECONDS,
                "refresh_expires_in": 0,
                "token_type": "Bearer",
                "not-before-policy": 0,
                "scope": "profile email",
            }
        )

    def _refused(self, request: web.Request) -> web.Response | None:
        if bearer(request) not in self.tokens:
            return web.json_response({"error": "HTTP 401 Unauthorized"}, status=401)
        return None

    def _found(self, request: web.Request) -> dict[str, Any] | None:
        return self.users.get(request.match_info["id"])

    async def _search(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused:
            return refused
        exact = request.query.get("exact") == "true"
        found = []
        for user in self.users.values():
            matches = True
            for name in ("username", "email"):
                wanted = request.query.get(name)
                if wanted is None:
                    continue
                have = str(user[name])
                matches = matches and (have == wanted.lower() if exact else wanted.lower() in have)
            if matches:
                found.append(user)
        return web.json_response(found)

    async def _count(self, request: web.Request) -> web.Response:
        return self._refused(request) or web.json_response(len(self.users))

    async def _update(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused:
            return refused
        user = self._found(request)
        if user is None:
            return web.json_response({"error": "User not found"}, status=404)
        was_locked = self.is_locked(user["username"])
        body = await request.json()
        if "enabled" in body:
            user["enabled"] = bool(body["enabled"])
            if user["enabled"]:
                user["attributes"].pop("disabledReason", None)
        if was_locked and not self.is_locked(user["username"]):
            self.unlocks += 1
        return web.Response(status=204)

    async def _actions_email(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused:
            return refused
        user = self._found(request)
        if user is None:
            return web.json_response({"error": "User not found"}, status=404)
        if not user.get("email"):
            return web.json_response({"errorMessage": "User email missing"}, status=400)
        self.action_emails.append((user["id"], list(await request.json())))
        return web.Response(status=204)

    async def _brute_force(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused:
            return refused
        if self._found(request) is None:
            return web.json_response({"error": "User not found"}, status=404)
        return web.json_response(self.failures.get(request.match_info["id"], NO_FAILURES))

    async def _clear_failures(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused:
            return refused
        user = self._found(request)
        if user is None:
            return web.json_response({"error": "User not found"}, status=404)
        was_locked = self.is_locked(user["username"])
        self.failures.pop(user["id"], None)
        if was_locked and not self.is_locked(user["username"]):
            self.unlocks += 1
        return web.Response(status=204)


def keycloak_settings(fake: FakeKeycloak) -> dict[str, Any]:
    return {"base_url": fake.url, "realm": REALM, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
