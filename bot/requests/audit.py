"""The audit trail: every state change is one append-only event, signed when written and chained soon after.

A turn writes its events without waiting for anyone: each carries ``sig``,
an HMAC-SHA256 of its content under the audit key (``[security]
audit_key``), which lives outside the database. The chainer (``chain``, run
by the one housekeeper that holds the chainer's lease, every second) then
links the events in the order it finds them: each gets ``seq``, the hash of
the event before it, and its own hash, an HMAC of that and its content. So
an edited, inserted or deleted event breaks the chain where it happened, and
nobody without the key can rewrite the chain to hide it; the chainer links
only events whose ``sig`` it can check, so nobody without the key can have
an event of theirs linked either. A cut at the end (the newest events
deleted) leaves a good chain behind; the anchor catches that: a copy of the
newest event's id, place and hash kept outside the database
(``bot.requests.anchor``), or given by the operator.

No turn takes a lock that other turns wait for: the chainer's own
transaction is the only one that extends the chain, and it does no other
I/O. An event is unlinked for about a second; ``verify_chain`` checks such
an event against its ``sig`` and counts it as pending.

Events written before the key existed have no ``key_id`` and a plain SHA-256
hash; they are checked that way and reported as such. They are allowed only
at the start of the chain: an unsigned event after a signed one is a forgery.

The key reaches ``record`` and ``chain`` through the session
(``Session.info``), put there for every session of a ``Database`` by
``use_key``. Secrets and codes never go into details.
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

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.errors import ConfigError
from bot.storage.db import Database
from bot.storage.models import AuditEvent

GENESIS = "0" * 64
# Any constant works: it only has to be the same for every chainer. Only chainers take it, never a turn.
_CHAINER_LOCK = 7_351_901
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


def database_key(database: Database) -> AuditKey | None:
    """The key ``use_key`` gave ``database``, if any."""
    key = database.info.get(KEY_INFO)
    return key if isinstance(key, AuditKey) else None


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


def content_signature(
    key: AuditKey, at: datetime, actor: str, action: str, subject: str, details: dict[str, Any]
) -> str:
    """The ``sig`` of an event: its content alone, signed when it is written, before it has a place in the chain."""
    stamp = at.astimezone(UTC).isoformat()
    body: dict[str, Any] = {"signs": "content", "at": stamp, "actor": actor, "action": action, "subject": subject}
    body |= {"details": details, "key": key.key_id}
    return key.sign(json.dumps(body, sort_keys=True, ensure_ascii=False, default=str).encode())


async def record(
    session: AsyncSession,
    *,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event in the caller's transaction, signed; the chainer links it once it is committed."""
    details = details or {}
    key = session_key(session)
    if key is None:
        last_key = await session.scalar(select(AuditEvent.key_id).order_by(AuditEvent.id.desc()).limit(1))
        if last_key is not None:
            raise ConfigError(
                "security.audit_key: the audit trail is signed, but this process has no audit key to sign with "
                "(was the database opened without open_app?)"
            )
        key_id, sig = None, None
    else:
        key_id, sig = key.key_id, content_signature(key, at, actor, action, subject, details)
    event = AuditEvent(at=at, actor=actor, action=action, subject=subject, details=details, key_id=key_id, sig=sig)
    session.add(event)
    await session.flush()
    return event


@dataclass
class ChainRound:
    """What one run of the chainer did: how many events it linked, and those it would not link, and why."""

    linked: int = 0
    refused: list[ChainProblem] = field(default_factory=list)
    busy: bool = False  # another chainer was at work (PostgreSQL): nothing done this time


class ChainConflict(Exception):
    """Another chainer linked an event this one was linking; the round is rolled back and tried again later."""


