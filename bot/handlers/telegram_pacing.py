"""Sending to Telegram no faster than Telegram takes it, replies first.

Telegram answers 429 to a bot that sends more than about 30 messages a second overall (and 20 a minute into
one group). PTB's ``AIORateLimiter`` uses a leaky bucket that lets a full second's worth through at once
and then keeps dripping, so a burst of a few hundred replies still draws 429s. ``PacedRateLimiter`` keeps a
strict window instead: no one-second window ever holds more than ``messages_per_second`` sends, and sends
are spread through the second rather than fired at its start. When several sends wait, replies to someone
who is writing go before notices nobody is waiting for (``notices()`` marks the latter). If Telegram still
answers 429 (another process with the same token), every send waits out the ``retry_after`` it asked for,
and the refused one is tried again, first in line.

Order within one chat is kept by the callers: a channel awaits each send before the next to the same
person, and sends waiting at the same priority go in the order they came.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import itertools
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from datetime import timedelta
from typing import Any

from aiolimiter import AsyncLimiter
from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

log = logging.getLogger(__name__)

JSONDict = dict[str, Any]
Result = bool | JSONDict | list[JSONDict]

REPLY, NOTICE = 0, 1  # lower goes first
# The window sends are counted in: a little more than Telegram's second, because Telegram counts requests when
# they arrive and some take a few milliseconds longer on the way than others.
WINDOW = 1.03
_priority: contextvars.ContextVar[int] = contextvars.ContextVar("telegram_send_priority", default=REPLY)


@contextlib.contextmanager
def notices() -> Iterator[None]:
    """Sends made inside this block are notices: they wait while replies are waiting."""
    token = _priority.set(NOTICE)
    try:
        yield
    finally:
        _priority.reset(token)


class Pacer:
    """Hands out send slots, to the waiter of the highest priority first, never more than ``per_second`` in any
    one ``WINDOW``.

    Slots are spread out (at least half the even spacing apart), but a slot handed out late (the loop was
    busy) does not lose its place in the second: the sends that follow may catch up, as long as the last
    second holds fewer than ``per_second``.
    """

    def __init__(self, per_second: float) -> None:
        self._limit = max(1, int(per_second))
        self._gap = 0.5 / per_second
        self._sent: deque[float] = deque()  # when the slots of the last second were handed out
        self._not_before = 0.0
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def slot(self, priority: int) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._hand_out())
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._order), future))
        self._wake.set()
        await future

    def hold(self, seconds: float) -> None:
        """No slot for ``seconds`` (Telegram said to wait)."""
        loop = asyncio.get_running_loop()
        self._not_before = max(self._not_before, loop.time() + seconds)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for _, _, future in self._waiting:
            future.cancel()

    def _wait_for(self, now: float) -> float:
        """How long until the next slot may be handed out."""
        while self._sent and self._sent[0] <= now - WINDOW:
            self._sent.popleft()
        waits = [self._not_before - now]
        if self._sent:
            waits.append(self._sent[-1] + self._gap - now)
        if len(self._sent) >= self._limit:
            waits.append(self._sent[0] + WINDOW - now)
        return max(waits)

    async def _hand_out(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._waiting:
                self._wake.clear()
                await self._wake.wait()
            delay = self._wait_for(loop.time())
            if delay > 0:
                await asyncio.sleep(delay)  # a reply that arrives meanwhile still goes before a waiting notice
                continue
            _, _, future = heapq.heappop(self._waiting)
            if future.cancelled():
                continue
            future.set_result(None)
            self._sent.append(loop.time())


def retry_seconds(error: RetryAfter) -> float:
    """How long Telegram asked to wait, whichever PTB version raised ``error``."""
    value = getattr(error, "_retry_after", None)  # a timedelta in PTB 22, whose public property warns
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(error.retry_after)  # type: ignore[arg-type]  # an int before PTB 22


class PacedRateLimiter(BaseRateLimiter[int]):
    """A PTB rate limiter: every message-sending call paced by one ``Pacer``; groups kept to their own limit."""

    def __init__(self, messages_per_second: float, *, group_per_minute: float = 20, max_retries: int = 5) -> None:
        self._per_second = messages_per_second
        self._group_per_minute = group_per_minute
        self._max_retries = max_retries
        self._pacer: Pacer | None = None
        self._groups: dict[int | str, AsyncLimiter] = {}

    async def initialize(self) -> None:
        self._pacer = Pacer(self._per_second)

    async def shutdown(self) -> None:
        if self._pacer is not None:
            await self._pacer.close()

    def _group(self, chat_id: int | str) -> AsyncLimiter:
        if len(self._groups) > 512:  # forget groups that have been quiet for a full period
            for key, quiet in list(self._groups.items()):
                if quiet.has_capacity(quiet.max_rate):
                    del self._groups[key]
        if chat_id not in self._groups:
            self._groups[chat_id] = AsyncLimiter(self._group_per_minute, 60)
        return self._groups[chat_id]

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Result]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Result:
        chat_id = data.get("chat_id")
        if chat_id is None or self._pacer is None:  # getUpdates, answerCallbackQuery...: not a message
            return await callback(*args, **kwargs)
        group = chat_id if isinstance(chat_id, str) or int(chat_id) < 0 else None
        priority = _priority.get()
        for attempt in range(self._max_retries + 1):
            async with self._group(group) if group is not None else contextlib.nullcontext():
                await self._pacer.slot(priority)
                try:
                    return await callback(*args, **kwargs)
                except RetryAfter as exc:
                    wait = retry_seconds(exc)
                    if attempt == self._max_retries:
                        raise
                    log.warning("telegram: %s answered 429; every send waits %.1f s", endpoint, wait)
                    self._pacer.hold(wait)
                    priority = REPLY - 1  # first in line once the wait is over
        raise AssertionError("unreachable")
