"""The schema of the embedded CRM that the ``sql`` backend reads and changes.

It stands for a company's real CRM: the bot's code outside ``bot.crm`` never
touches these tables. Kept in its own ``MetaData`` and created on demand,
because in production these tables belong to the CRM, not to our migrations.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, MetaData, String, Text
from sqlalchemy import UniqueConstraint as Unique
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from bot.storage.types import UtcDateTime


class CrmBase(DeclarativeBase):
    metadata = MetaData()
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON()}


class CrmLicence(CrmBase):
    __tablename__ = "crm_licences"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    expires_at: Mapped[datetime | None]
    seats_total: Mapped[int | None]
    trial: Mapped[bool] = mapped_column(default=False)
    usage_cap: Mapped[int | None]
    usage_used: Mapped[int | None]


class CrmUser(CrmBase):
    __tablename__ = "crm_users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(128), unique=True)
    email: Mapped[str] = mapped_column(String(256), unique=True)
    display_name: Mapped[str] = mapped_column(String(256))
    active: Mapped[bool] = mapped_column(default=True)
    is_admin: Mapped[bool] = mapped_column(default=False)
    licence_id: Mapped[int | None] = mapped_column(ForeignKey("crm_licences.id"))
    licence: Mapped[CrmLicence | None] = relationship()
    locked: Mapped[bool] = mapped_column(default=False)
    lock_reason: Mapped[str | None] = mapped_column(String(32))
    locked_at: Mapped[datetime | None]
    # Reason-specific facts: rate-limit numbers, the flagged IP, a network detail.
    lock_detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    must_change_password: Mapped[bool] = mapped_column(default=False)


class CrmLoginAttempt(CrmBase):
    __tablename__ = "crm_login_attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("crm_users.id"), index=True)
    user: Mapped[CrmUser] = relationship()
    at: Mapped[datetime]
    ip: Mapped[str] = mapped_column(String(64))
    success: Mapped[bool]
    location: Mapped[str | None] = mapped_column(String(128))


class CrmFlaggedAction(CrmBase):
    __tablename__ = "crm_flagged_actions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("crm_users.id"), index=True)
    user: Mapped[CrmUser] = relationship()
    at: Mapped[datetime]
    action: Mapped[str] = mapped_column(String(128))
    detail: Mapped[str] = mapped_column(Text)


class CrmLockEvent(CrmBase):
    """Each time the CRM locked someone, as its security log keeps it: what ``lock_events`` reads."""

    __tablename__ = "crm_lock_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("crm_users.id"), index=True)
    user: Mapped[CrmUser] = relationship()
    reason: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(index=True)


class CrmTrustedIp(CrmBase):
    __tablename__ = "crm_trusted_ips"
    __table_args__ = (Unique("user_id", "ip"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("crm_users.id"))
    ip: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, default="")


class CrmMaintenance(CrmBase):
    __tablename__ = "crm_maintenance_windows"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    note: Mapped[str] = mapped_column(Text, default="")


class CrmIncident(CrmBase):
    __tablename__ = "crm_incidents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]


class CrmSystemState(CrmBase):
    """One row of system-wide facts."""

    __tablename__ = "crm_system_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_backup_at: Mapped[datetime | None]
    writes_paused: Mapped[bool] = mapped_column(default=False)
    inbound_channels: Mapped[dict[str, Any]] = mapped_column(default=dict)


class CrmAdminAction(CrmBase):
    """Actions done through the admin API; the idempotency key makes a repeat a no-op."""

    __tablename__ = "crm_admin_actions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(160), unique=True)
    action: Mapped[str] = mapped_column(String(32))
    username: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime]
