"""The audit trail's footing outside the database: its key, its anchor, and the head sent to admins.

The key that signs events (``[security] audit_key``, else the file
``audit_key_file``, by default ``<data_dir>/audit.key``) is made at the first
start, like the TOTP key: a start refuses to run when the trail is signed but
the key is missing or another one, rather than fork the chain.

The anchor is a file in the data dir (``audit-anchor.json``, 0600) naming
the newest event the housekeeper checked: its id, its place in the chain
and its hash. It moves forward only over events that check out, so after
someone deletes the newest events, ``unlockbot audit verify`` still knows
how far the chain reached. Once a day the head is also logged and sent to
the admins, who can keep it anywhere and give it back as ``audit verify
--anchor HASH``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.errors import ConfigError
from bot.requests import audit
from bot.requests.notifications import notify
from bot.storage.db import Database
from bot.storage.files import create_private_file, make_private_dir, replace_private_file
from bot.storage.models import AuditEvent, BotMeta

log = logging.getLogger(__name__)

ANCHOR_FILE = "audit-anchor.json"
HEAD_TEMPLATE = "admin/audit_head"
# bot_meta key holding when the head was last sent; claimed with a conditional write, so one process sends it.
_POSTED_KEY = "audit.head_posted_at"
_STAMP = "%Y-%m-%dT%H:%M:%S"


def anchor_path(settings: Settings) -> Path:
    return settings.bot.data_dir / ANCHOR_FILE


def load_audit_key(settings: Settings) -> audit.AuditKey | None:
    """The configured audit key, or ``None`` when none is configured and its file does not exist."""
    if settings.security.audit_key is not None:
        return audit.AuditKey.from_text(settings.security.audit_key.get_secret_value(), name="security.audit_key")
    path = settings.audit_key_file
    if path.exists():
        return audit.AuditKey.from_text(path.read_text(encoding="ascii"), name=f"security.audit_key_file ({path})")
    return None


def create_audit_key_file(path: Path) -> audit.AuditKey:
    """Write a new audit key readable only by its owner; a key another process wrote first wins."""
    make_private_dir(path.parent)
    text = audit.AuditKey.generate_text()
    if not create_private_file(path, (text + "\n").encode()):
        text = path.read_text(encoding="ascii")
    return audit.AuditKey.from_text(text, name=f"security.audit_key_file ({path})")


class AnchorFile:
    """The newest event known good, kept outside the database."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"AnchorFile({str(self.path)!r})"

    def read(self) -> audit.Anchor | None:
        try:
            stored = json.loads(self.path.read_text(encoding="utf-8"))
            event, digest = stored["event"], stored["hash"]
            place = stored.get("seq", event)  # an anchor from before events had a place: their place is their id
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ConfigError(f"the audit anchor {self.path} is damaged (expected JSON with event and hash)") from None
        if not isinstance(event, int) or not isinstance(digest, str) or not isinstance(place, int):
            raise ConfigError(f"the audit anchor {self.path} is damaged (expected JSON with event and hash)")
        return audit.Anchor(event, digest, f"the anchor in {self.path}", seq=place)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # Processes sharing a data dir take turns, so an older head never overwrites a newer one.
        make_private_dir(self.path.parent)
        lock = self.path.with_name(self.path.name + ".lock")
        create_private_file(lock)
        with lock.open("rb") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def advance(self, head: audit.Head, *, at: datetime) -> None:
        """Point the anchor at ``head``, unless it already names a newer event."""
        place = head.seq if head.seq is not None else head.id
        with self._locked():
            current = self.read()
            if current is not None and current.place is not None and current.place >= place:
                return
            content = {"event": head.id, "seq": place, "hash": head.hash, "at": at.astimezone(UTC).isoformat()}
            replace_private_file(self.path, (json.dumps(content) + "\n").encode())

    def forget(self) -> None:
        """Drop the anchor (the trail was cleared on purpose, as the demo does when it starts over)."""
        with self._locked():
            self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class AuditTrail:
    """The key that signs the trail and the anchor that pins its end."""

    key: audit.AuditKey
    anchor: AnchorFile


