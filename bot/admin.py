"""Admin actions on identities from the command line (the chat commands are in ``bot.flows.admin``).

Each takes the opened ``App`` and who is acting, changes one thing in one
transaction, and leaves an audit event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote

from sqlalchemy import select

from bot.app import App
from bot.errors import AccountNotFound
from bot.identity import enrolment, link_codes
from bot.identity.linking import unlink
from bot.requests import audit
from bot.storage.models import TotpEnrolment


@dataclass(frozen=True, slots=True)
class Invitation:
    issued: link_codes.IssuedCode
    telegram_link: str | None


async def invite(app: App, username: str, *, by: str) -> Invitation:
    """A one-time link code for the CRM user ``username`` (who must exist in the CRM)."""
    account = await app.crm.find_account(username)
    if account is None:
        raise AccountNotFound(username)
    async with app.database.session() as session, session.begin():
        issued = await link_codes.issue(
            session,
            now=app.clock.now(),
            username=account.username,
            by=by,
            lifetime=timedelta(hours=app.settings.totp.link_code_hours),
        )
    bot_name = app.settings.telegram.bot_username
    deep_link = f"https://t.me/{bot_name}?start={quote(link_codes.canonical(issued.code))}" if bot_name else None
    return Invitation(issued, deep_link)


async def unlink_user(app: App, username: str, *, by: str, channel: str | None = None) -> int:
    async with app.database.session() as session, session.begin():
        return await unlink(session, now=app.clock.now(), username=username, by=by, channel=channel)


async def reset_totp(app: App, username: str, *, by: str) -> bool:
    """Forget the user's authenticator at once and tell them to enrol again."""
    async with app.database.session() as session, session.begin():
        return await enrolment.reset(app.totp, session, now=app.clock.now(), username=username, actor=by)


async def rotate_keys(app: App, *, by: str) -> int:
    """Re-encrypt every stored secret under the current key; how many were re-encrypted."""
    async with app.database.session() as session, session.begin():
        enrolments = list(await session.scalars(select(TotpEnrolment)))
        for enrolment in enrolments:
            app.totp.rotate(enrolment)
        await audit.record(
            session,
            at=app.clock.now(),
            actor=by,
            action="keys.rotated",
            subject="*",
            details={"secrets": len(enrolments)},
        )
        return len(enrolments)