async def chain(session: AsyncSession, *, limit: int = 5000, page: int = 500) -> ChainRound:
    """Link the committed events that have no place in the chain yet, oldest first, in the caller's transaction.

    Run by one process at a time (the holder of the chainer's lease); on PostgreSQL a transaction lock that
    only chainers take makes sure of it even when a lease runs out under a slow holder. The transaction does
    nothing but read and link events, so it is short, and no turn ever waits for it.
    """
    result = ChainRound()
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        # Per schema, like the migrations' lock: bots sharing a database in separate schemas do not meet.
        took = await session.scalar(
            text("SELECT pg_try_advisory_xact_lock(:key, hashtext(current_schema()))"), {"key": _CHAINER_LOCK}
        )
        if not took:
            result.busy = True
            return result
    key = session_key(session)
    last = (
        await session.execute(
            select(AuditEvent.seq, AuditEvent.hash, AuditEvent.key_id)
            .where(AuditEvent.seq.is_not(None))
            .order_by(AuditEvent.seq.desc())
            .limit(1)
        )
    ).first()
    seq = int(last.seq) if last is not None else 0
    prev = str(last.hash) if last is not None else GENESIS
    signed = last is not None and last.key_id is not None
    after = 0
    while result.linked < limit:
        rows = (
            await session.execute(
                select(
                    AuditEvent.id,
                    AuditEvent.at,
                    AuditEvent.actor,
                    AuditEvent.action,
                    AuditEvent.subject,
                    AuditEvent.details,
                    AuditEvent.key_id,
                    AuditEvent.sig,
                )
                .where(AuditEvent.seq.is_(None), AuditEvent.id > after)
                .order_by(AuditEvent.id)
                .limit(page)
            )
        ).all()
        if not rows:
            break
        for row in rows:
            after = row.id
            refusal = _refusal(row, key, signed=signed)
            if refusal is not None:
                result.refused.append(ChainProblem(row.id, *refusal))
                continue
            if row.key_id is None:
                digest = event_hash(prev, row.at, row.actor, row.action, row.subject, row.details)
            else:
                assert key is not None
                digest = signed_hash(key, prev, row.at, row.actor, row.action, row.subject, row.details)
            linked = await session.execute(
                update(AuditEvent)
                .where(AuditEvent.id == row.id, AuditEvent.seq.is_(None))
                .values(seq=seq + 1, prev_hash=prev, hash=digest)
                .execution_options(synchronize_session=False)
            )
            if linked.rowcount != 1:  # type: ignore[attr-defined]
                raise ChainConflict(f"audit event {row.id} was linked by another chainer")
            seq, prev = seq + 1, digest
            signed = signed or row.key_id is not None
            result.linked += 1
            if result.linked >= limit:
                break
    return result


def _refusal(row: Any, key: AuditKey | None, *, signed: bool) -> tuple[Problem, str] | None:
    """Why the chainer must leave this event unlinked (``verify_chain`` names it then), or ``None``."""
    if row.key_id is None:
        if signed:
            return Problem.UNSIGNED, "is not signed, yet the chain is (it was written without the key)"
        return None
    if key is None or row.key_id != key.key_id:
        return Problem.OTHER_KEY, f"is signed with a key this process does not have (key id {row.key_id})"
    expected = content_signature(key, row.at, row.actor, row.action, row.subject, row.details)
    if row.sig is None or not hmac.compare_digest(expected, row.sig):
        return Problem.EDITED, "its content does not match what was signed when it was written (it was edited)"
    return None


@dataclass(frozen=True, slots=True)
class Head:
    """The newest linked event of the chain, and its place in it."""

    id: int
    hash: str
    seq: int | None = field(default=None, compare=False)


async def head(session: AsyncSession) -> Head | None:
    row = (
        await session.execute(
            select(AuditEvent.id, AuditEvent.hash, AuditEvent.seq)
            .where(AuditEvent.seq.is_not(None))
            .order_by(AuditEvent.seq.desc())
            .limit(1)
        )
    ).first()
    return Head(row.id, row.hash, row.seq) if row is not None else None


@dataclass(frozen=True, slots=True)
class Anchor:
    """An event the chain must still hold: its id, place and hash, or only the hash (as an operator copied it).

    An anchor kept before events had a place names only the id; those events' place is their id.
    """

    id: int | None
    hash: str
    source: str = "the anchor"
    seq: int | None = None

    @property
    def place(self) -> int | None:
        return self.seq if self.seq is not None else self.id


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

    events: int = 0  # every event read, linked or not
    unsigned: int = 0  # events from before the audit key, checked unkeyed
    pending: int = 0  # of ``events``, those the chainer has not linked yet, checked against their signature
    head: Head | None = None
    problems: list[ChainProblem] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