async def open_trail(settings: Settings, database: Database) -> AuditTrail:
    """Load (or, for an unsigned trail, create) the audit key and sign everything ``database`` records with it."""
    key = load_audit_key(settings)
    async with database.session() as session:
        signer = await session.scalar(
            select(AuditEvent.key_id).where(AuditEvent.key_id.is_not(None)).order_by(AuditEvent.id.desc()).limit(1)
        )
    if key is None:
        if signer is not None:
            raise ConfigError(
                f"security.audit_key: the audit trail is signed, but no audit key is configured and "
                f"{settings.audit_key_file} does not exist; restore that file, or set [security] audit_key or "
                "audit_key_file to the key the trail was signed with"
            )
        key = create_audit_key_file(settings.audit_key_file)
    elif signer is not None and signer != key.key_id:
        raise ConfigError(
            f"security.audit_key: the audit trail is signed with another key (key id {signer}; the configured "
            f"key's id is {key.key_id}); every process that shares the database needs the same audit key"
        )
    if audit.database_key(database) is None:
        database.before_dispose(lambda: link_before_closing(database))
    audit.use_key(database, key)
    return AuditTrail(key, AnchorFile(anchor_path(settings)))


async def link_before_closing(database: Database) -> None:
    """Link what is still unlinked as a process closes the database.

    So a short command (``demo seed``, ``admin invite``) leaves a linked trail behind. The lock and the
    conditional links of ``audit.chain`` make this safe beside the chainer of a running replica.
    """
    try:
        async with database.session() as session, session.begin():
            await audit.chain(session)
    except audit.ChainConflict:
        pass  # the running chainer linked them first


async def keep_anchor(database: Database, trail: AuditTrail, *, now: datetime) -> audit.ChainReport:
    """Check the events since the anchor and move the anchor to the newest one when they are intact.

    With no anchor yet, the current head becomes the anchor: the trail is trusted from there on.
    """
    try:
        anchor = trail.anchor.read()
    except ConfigError as exc:
        # Left as it is for the operator to look at; the chat goes on meanwhile.
        async with database.session() as session:
            last = await audit.head(session)
        return audit.ChainReport(head=last, problems=[audit.ChainProblem(None, audit.Problem.DAMAGED_ANCHOR, str(exc))])
    async with database.session() as session:
        if anchor is None:
            report = audit.ChainReport(head=await audit.head(session))
        else:
            report = await audit.verify_chain(session, trail.key, since=anchor)
    if report.intact and report.head is not None:
        trail.anchor.advance(report.head, at=now)
    return report


async def _claim_daily_post(session: AsyncSession, *, now: datetime) -> bool:
    """Whether this process is the one to send the head now (at most once in 24 hours across processes)."""
    stamp = now.astimezone(UTC).strftime(_STAMP)
    due = (now - timedelta(days=1)).astimezone(UTC).strftime(_STAMP)
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    # RETURNING, not rowcount: psycopg gives no row count for INSERT ... ON CONFLICT DO NOTHING.
    created = await session.scalar(
        insert(BotMeta)
        .values(key=_POSTED_KEY, value=stamp)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(BotMeta.key)
    )
    if created is not None:
        return True
    claimed = await session.scalar(
        update(BotMeta)
        .where(BotMeta.key == _POSTED_KEY, BotMeta.value <= due)
        .values(value=stamp)
        .returning(BotMeta.key)
        .execution_options(synchronize_session=False)
    )
    return claimed is not None


async def post_head(
    session: AsyncSession, *, now: datetime, admins: Collection[str], report: audit.ChainReport
) -> bool:
    """Once a day, log the chain's head and send it to the admins; ``True`` when this call did."""
    if report.head is None or not await _claim_daily_post(session, now=now):
        return False
    head = report.head
    log.info("audit trail head: event %d, hash %s%s", head.id, head.hash, "" if report.intact else " (NOT intact)")
    if not admins:
        return True
    context: dict[str, Any] = {"event": head.id, "hash": head.hash, "intact": report.intact}
    await notify(session, now=now, usernames=admins, template=HEAD_TEMPLATE, context=context)
    await audit.record(
        session,
        at=now,
        actor="scheduler",
        action="audit.head_posted",
        subject="audit",
        details={"event": head.id, "hash": head.hash, "to": sorted(admins)},
    )
    return True
