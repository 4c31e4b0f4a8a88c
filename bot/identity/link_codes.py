"""One-time link codes: how a Telegram or console account is bound to a CRM user.

An admin issues a code for a CRM user; the person sends it to the bot from the
chat account to bind. Codes are random (60 bits), single use, expire, and only
their SHA-256 is stored. Redeeming is one conditional UPDATE, so a code used
twice at once binds once. A wrong, used or expired code gets the same answer,
so guessing tells nothing.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.identity.linking import link
from bot.requests import audit
from bot.storage.models import ChatIdentity, LinkCode

# Crockford's base32: no I, L, O or U to misread.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
GROUPS = 3
GROUP_LENGTH = 4
DEFAULT_LIFETIME = timedelta(hours=24)
# Only the code alphabet (no I, L, O or U), so an ordinary 12-letter word is not taken for a code.
_GROUP = "[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{4}"
_SHAPE = re.compile(rf"^{_GROUP}[-\s]?{_GROUP}[-\s]?{_GROUP}$")
_MISREAD = str.maketrans({"I": "1", "L": "1", "O": "0"})


@dataclass(frozen=True, slots=True)
class IssuedCode:
    code: str
    username: str
    expires_at: datetime

    def __repr__(self) -> str:
        return f"IssuedCode(username={self.username!r}, expires_at={self.expires_at!r}, code=<hidden>)"


def looks_like_link_code(text: str) -> bool:
    return bool(_SHAPE.match(text.strip()))


def canonical(code: str) -> str:
    return re.sub(r"[-\s]", "", code).upper().translate(_MISREAD)


def code_hash(code: str) -> str:
    return hashlib.sha256(canonical(code).encode()).hexdigest()


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(GROUPS * GROUP_LENGTH))
    return "-".join(raw[i : i + GROUP_LENGTH] for i in range(0, len(raw), GROUP_LENGTH))


async def issue(
    session: AsyncSession,
    *,
    now: datetime,
    username: str,
    by: str,
    issuer: str | None = None,
    lifetime: timedelta = DEFAULT_LIFETIME,
) -> IssuedCode:
    """A new code for ``username``; earlier unused codes for that user stop working.

    ``issuer`` is the CRM user of the admin who asked in chat (``None`` from the CLI); the account bound
    with the code remembers it, so that admin can never decide their own request through it.
    """
    await session.execute(
        update(LinkCode)
        .where(LinkCode.crm_username == username, LinkCode.used_at.is_(None), LinkCode.expires_at > now)
        .values(expires_at=now)
        .execution_options(synchronize_session=False)
    )
    code = new_code()
    expires_at = now + lifetime
    session.add(
        LinkCode(
            code_hash=code_hash(code),
            crm_username=username,
            created_by=by,
            issuer_username=issuer,
            created_at=now,
            expires_at=expires_at,
        )
    )
    await session.flush()
    await audit.record(session, at=now, actor=by, action="link_code.issued", subject=username)
    return IssuedCode(code, username, expires_at)


async def redeem(
    session: AsyncSession, *, now: datetime, code: str, channel: str, team_id: str, user_id: str
) -> ChatIdentity | None:
    """Bind the chat account with ``code``; ``None`` when the code is wrong, used or expired."""
    hashed = code_hash(code)
    row = await session.scalar(select(LinkCode).where(LinkCode.code_hash == hashed))
    claimed = await session.execute(
        update(LinkCode)
        .where(LinkCode.code_hash == hashed, LinkCode.used_at.is_(None), LinkCode.expires_at > now)
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    actor = f"{channel}:{user_id}"
    if row is None or claimed.rowcount != 1:  # type: ignore[attr-defined]
        await audit.record(session, at=now, actor=actor, action="link_code.refused", subject=actor)
        return None
    identity = await link(
        session,
        now=now,
        channel=channel,
        team_id=team_id,
        user_id=user_id,
        username=row.crm_username,
        by=actor,
        invited_by=row.issuer_username,
    )
    await session.execute(
        update(LinkCode)
        .where(LinkCode.id == row.id)
        .values(used_by=identity.id)
        .execution_options(synchronize_session=False)
    )
    return identity
