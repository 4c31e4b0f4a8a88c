"""Local fakes of the CRM vendors' HTTP APIs, for the real client code to talk to over 127.0.0.1.

``FakeService`` runs an aiohttp application on a free loopback port (HTTPS
when given a certificate) and has the switches the outage tests need: answer
500, hang, refuse connections, come back on the same port, or answer the next
requests with a given status and body. Each vendor fake (``salesforce``,
``keycloak``, ``rest_crm``) keeps its state in plain Python and serves the
documented JSON shapes, error bodies and status codes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# up: answers; error: answers error_status; hang: never acts nor answers; late: acts, then never answers.
Mode = Literal["up", "error", "hang", "late"]
# Short enough that no test waits long, long enough that a loaded machine still answers in time.
TEST_TIMEOUT = 1.0
TEST_RESILIENCE = {"retries": 1, "retry_backoff_seconds": 0.001, "failure_threshold": 5, "cool_down_seconds": 30}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own CA, and its key, as PEM files in ``folder``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unlockbot test CRM")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "crm-cert.pem", folder / "crm-key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


class FakeService:
    """An HTTP(S) server on 127.0.0.1 with outage switches; subclasses add the vendor's routes."""

    error_status = 500
    error_body: Any = {"error": "internal server error"}

    def __init__(self, *, certificate: tuple[Path, Path] | None = None) -> None:
        self.mode: Mode = "up"
        self._only = ""
        self.requests: list[tuple[str, str]] = []
        self._scripted: list[tuple[str, int, Any]] = []
        self._ssl: ssl.SSLContext | None = None
        if certificate is not None:
            self._ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._ssl.load_cert_chain(*certificate)
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"{'https' if self._ssl else 'http'}://127.0.0.1:{self.port}"

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def answer_next(self, status: int, body: Any, *, only: str = "") -> None:
        """The next request (whose "METHOD /path" contains ``only``) gets this answer instead of the real one."""
        self._scripted.append((only, status, body))

    def set_mode(self, mode: Mode, *, only: str = "") -> None:
        """Switch how the fake answers; with ``only``, just for requests whose "METHOD /path" contains it."""
        self.mode = mode
        self._only = only
        if mode not in ("hang", "late"):
            self._release.set()
            self._release = asyncio.Event()

    def calls(self, method: str, fragment: str = "") -> int:
        return sum(1 for m, path in self.requests if m == method and fragment in path)

    @web.middleware
    async def _switches(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        line = f"{request.method} {request.path}"
        for number, (only, status, body) in enumerate(self._scripted):
            if only in line:
                del self._scripted[number]
                return web.json_response(body, status=status)
        if self.mode != "up" and self._only not in line:
            return await handler(request)
        if self.mode == "error":
            return web.json_response(self.error_body, status=self.error_status)
        if self.mode == "hang":
            # Never acts: when released (the fake comes back or stops) it answers 503 to a client long gone.
            await self._release.wait()
            return web.json_response(self.error_body, status=503)
        if self.mode == "late":
            # Acts at once, but the answer only leaves when released: the client gives up not knowing.
            response = await handler(request)
            await self._release.wait()
            return response
        return await handler(request)

    async def start(self) -> None:
        app = web.Application(middlewares=[self._switches])
        self.routes(app)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self._ssl, reuse_address=True)
        await site.start()
        if self.port == 0:
            server = site._server
            assert isinstance(server, asyncio.base_events.Server)
            self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop every connection: clients now have their connections refused."""
        self._release.set()
        self._release = asyncio.Event()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def come_back(self) -> None:
        """Listen again on the same port, with the state the fake had."""
        self.set_mode("up")
        await self.start()


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header.removeprefix("Bearer ") if header.startswith("Bearer ") else None


def iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


Fake = TypeVar("Fake", bound=FakeService)


@asynccontextmanager
async def serving(fake: Fake) -> AsyncIterator[Fake]:
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def crm_section(backend: str, settings: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A ``[crm]`` table for one backend with the test time-out and resilience, as ``Settings`` takes it."""
    section: dict[str, Any] = {
        "backend": backend,
        "timeout_seconds": TEST_TIMEOUT,
        "resilience": dict(TEST_RESILIENCE),
        backend: settings,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(section.get(key), dict):
            section[key] = {**section[key], **value}
        else:
            section[key] = value
    return section