class _Checker:
    """Walks the linked events in chain order, then the pending ones, and notes every break."""

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

    def _signing_key(self, event: AuditEvent) -> AuditKey | None:
        """The key to check a signed ``event`` with; ``None`` (and a problem noted) when it is another key."""
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
                f"is signed with another audit key (key id {event.key_id}; the configured key is {self._key.key_id})",
            )
            return None
        return self._key

    def _unsigned(self, event: AuditEvent, *, counted: bool) -> None:
        if self._signed_seen:
            self._problem(
                event.id,
                Problem.UNSIGNED,
                "is not signed, yet signed events come before it (it was written or rewritten without the key)",
            )
        elif counted:
            self._report.unsigned += 1

    def resume_after(self, event: AuditEvent) -> None:
        """Check ``event`` alone (its link was checked when the anchor was taken) and go on from it."""
        self._expected_prev = event.prev_hash or GENESIS
        self.feed(event, counted=False)

    def feed(self, event: AuditEvent, *, counted: bool = True) -> None:
        """A linked event, in chain order."""
        if counted:
            self._report.events += 1
        if event.prev_hash != self._expected_prev:
            self._problem(
                event.id, Problem.UNLINKED, "does not follow the event before it (an event was deleted or inserted)"
            )
        edited: bool
        if event.key_id is None:
            self._unsigned(event, counted=counted)
            recomputed = event_hash(
                event.prev_hash or "", event.at, event.actor, event.action, event.subject, event.details
            )
            edited = recomputed != event.hash
        elif (key := self._signing_key(event)) is None:
            edited = False
        else:
            recomputed = signed_hash(
                key, event.prev_hash or "", event.at, event.actor, event.action, event.subject, event.details
            )
            # Events linked by the chainer also carry the signature they were written with.
            edited = recomputed != event.hash or (event.sig is not None and not self._content_signed(key, event))
        if edited:
            self._problem(event.id, Problem.EDITED, "its content does not match its hash (the event was edited)")
        self._expected_prev = event.hash or ""
        self._report.head = Head(event.id, event.hash or "", event.seq)
        self.note(event)
        if event.hash in self._by_hash:
            self._found.add(event.hash)

    def pending(self, event: AuditEvent) -> None:
        """An event the chainer has not linked yet: it must carry the signature it was written with."""
        self._report.events += 1
        self._report.pending += 1
        if event.key_id is None:
            self._unsigned(event, counted=True)
        elif (key := self._signing_key(event)) is not None and not self._content_signed(key, event):
            self._problem(
                event.id,
                Problem.EDITED,
                "its content does not match what was signed when it was written (the event was edited, "
                "or written by someone without the key)",
            )

    @staticmethod
    def _content_signed(key: AuditKey, event: AuditEvent) -> bool:
        expected = content_signature(key, event.at, event.actor, event.action, event.subject, event.details)
        return event.sig is not None and hmac.compare_digest(expected, event.sig)

    def note(self, event: AuditEvent) -> None:
        """Remember what hash an anchored event has now, without checking it."""
        if event.id in self._by_id and event.hash is not None:
            self._seen_ids[event.id] = event.hash

    def finish(self) -> None:
        last = self._report.head
        last_place = (last.seq if last.seq is not None else last.id) if last is not None else None
        for anchor_id, anchor in self._by_id.items():
            seen = self._seen_ids.get(anchor_id)
            place = anchor.place
            if seen is None and (last_place is None or (place is not None and last_place < place)):
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
    """Recompute every hash in chain order, check the events not linked yet, and check each anchor's event.

    With ``since`` (an anchor with an id), only that event and the ones linked after it are read: the
    events before it were checked when it was taken.
    """
    report = ChainReport()
    checker = _Checker(key, report, [*anchors, *([since] if since is not None else [])])
    linked = select(AuditEvent).where(AuditEvent.seq.is_not(None)).order_by(AuditEvent.seq)
    if since is not None:
        assert since.id is not None
        start = await session.scalar(select(AuditEvent).where(AuditEvent.id == since.id))
        if start is None or start.seq is None or start.hash != since.hash:
            # Gone or replaced: finish() says which, from the event (if any) and where the chain ends now.
            report.head = await head(session)
            if start is not None:
                checker.note(start)
            checker.finish()
            return report
        checker.resume_after(start)
        linked = linked.where(AuditEvent.seq > start.seq)
    async for event in await session.stream_scalars(linked):
        checker.feed(event)
    pending = select(AuditEvent).where(AuditEvent.seq.is_(None)).order_by(AuditEvent.id)
    async for event in await session.stream_scalars(pending):
        checker.pending(event)
    checker.finish()
    return report


async def export_since(session: AsyncSession, since: datetime) -> AsyncIterator[dict[str, Any]]:
    """Audit events at or after ``since`` in chain order (those not linked yet last), as plain dicts for JSON lines."""
    rows = await session.stream_scalars(
        select(AuditEvent)
        .where(AuditEvent.at >= since)
        .order_by(AuditEvent.seq.is_(None), AuditEvent.seq, AuditEvent.id)
    )
    async for event in rows:
        yield {
            "id": event.id,
            "seq": event.seq,
            "at": event.at.isoformat(),
            "actor": event.actor,
            "action": event.action,
            "subject": event.subject,
            "details": event.details,
            "prev_hash": event.prev_hash,
            "hash": event.hash,
            "key_id": event.key_id,
            "sig": event.sig,
        }
