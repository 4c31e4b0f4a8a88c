"""Which CRM user a chat account belongs to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.requests import audit
from bot.storage.models import ChatIdentity, Conversation


async def linked_username(session: AsyncSession, channel: str, team_id: str, user_id: str) -> str | None:
    return await session.scalar(
        select(ChatIdentity.crm_username).where(
            ChatIdentity.channel == channel,
            ChatIdentity.team_id == team_id,
            ChatIdentity.platform_user_id == user_id,
        )
    )


async def link(
    session: AsyncSession, *, now: datetime, channel: str, team_id: str, user_id: str, username: str, by: str
) -> ChatIdentity:
    """Bind the chat account to ``username`` (replacing an earlier binding) and audit it."""
    identity = await session.scalar(
        select(ChatIdentity).where(
            ChatIdentity.channel == channel,
            ChatIdentity.team_id == team_id,
            ChatIdentity.platform_user_id == user_id,
        )
    )
    if identity is None:
        identity = ChatIdentity(channel=channel, team_id=team_id, platform_user_id=user_id, crm_username="")
        session.add(identity)
    identity.crm_username = username
    identity.linked_at = now
    identity.linked_by = by
    await session.flush()
    await audit.record(
        session,
        at=now,
        actor=by,
        action="identity.linked",
        subject=username,
        details={"channel": channel, "team": team_id, "user": user_id},
    )
    return identity


async def unlink(session: AsyncSession, *, now: datetime, username: str, by: str, channel: str | None = None) -> int:
    """Remove the chat accounts bound to ``username`` (on one channel, or all); how many were removed."""
    query = select(ChatIdentity).where(ChatIdentity.crm_username == username)
    if channel is not None:
        query = query.where(ChatIdentity.channel == channel)
    identities = list(await session.scalars(query))
    for identity in identities:
        # The conversation goes too: nothing said before the unlink is shown to whoever holds the chat now.
        await session.execute(
            delete(Conversation).where(
                Conversation.channel == identity.channel,
                Conversation.team_id == identity.team_id,
                Conversation.user_id == identity.platform_user_id,
            )
        )
        await session.delete(identity)
    await session.flush()
    if identities:
        await audit.record(
            session,
            at=now,
            actor=by,
            action="identity.unlinked",
            subject=username,
            details={"accounts": [f"{i.channel}:{i.platform_user_id}" for i in identities]},
        )
    return len(identities)


async def identities_of(session: AsyncSession, username: str) -> list[ChatIdentity]:
    return list(await session.scalars(select(ChatIdentity).where(ChatIdentity.crm_username == username)))
