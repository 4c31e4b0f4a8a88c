"""The audit trail: every state change is one append-only event, signed and chained.

Each event carries the hash of the one before it, and its own hash is an
HMAC-SHA256 under the audit key (``[security] audit_key``), which lives
outside the database. So an edited, inserted or deleted event breaks the
chain where it happened, and nobody without the key can rewrite the chain to
hide it. A cut at the end (the newest events deleted) leaves a good chain
behind; the anchor catches that: a copy of the newest event's id and hash
kept outside the database (``bot.requests.anchor``), or given by the operator.

Events written before the key existed have no ``key_id`` and a plain SHA-256
hash; they are checked that way and reported as such. They are allowed only
at the start of the chain: an unsigned event after a signed one is a forgery.

The key reaches ``record`` through the session (``Session.info``), put there
for every session of a ``Database`` by ``use_key``. Secrets and codes never
go into details.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.errors import ConfigError
from bot.storage.db import Database
from bot.storage.models import AuditEvent

GENESIS = "0" * 64
# Any constant works: it only has to be the same for every writer of the chain.
_CHAIN_LOCK = 7_351_901
KEY_INFO = "bot.audit_key"
MIN_KEY_BYTES = 32


class AuditKey:
    """The key that signs audit events; its ``key_id`` names it in each event without giving it away."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_KEY_BYTES:
            raise ValueError(f"an audit key needs at least {MIN_KEY_BYTES} bytes")
        self._secret = secret
        self.key_id = hmac.new(secret, b"unlockbot audit key id", hashlib.sha256).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"AuditKey(key_id={self.key_id!r}, <key hidden>)"

    @classmethod
    def from_text(cls, value: str, *, name: str) -> AuditKey:
        """The key from its text form; ``name`` says where it came from, for the error."""
        try:
            raw = base64.urlsafe_b64decode(value.strip().encode())
            return cls(raw)
        except (binascii.Error, ValueError):
            raise ConfigError(
                f"{name}: expected {MIN_KEY_BYTES} or more random bytes in url-safe base64 "
                "(`unlockbot keys generate` prints one)"
            ) from None

    @staticmethod
    def generate_text() -> str:
        return base64.urlsafe_b64encode(secrets.token_bytes(MIN_KEY_BYTES)).decode()

    def sign(self, body: bytes) -> str:
        return hmac.new(self._secret, body, hashlib.sha256).hexdigest()


def use_key(database: Database, key: AuditKey) -> None:
    """Sign every event recorded through ``database``'s sessions from now on with ``key``."""
    database.info[KEY_INFO] = key


def session_key(session: AsyncSession) -> AuditKey | None:
    key = session.info.get(KEY_INFO)
    return key if isinstance(key, AuditKey) else None


def _body(
    prev_hash: str, at: str, actor: str, action: str, subject: str, details: dict[str, Any], **extra: str
) -> bytes:
    return json.dumps(
        {"prev": prev_hash, "at": at, "actor": actor, "action": action, "subject": subject, "details": details} | extra,
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    ).encode()


def event_hash(prev_hash: str, at: datetime, actor: str, action: str, subject: str, details: dict[str, Any]) -> str:
    """The unkeyed hash of events written before the audit key existed (anyone can compute it)."""
    return hashlib.sha256(_body(prev_hash, at.isoformat(), actor, action, subject, details)).hexdigest()


def signed_hash(
    key: AuditKey, prev_hash: str, at: datetime, actor: str, action: str, subject: str, details: dict[str, Any]
) -> str:
    # UTC, because the database gives times back in UTC whatever zone they were written in.
    stamp = at.astimezone(UTC).isoformat()
    return key.sign(_body(prev_hash, stamp, actor, action, subject, details, key=key.key_id))


