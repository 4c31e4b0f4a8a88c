"""Inline keyboard buttons on Telegram: the ``callback_data`` a button carries, and what it stands for.

Telegram hands a button's ``callback_data`` (at most 64 bytes) back untouched
when it is pressed, but any client can send any ``callback_data`` it likes, so
a press is a claim to check. A button is issued for one person (only they may
press it) or for one admin chat (anyone there may press a request card's
buttons; the engine then checks who is an admin). Its data is a sealed token:

    base64url( issued minute (4 bytes) | kind (1) | HMAC-SHA256(key, all that + holder + action)[:10] | action )

The holder (a Telegram user id or chat id) is not written into the token but
is covered by the MAC, so the same data pressed by someone else fails the
check. Sealed tokens need no memory, so request cards in the admin group keep
working across a restart. An action too long to fit (over 33 bytes) gets an
opaque random id instead, remembered in a bounded table that a restart
empties. Either way a token expires after ``lifetime``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum

from bot.clock import Clock

MAX_CALLBACK_DATA = 64  # bytes, Telegram's limit
_MAC_BYTES = 10
_HEADER = struct.Struct(">IB")
# What fits in 64 base64 characters (48 bytes) after the header and the MAC.
MAX_SEALED_ACTION = MAX_CALLBACK_DATA * 3 // 4 - _HEADER.size - _MAC_BYTES
_REMEMBERED_PREFIX = "~"  # not in the base64url alphabet, so the two kinds never collide
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


class Holder(IntEnum):
    """Who may press a button."""

    PERSON = 1  # the Telegram user it was sent to
    CHAT = 2  # anyone in the admin chat it was posted to (request cards)


@dataclass(frozen=True, slots=True)
class Press:
    """A checked button press: the engine action, and whether it came from a request card."""

    action: str
    from_card: bool


@dataclass(frozen=True, slots=True)
class _Remembered:
    holder: Holder
    holder_id: int
    action: str
    issued: int


class ButtonTokens:
    """Issues ``callback_data`` for buttons and resolves pressed data back to an action, or refuses it."""

    def __init__(self, key: bytes, clock: Clock, *, lifetime: timedelta, remembered: int = 4096) -> None:
        self._key = key
        self._clock = clock
        self._lifetime_minutes = int(lifetime.total_seconds() // 60)
        self._capacity = remembered
        self._remembered: OrderedDict[str, _Remembered] = OrderedDict()

    @classmethod
    def for_bot(cls, bot_token: str, clock: Clock, *, lifetime: timedelta) -> ButtonTokens:
        """Tokens sealed under a key derived from the bot token: a new token retires every old button."""
        key = hashlib.sha256(b"unlockbot telegram buttons\x00" + bot_token.encode()).digest()
        return cls(key, clock, lifetime=lifetime)

    def _minute(self) -> int:
        return int((self._clock.now() - _EPOCH).total_seconds() // 60)

    def _mac(self, header: bytes, holder_id: int, action: bytes) -> bytes:
        message = header + str(holder_id).encode() + b"\x00" + action
        return hmac.new(self._key, message, hashlib.sha256).digest()[:_MAC_BYTES]

    def issue(self, action: str, holder: Holder, holder_id: int) -> str:
        raw = action.encode()
        minute = self._minute()
        if len(raw) <= MAX_SEALED_ACTION:
            header = _HEADER.pack(minute, holder)
            sealed = header + self._mac(header, holder_id, raw) + raw
            return base64.urlsafe_b64encode(sealed).decode().rstrip("=")
        token = _REMEMBERED_PREFIX + secrets.token_urlsafe(16)
        self._remembered[token] = _Remembered(holder, holder_id, action, minute)
        while len(self._remembered) > self._capacity:
            self._remembered.popitem(last=False)
        return token

    def resolve(self, data: str, *, presser_id: int, chat_id: int | None) -> Press | None:
        """The press if ``data`` is a live token for this presser (or this chat); ``None`` for forged or expired."""
        if data.startswith(_REMEMBERED_PREFIX):
            entry = self._remembered.get(data)
            if entry is None:
                return None
            holder, holder_id, action, issued = entry.holder, entry.holder_id, entry.action, entry.issued
        else:
            try:
                sealed = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
            except (ValueError, TypeError):
                return None
            if len(sealed) <= _HEADER.size + _MAC_BYTES:
                return None
            header, mac, raw = (
                sealed[: _HEADER.size],
                sealed[_HEADER.size : _HEADER.size + _MAC_BYTES],
                sealed[_HEADER.size + _MAC_BYTES :],
            )
            issued, kind = _HEADER.unpack(header)
            if kind not in (Holder.PERSON, Holder.CHAT):
                return None
            holder = Holder(kind)
            expected_id = presser_id if holder is Holder.PERSON else chat_id
            if expected_id is None or not hmac.compare_digest(mac, self._mac(header, expected_id, raw)):
                return None
            try:
                action = raw.decode()
            except UnicodeDecodeError:
                return None
            holder_id = expected_id
        if holder is Holder.PERSON and holder_id != presser_id:
            return None
        if holder is Holder.CHAT and holder_id != chat_id:
            return None
        age = self._minute() - issued
        if age < -5 or age > self._lifetime_minutes:  # a few minutes of leeway for a clock set back
            return None
        return Press(action, from_card=holder is Holder.CHAT)
