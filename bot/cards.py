"""Request cards on chat platforms: what to post to an admin destination, and what to redraw.

A channel that has an admin destination (a Telegram group, a Slack channel)
asks the board which pending requests it has not posted yet, posts them, and
records where; later it asks which posted cards no longer match their
request's status (decided, expired, done) and edits them, so every copy
shows who decided and when, without buttons. The board renders cards; the
channel only sends them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from bot.clock import Clock
from bot.flows.decisions import card
from bot.messages import Rendered
from bot.rendering import Renderer
from bot.requests.unlock_requests import Status
from bot.storage.db import Database
from bot.storage.models import RequestCard, UnlockRequest


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

    async def to_post(self, channel: str, destination: str) -> list[CardToPost]:
        """Pending requests without a card on this destination yet."""
        async with self._db.session() as session:
            posted = select(RequestCard.request_id).where(
                RequestCard.channel == channel, RequestCard.destination == destination
            )
            requests = await session.scalars(
                select(UnlockRequest)
                .where(
                    UnlockRequest.status == Status.PENDING.value,
                    UnlockRequest.expires_at > self._clock.now(),
                    UnlockRequest.id.not_in(posted),
                )
                .order_by(UnlockRequest.id)
            )
            return [CardToPost(r.id, self._render(r)) for r in requests]

    async def posted(self, channel: str, destination: str, request_id: int, message_ref: str) -> None:
        now = self._clock.now()
        async with self._db.session() as session, session.begin():
            request = await session.get(UnlockRequest, request_id)
            assert request is not None
            session.add(
                RequestCard(
                    request_id=request_id,
                    channel=channel,
                    destination=destination,
                    message_ref=message_ref,
                    shown_status=request.status,
                    posted_at=now,
                    updated_at=now,
                )
            )

    async def to_redraw(self, channel: str, destination: str) -> list[CardToRedraw]:
        """Posted cards whose request has moved on since they were drawn."""
        async with self._db.session() as session:
            rows = await session.execute(
                select(RequestCard, UnlockRequest)
                .join(UnlockRequest, UnlockRequest.id == RequestCard.request_id)
                .where(
                    RequestCard.channel == channel,
                    RequestCard.destination == destination,
                    RequestCard.shown_status != UnlockRequest.status,
                )
            )
            return [CardToRedraw(r.id, c.message_ref, self._render(r), r.status) for c, r in rows.all()]

    async def redrawn(self, channel: str, destination: str, request_id: int, status_shown: str) -> None:
        async with self._db.session() as session, session.begin():
            row = await session.scalar(
                select(RequestCard).where(
                    RequestCard.channel == channel,
                    RequestCard.destination == destination,
                    RequestCard.request_id == request_id,
                )
            )
            if row is not None:
                row.shown_status = status_shown
                row.updated_at = self._clock.now()
