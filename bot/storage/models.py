"""The bot's own tables (SQLAlchemy 2 typed models).

The embedded CRM keeps its tables apart, in ``bot.crm.sql_schema``: it stands
for an outside system, which the bot only reaches through the CRM interface.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Text
from sqlalchemy import UniqueConstraint as Unique
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bot.storage.types import UtcDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class BotMeta(Base):
    """Facts about this database itself, such as whether it is a demo database."""

    __tablename__ = "bot_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Conversation(Base):
    """Where one person's conversation on one channel stands, so a restart resumes it."""

    __tablename__ = "conversations"
    __table_args__ = (Unique("channel", "team_id", "user_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    team_id: Mapped[str] = mapped_column(String(64), default="")
    user_id: Mapped[str] = mapped_column(String(128))
    flow: Mapped[str | None] = mapped_column(String(64))
    step: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    locale: Mapped[str] = mapped_column(String(8))
    locale_chosen: Mapped[bool] = mapped_column(default=False)
    offered: Mapped[list[Any]] = mapped_column(default=list)  # button actions the person may press now
    prompt: Mapped[str] = mapped_column(Text, default="[]")  # the last replies, to repeat on resume
    updated_at: Mapped[datetime]
    # When this chat account last gave a right code: a follow-up action within the grace period needs no other.
    verified_at: Mapped[datetime | None]


class ChatIdentity(Base):
    """A chat account bound to a CRM user; one CRM user may have several."""

    __tablename__ = "chat_identities"
    __table_args__ = (Unique("channel", "team_id", "platform_user_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    team_id: Mapped[str] = mapped_column(String(64), default="")
    platform_user_id: Mapped[str] = mapped_column(String(128))
    crm_username: Mapped[str] = mapped_column(String(128), index=True)
    linked_at: Mapped[datetime]
    linked_by: Mapped[str] = mapped_column(String(128))
    # The CRM user who issued the link code this account was bound with (None: the CLI or the platform's word),
    # so nobody approves their own request through an account they had linked to another admin.
    invited_by: Mapped[str | None] = mapped_column(String(128))


class LinkCode(Base):
    """A one-time code an admin issues to bind a Telegram or console account; stored hashed."""

    __tablename__ = "link_codes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(128), unique=True)
    crm_username: Mapped[str] = mapped_column(String(128))
    created_by: Mapped[str] = mapped_column(String(128))
    issuer_username: Mapped[str | None] = mapped_column(String(128))  # the admin's CRM user; None from the CLI
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    used_by: Mapped[int | None] = mapped_column(ForeignKey("chat_identities.id", ondelete="SET NULL"))


class TotpEnrolment(Base):
    """One TOTP secret per CRM user (encrypted), with replay and throttle state."""

    __tablename__ = "totp_enrolments"
    crm_username: Mapped[str] = mapped_column(String(128), primary_key=True)
    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]
    confirmed_at: Mapped[datetime | None]
    # The highest time step ever accepted: any step at or below it is a replay.
    last_used_step: Mapped[int | None] = mapped_column(BigInteger)
    failed_attempts: Mapped[int] = mapped_column(default=0)
    lockouts: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"TotpEnrolment(crm_username={self.crm_username!r}, active={self.active!r})"


class UnlockRequest(Base):
    """A request for an admin: an unlock that policy does not allow as self-service, or a question."""

    __tablename__ = "unlock_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="unlock")  # unlock | help
    crm_username: Mapped[str] = mapped_column(String(128), index=True)
    reason: Mapped[str] = mapped_column(String(32))
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    answers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    requester_user_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_via: Mapped[str | None] = mapped_column(String(160))  # the chat account that pressed (channel:user)
    decision_note: Mapped[str | None] = mapped_column(Text)
    executed_at: Mapped[datetime | None]
    result: Mapped[str | None] = mapped_column(Text)
    reminders_sent: Mapped[int] = mapped_column(default=0)
    last_reminded_at: Mapped[datetime | None]
    escalated: Mapped[bool] = mapped_column(default=False)


class OutboxItem(Base):
    """A CRM action or notification to carry out exactly once, even across crashes."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_available", "status", "available_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("unlock_requests.id"))
    action: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | claimed | done | failed
    attempts: Mapped[int] = mapped_column(default=0)
    available_at: Mapped[datetime]
    claimed_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class AuditEvent(Base):
    """An append-only record of a state change, signed when written and linked into the chain soon after.

    A turn writes the event with ``sig`` (its content signed under the audit key) and no place in the chain;
    the chainer (``bot.requests.audit.chain``) then gives it ``seq``, the hash of the event before it and its
    own chained ``hash``, once. The database refuses any other change (a trigger, from migrations 0003/0004).
    """

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(160))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(160), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Set by the chainer: the event's place in the chain, the hash of the event before it, its own hash.
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    # Which audit key signed the event (an HMAC); None for events written before there was a key.
    key_id: Mapped[str | None] = mapped_column(String(16))
    # The content signed when the event was written, so the chainer links only what the bot wrote.
    sig: Mapped[str | None] = mapped_column(String(64))


class RequestCard(Base):
    """A copy of a request's card posted to an admin destination, so a channel can update it later."""

    __tablename__ = "request_cards"
    __table_args__ = (Unique("request_id", "channel", "destination"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("unlock_requests.id"))
    channel: Mapped[str] = mapped_column(String(32))
    destination: Mapped[str] = mapped_column(String(128))  # a group, channel or chat id
    # How the platform names the message; None while a channel has claimed the card and is posting it.
    message_ref: Mapped[str | None] = mapped_column(String(128))
    shown_status: Mapped[str] = mapped_column(String(16))  # the request's status when last drawn
    posted_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Until when one process is posting or redrawing this card; past it, another may try (the first one died).
    claimed_until: Mapped[datetime | None]


class LockWatch(Base):
    """Someone who asked to be told when their lock is lifted (a fault, maintenance, a licence)."""

    __tablename__ = "lock_watches"
    crm_username: Mapped[str] = mapped_column(String(128), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]
    last_checked_at: Mapped[datetime | None]


class Notification(Base):
    """Something to tell a person the next time the bot can reach them (a decision, a reset)."""

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    crm_username: Mapped[str] = mapped_column(String(128), index=True)
    template: Mapped[str] = mapped_column(String(64))
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    buttons: Mapped[list[Any]] = mapped_column(default=list)  # [action, label] pairs offered with it
    # A chat account (channel:team:user) that must not receive it: the new account a link notice is about.
    not_for: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class ProcessedEvent(Base):
    """Platform event ids already handled, so a redelivered event is handled once."""

    __tablename__ = "processed_events"
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    at: Mapped[datetime]


class Lease(Base):
    """Who holds a named lease (a leader's role, a once-a-day notice) and until when; see ``bot.storage.leases``."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    holder: Mapped[str] = mapped_column(String(160))
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class ChannelState(Base):
    """A channel's small facts that outlive a process and hold across replicas; see ``bot.storage.channel_state``."""

    __tablename__ = "channel_state"
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(index=True)  # forgotten after this; None: kept


class CrmDoneKey(Base):
    """An idempotency key whose CRM action a remote backend carried out, with what it returned."""

    __tablename__ = "crm_done_keys"
    system: Mapped[str] = mapped_column(String(32), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(256), primary_key=True)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    done_at: Mapped[datetime] = mapped_column(index=True)


class AlertOptOut(Base):
    """Someone who asked for no unasked messages (lock alerts, maintenance notices); see ``bot.requests.alerts``."""

    __tablename__ = "alert_opt_outs"
    crm_username: Mapped[str] = mapped_column(String(128), primary_key=True)
    since: Mapped[datetime]


class AlertCursor(Base):
    """How far a feed the housekeeper follows (the CRM's lock events) has been read; one row per feed."""

    __tablename__ = "alert_cursors"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime]  # the first read: nothing before it is told
    read_until: Mapped[datetime]


class MaintenanceNotice(Base):
    """A maintenance window the CRM announced, and when people were told of it ahead and once it was over."""

    __tablename__ = "maintenance_notices"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # when it starts, in UTC: stable while it moves
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    told_ahead_at: Mapped[datetime | None]
    told_over_at: Mapped[datetime | None]


class DetectedIncident(Base):
    """More locks at once than the recent baseline: found by the housekeeper, told to the admins once.

    Open while locks keep coming faster than usual (``last_seen_at`` within ``window_minutes``); the "is this
    normal?" and "is it just me?" answers read the open one.
    """

    __tablename__ = "detected_incidents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime]  # the first lock of the window it was found in
    last_seen_at: Mapped[datetime] = mapped_column(index=True)
    window_minutes: Mapped[float]
    locks: Mapped[int]  # in the window, at the most
    expected: Mapped[float]  # what such a window usually holds, from the baseline
    by_reason: Mapped[dict[str, Any]] = mapped_column(default=dict)  # reason code -> locks
    first_people: Mapped[list[Any]] = mapped_column(default=list)  # usernames, earliest lock first
    told_at: Mapped[datetime | None]
