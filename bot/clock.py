"""The injected clock: everything that reads the time takes a ``Clock``.

Production uses ``SystemClock``; tests and the demo use ``ManualClock`` so that
TOTP windows, expiry and reminders are exercised without sleeping.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class Clock(Protocol):
    """A source of the current time, always timezone-aware UTC."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, when: datetime) -> None:
        self._now = when.astimezone(UTC)


# The zone times are shown in when neither the person's nor ``[bot] timezone`` is known.
LOCALE_ZONES = {"zh-CN": "Asia/Shanghai", "en": "UTC"}


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None  # a zone from a chat profile that this machine does not know: the default is used


def person_zone(person: str | None, configured: str | None, locale: str) -> ZoneInfo:
    """Where a person's times are shown: their own zone (from their chat profile), else ``[bot] timezone``,
    else their language's (``LOCALE_ZONES``)."""
    own = _zone(person) if person else None
    return own or (ZoneInfo(configured) if configured else None) or ZoneInfo(LOCALE_ZONES[locale])