async def lock_chain(session: AsyncSession) -> None:
    """Take the chain's writer lock until the transaction ends (PostgreSQL; SQLite has one writer anyway)."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        # Writers take turns so that two of them never chain onto the same predecessor.
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHAIN_LOCK})


async def record(
    session: AsyncSession,
    *,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event in the caller's transaction."""
    await lock_chain(session)
    details = details or {}
    key = session_key(session)
    last = (
        await session.execute(select(AuditEvent.hash, AuditEvent.key_id).order_by(AuditEvent.id.desc()).limit(1))
    ).first()
    prev = last.hash if last is not None else GENESIS
    if key is None and last is not None and last.key_id is not None:
        raise ConfigError(
            "security.audit_key: the audit trail is signed, but this process has no audit key to sign with "
            "(was the database opened without open_app?)"
        )
    if key is None:
        digest, key_id = event_hash(prev, at, actor, action, subject, details), None
    else:
        digest, key_id = signed_hash(key, prev, at, actor, action, subject, details), key.key_id
    event = AuditEvent(
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        details=details,
        prev_hash=prev,
        hash=digest,
        key_id=key_id,
    )
    session.add(event)
    await session.flush()
    return event


@dataclass(frozen=True, slots=True)
class Head:
    """The newest event of the chain."""

    id: int
    hash: str


