"""Request cards on chat platforms: what to post to an admin destination, and what to redraw.

A channel that has an admin destination (a Telegram group, a Slack channel)
asks the board which pending requests it has not posted yet, posts them, and
records where; later it asks which posted cards no longer match their
request's status (decided, expired, done) and edits them, so every copy
shows who decided and when, without buttons. The board renders cards; the
channel only sends them.

Replicas share the destination, so each card is claimed before it is sent:
``to_post`` and ``to_redraw`` hand a card to one caller only, for ``CLAIM``.
The caller then reports ``posted`` or ``redrawn``, or ``release`` when
sending failed, so that the next round (on any replica) tries again at once.
A caller that dies says nothing; its claim runs out and another takes the
card over.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.flows.decisions import card
from bot.messages import Rendered
from bot.rendering import Renderer
from bot.requests.unlock_requests import Status
from bot.storage.db import Database
from bot.storage.models import RequestCard, UnlockRequest
from bot.storage.upsert import insert_if_absent

log = logging.getLogger(__name__)

# Long enough for any platform call to post or edit one message, with its retries.
CLAIM = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class CardToPost:
    request_id: int
    card: Rendered


@dataclass(frozen=True, slots=True)
class CardToRedraw:
    request_id: int
    message_ref: str
    card: Rendered
    status: str  # the status drawn: pass it back to ``redrawn``


class CardBoard:
    def __init__(self, database: Database, renderer: Renderer, clock: Clock, *, locale: str) -> None:
        self._db = database
        self._renderer = renderer
        self._clock = clock
        self._locale = locale

    def _render(self, request: UnlockRequest) -> Rendered:
        return self._renderer.render(card(request, now_pending=request.status == Status.PENDING.value), self._locale)

    @staticmethod
    def _on(channel: str, destination: str, request_id: int) -> ColumnElement[bool]:
        return and_(
            RequestCard.channel == channel,
            RequestCard.destination == destination,
            RequestCard.request_id == request_id,
        )

    async def to_post(self, channel: str, destination: str) -> list[CardToPost]:
        """Pending requests without a card on this destination yet, each claimed for the caller.

        Post each and call ``posted``, or ``release`` when posting failed.
        """
        now = self._clock.now()
        async with self._db.session() as session, session.begin():
            taken = select(RequestCard.request_id).where(
                RequestCard.channel == channel,
                RequestCard.destination == destination,
                or_(RequestCard.message_ref.is_not(None), RequestCard.claimed_until > now),
            )
            requests = list(
                await session.scalars(
                    select(UnlockRequest)
                    .where(
                        UnlockRequest.status == Status.PENDING.value,
                        UnlockRequest.expires_at > now,
                        UnlockRequest.id.not_in(taken),
                    )
                    .order_by(UnlockRequest.id)
                )
            )
            claimed = []
            for request in requests:
                claim = {
                    "request_id": request.id,
                    "channel": channel,
                    "destination": destination,
                    "message_ref": None,
                    "shown_status": request.status,  # what the card shows: a change after this is redrawn
                    "posted_at": now,
                    "updated_at": now,
                    "claimed_until": now + CLAIM,
                }
                if await insert_if_absent(session, RequestCard, claim) or await self._take_over(
                    session, channel, destination, request.id, status=request.status
                ):
                    claimed.append(CardToPost(request.id, self._render(request)))
            return claimed

    async def _take_over(
        self, session: AsyncSession, channel: str, destination: str, request_id: int, *, status: str
    ) -> bool:
        """Claim a card whose earlier claim ran out before it was posted (its poster died)."""
        now = self._clock.now()
        taken = await session.scalar(
            update(RequestCard)
            .where(
                self._on(channel, destination, request_id),
                RequestCard.message_ref.is_(None),
                or_(RequestCard.claimed_until.is_(None), RequestCard.claimed_until <= now),
            )
            .values(claimed_until=now + CLAIM, shown_status=status, updated_at=now)
            .returning(RequestCard.id)
            .execution_options(synchronize_session=False)
        )
        return taken is not None

    async def posted(self, channel: str, destination: str, request_id: int, message_ref: str) -> None:
        """The card claimed by ``to_post`` is out, as ``message_ref``: redraws edit that message."""
        now = self._clock.now()
        async with self._db.session() as session, session.begin():
            recorded = await session.scalar(
                update(RequestCard)
                .where(self._on(channel, destination, request_id), RequestCard.message_ref.is_(None))
                .values(message_ref=message_ref, claimed_until=None, updated_at=now)
                .returning(RequestCard.id)
                .execution_options(synchronize_session=False)
            )
            if recorded is not None:
                return
            request = await session.get(UnlockRequest, request_id)
            assert request is not None
            unclaimed = {
                "request_id": request_id,
                "channel": channel,
                "destination": destination,
                "message_ref": message_ref,
                "shown_status": request.status,
                "posted_at": now,
                "updated_at": now,
                "claimed_until": None,
            }
            if not await insert_if_absent(session, RequestCard, unclaimed):
                # Its claim ran out while it was being posted, and another process posted it as well.
                log.warning(
                    "the card of request %s was posted twice to %s %s; message %s is not kept up to date",
                    request_id,
                    channel,
                    destination,
                    message_ref,
                )

    async def release(self, channel: str, destination: str, request_id: int) -> None:
        """Sending the card failed: give the claim back, so the next round (on any replica) tries again.

        After a failed ``to_post`` the card counts as never posted; after a failed redraw it stays as it was.
        """
        async with self._db.session() as session, session.begin():
            await session.execute(
                delete(RequestCard)
                .where(self._on(channel, destination, request_id), RequestCard.message_ref.is_(None))
                .execution_options(synchronize_session=False)
            )
            await session.execute(
                update(RequestCard)
                .where(self._on(channel, destination, request_id), RequestCard.message_ref.is_not(None))
                .values(claimed_until=None)
                .execution_options(synchronize_session=False)
            )

    async def to_redraw(self, channel: str, destination: str) -> list[CardToRedraw]:
        """Posted cards whose request has moved on since they were drawn, each claimed for the caller.

        Edit each and call ``redrawn``, or ``release`` when editing failed.
        """
        now = self._clock.now()
        free = or_(RequestCard.claimed_until.is_(None), RequestCard.claimed_until <= now)
        async with self._db.session() as session, session.begin():
            rows = (
                await session.execute(
                    select(RequestCard.id, RequestCard.message_ref, UnlockRequest)
                    .join(UnlockRequest, UnlockRequest.id == RequestCard.request_id)
                    .where(
                        RequestCard.channel == channel,
                        RequestCard.destination == destination,
                        RequestCard.message_ref.is_not(None),
                        RequestCard.shown_status != UnlockRequest.status,
                        free,
                    )
                    .order_by(RequestCard.id)
                )
            ).all()
            if not rows:
                return []
            claimed = set(
                await session.scalars(
                    update(RequestCard)
                    .where(RequestCard.id.in_([card_id for card_id, _, _ in rows]), free)
                    .values(claimed_until=now + CLAIM)
                    .returning(RequestCard.id)
                    .execution_options(synchronize_session=False)
                )
            )
            return [
                CardToRedraw(request.id, str(ref), self._render(request), request.status)
                for card_id, ref, request in rows
                if card_id in claimed
            ]

    async def redrawn(self, channel: str, destination: str, request_id: int, status_shown: str) -> None:
        async with self._db.session() as session, session.begin():
            await session.execute(
                update(RequestCard)
                .where(self._on(channel, destination, request_id))
                .values(shown_status=status_shown, updated_at=self._clock.now(), claimed_until=None)
                .execution_options(synchronize_session=False)
            )
