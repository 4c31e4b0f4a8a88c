"""What a turn asks of its databases, as a budget: a change that adds round trips to every turn is noticed here.

Counted, not timed: each statement is a round trip and, through the async ORM, most of a turn's CPU
(``bench/serve_bench.py`` measures the time).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from bot.app import App
from bot.crm.sql import SqlCrm
from bot.storage.db import Database
from tests.chat import Chat


@contextmanager
def statements(database: Database) -> Iterator[list[str]]:
    """The SQL statements run on ``database`` inside the block, by their first words."""
    seen: list[str] = []

    def note(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()[:4]))

    target = database.engine.sync_engine
    event.listen(target, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(target, "before_cursor_execute", note)


async def test_why_am_i_locked_costs_six_statements_and_four_to_the_crm(app: App) -> None:
    assert isinstance(app.crm, SqlCrm)
    chat = Chat(app.engine, "carol", locale="en")
    await chat.start()
    with statements(app.database) as bot, statements(app.crm.database) as crm:
        said = await chat.say("why am I locked?", event_id="why-1")
    assert "locked" in said.text
    # The event id, the conversation with the linked user, the open request, the open incident, the
    # conversation written back, the notifications waiting.
    assert len(bot) <= 6, bot
    # The user with their licence and its seats, the failed sign-ins, the flagged action, the recent locks.
    assert len(crm) <= 4, crm


async def test_a_redelivered_event_costs_one_statement(app: App) -> None:
    chat = Chat(app.engine, "carol", locale="en")
    await chat.start()
    await chat.say("why am I locked?", event_id="why-1")
    with statements(app.database) as bot:
        said = await chat.say("why am I locked?", event_id="why-1")
    assert said.replies == []
    assert len(bot) == 1, bot