async def head(session: AsyncSession) -> Head | None:
    row = (
        await session.execute(select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
    ).first()
    return Head(row.id, row.hash) if row is not None else None


@dataclass(frozen=True, slots=True)
class Anchor:
    """An event the chain must still hold: its id and hash, or only the hash (as an operator copied it)."""

    id: int | None
    hash: str
    source: str = "the anchor"


class Problem(StrEnum):
    EDITED = "edited"  # the content does not match the hash
    UNLINKED = "unlinked"  # does not follow the event before it
    UNSIGNED = "unsigned"  # unsigned, after signed events
    OTHER_KEY = "other_key"  # signed with a key that is not the configured one
    CUT = "cut"  # the event an anchor names is gone: newest events deleted
    REWRITTEN = "rewritten"  # the event an anchor names has another hash now
    UNKNOWN_ANCHOR = "unknown_anchor"  # no event has the hash the operator gave
    DAMAGED_ANCHOR = "damaged_anchor"  # the anchor file cannot be read


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """What is wrong, and at which event (``None`` when the problem is the chain's end)."""

    event_id: int | None
    kind: Problem
    problem: str


@dataclass
class ChainReport:
    """What a check of the chain found: how much it read, where the chain ends, and every problem."""

    events: int = 0
    unsigned: int = 0  # events from before the audit key, checked unkeyed
    head: Head | None = None
    problems: list[ChainProblem] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


class _Checker:
    """Walks events in id order and notes every break."""

    def __init__(self, key: AuditKey | None, report: ChainReport, anchors: Sequence[Anchor]) -> None:
        self._key = key
        self._report = report
        self._expected_prev = GENESIS
        self._signed_seen = False
        self._by_id = {a.id: a for a in anchors if a.id is not None}
        self._by_hash = {a.hash: a for a in anchors if a.id is None}
        self._found: set[str] = set()
        self._seen_ids: dict[int, str] = {}

    def _problem(self, event_id: int | None, kind: Problem, text: str) -> None:
        self._report.problems.append(ChainProblem(event_id, kind, text))

    def resume_after(self, event: AuditEvent) -> None:
        """Check ``event`` alone (its link was checked when the anchor was taken) and go on from it."""
        self._expected_prev = event.prev_hash
        self.feed(event, counted=False)

    def feed(self, event: AuditEvent, *, counted: bool = True) -> None:
        if counted:
            self._report.events += 1
        if event.prev_hash != self._expected_prev:
            self._problem(
                event.id, Problem.UNLINKED, "does not follow the event before it (an event was deleted or inserted)"
            )
        recomputed: str | None
        if event.key_id is None:
            if self._signed_seen:
                self._problem(
                    event.id,
                    Problem.UNSIGNED,
                    "is not signed, yet signed events come before it (it was written or rewritten without the key)",
                )
            elif counted:
                self._report.unsigned += 1
            recomputed = event_hash(event.prev_hash, event.at, event.actor, event.action, event.subject, event.details)
        else:
            self._signed_seen = True
            if self._key is None:
                raise ConfigError(
                    "security.audit_key: the audit trail is signed, but no audit key is configured to check it "
                    "(set [security] audit_key or audit_key_file)"
                )
            if event.key_id != self._key.key_id:
                self._problem(
                    event.id,
                    Problem.OTHER_KEY,
                    f"is signed with another audit key (key id {event.key_id}; the configured key is "
                    f"{self._key.key_id})",
                )
                recomputed = None
            else:
                recomputed = signed_hash(
                    self._key, event.prev_hash, event.at, event.actor, event.action, event.subject, event.details
                )
        if recomputed is not None and recomputed != event.hash:
            self._problem(event.id, Problem.EDITED, "its content does not match its hash (the event was edited)")
        self._expected_prev = event.hash
        self._report.head = Head(event.id, event.hash)
        self.note(event)
        if event.hash in self._by_hash:
            self._found.add(event.hash)

    def note(self, event: AuditEvent) -> None:
        """Remember what hash an anchored event has now, without checking it."""
        if event.id in self._by_id:
            self._seen_ids[event.id] = event.hash

    def finish(self) -> None:
        last = self._report.head
        for anchor_id, anchor in self._by_id.items():
            seen = self._seen_ids.get(anchor_id)
            if seen is None and (last is None or last.id < anchor_id):
                end = f"ends at event {last.id}" if last else "is empty"
                self._problem(
                    None,
                    Problem.CUT,
                    f"the chain {end}, but {anchor.source} names event {anchor_id}: the newest events were deleted",
                )
            elif seen is None:
                self._problem(
                    anchor_id, Problem.CUT, f"is missing, though {anchor.source} names it: events were deleted"
                )
            elif seen != anchor.hash:
                self._problem(
                    anchor_id,
                    Problem.REWRITTEN,
                    f"is not the event {anchor.source} names (its hash differs): the events up to it were replaced",
                )
        for digest, anchor in self._by_hash.items():
            if digest not in self._found:
                self._problem(
                    None,
                    Problem.UNKNOWN_ANCHOR,
                    f"no event has the hash {digest} that {anchor.source} gives: the chain was cut short "
                    "before that event, or rewritten",
                )


async def verify_chain(
    session: AsyncSession, key: AuditKey | None, *, anchors: Sequence[Anchor] = (), since: Anchor | None = None
) -> ChainReport:
    """Recompute every hash in order and check that each anchor's event is still there, unchanged.

    With ``since`` (an anchor with an id), only that event and the ones after it are read: the
    events before it were checked when it was taken.
    """
    report = ChainReport()
    checker = _Checker(key, report, [*anchors, *([since] if since is not None else [])])
    query = select(AuditEvent).order_by(AuditEvent.id)
    if since is not None:
        assert since.id is not None
        start = await session.scalar(select(AuditEvent).where(AuditEvent.id == since.id))
        if start is None or start.hash != since.hash:
            # Gone or replaced: finish() says which, from the event (if any) and where the chain ends now.
            report.head = await head(session)
            if start is not None:
                checker.note(start)
            checker.finish()
            return report
        checker.resume_after(start)
        query = query.where(AuditEvent.id > since.id)
    async for event in await session.stream_scalars(query):
        checker.feed(event)
    checker.finish()
    return report


async def export_since(session: AsyncSession, since: datetime) -> AsyncIterator[dict[str, Any]]:
    """Audit events at or after ``since``, oldest first, as plain dicts for JSON lines."""
    rows = await session.stream_scalars(select(AuditEvent).where(AuditEvent.at >= since).order_by(AuditEvent.id))
    async for event in rows:
        yield {
            "id": event.id,
            "at": event.at.isoformat(),
            "actor": event.actor,
            "action": event.action,
            "subject": event.subject,
            "details": event.details,
            "prev_hash": event.prev_hash,
            "hash": event.hash,
            "key_id": event.key_id,
        }
