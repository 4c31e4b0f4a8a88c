"""Which CRM user a chat account belongs to.

A new binding is announced to the accounts the CRM user already had, so a
person learns at once when someone else linked a chat account in their name.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.requests import audit
from bot.requests.notifications import notify
from bot.storage.models import ChatIdentity, Conversation
from bot.storage.upsert import insert_if_absent

_LINKED = select(ChatIdentity.crm_username).where(
    ChatIdentity.channel == bindparam("channel"),
    ChatIdentity.team_id == bindparam("team_id"),
    ChatIdentity.platform_user_id == bindparam("user_id"),
)


async def linked_username(session: AsyncSession, channel: str, team_id: str, user_id: str) -> str | None:
    return await session.scalar(_LINKED, {"channel": channel, "team_id": team_id, "user_id": user_id})


def account_key(channel: str, team_id: str, user_id: str) -> str:
    """One chat account, as notifications and decisions name it."""
    return f"{channel}:{team_id}:{user_id}"


async def link(
    session: AsyncSession,
    *,
    now: datetime,
    channel: str,
    team_id: str,
    user_id: str,
    username: str,
    by: str,
    invited_by: str | None = None,
) -> ChatIdentity:
    """Bind the chat account to ``username`` (replacing an earlier binding), audit it and tell the others.

    ``invited_by`` is the CRM user who issued the link code, if an admin did in chat.
    """
    earlier = [
        i
        for i in await identities_of(session, username)
        if (i.channel, i.team_id, i.platform_user_id) != (channel, team_id, user_id)
    ]
    account = {"channel": channel, "team_id": team_id, "platform_user_id": user_id}
    # Two replicas may link the same newcomer at once (both asked the platform for the e-mail): the row is
    # created by one of them, and the other finds it, already bound to the same user, and leaves it be.
    created = await insert_if_absent(
        session, ChatIdentity, {**account, "crm_username": username, "linked_at": now, "linked_by": by}
    )
    identity = await session.scalar(
        select(ChatIdentity)
        .where(*(getattr(ChatIdentity, column) == value for column, value in account.items()))
        .with_for_update()
    )
    assert identity is not None
    if not created and identity.crm_username == username and identity.linked_by == by:
        return identity  # linked so already, by the same means: nothing to record twice
    identity.crm_username = username
    identity.linked_at = now
    identity.linked_by = by
    identity.invited_by = invited_by
    await session.flush()
    await audit.record(
        session,
        at=now,
        actor=by,
        action="identity.linked",
        subject=username,
        details={"channel": channel, "team": team_id, "user": user_id, "invited_by": invited_by},
    )
    if earlier:
        # Said to the accounts the person already had, never to the new one: if this was not them, they know.
        await notify(
            session,
            now=now,
            usernames=[username],
            template="identity/new_link",
            context={"channel": channel, "at": now.isoformat()},
            not_for=account_key(channel, team_id, user_id),
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
