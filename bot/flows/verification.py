"""The TOTP step that several flows share: ask for a code, check it, explain a refusal."""

from __future__ import annotations

from bot.flows.base import Outcome, Turn
from bot.flows.menu import MENU_BUTTONS
from bot.identity.totp import Outcome as Verdict
from bot.messages import Button, Reply

CANCEL = Button("cancel", "cancel")


def ask_code(purpose: str) -> Reply:
    """Ask for a code; ``purpose`` (``details`` or ``unlock``) says what it is for."""
    return Reply("verify/ask", {"purpose": purpose}, buttons=(CANCEL,), secret_input=True)


async def check_code(turn: Turn, *, step: str) -> Outcome | None:
    """``None`` when the code is right; otherwise what to tell the person, staying on ``step`` if they may retry."""
    username = turn.require_user()
    result = await turn.services.totp.verify(turn.session, username, turn.text, actor=turn.actor)
    if result.outcome is Verdict.OK:
        return None
    if result.outcome is Verdict.THROTTLED:
        assert result.retry_after is not None
        return Outcome([Reply("verify/throttled", {"wait": result.retry_after.total_seconds()}, MENU_BUTTONS)])
    if result.outcome is Verdict.NOT_ENROLLED:
        return Outcome([Reply("errors/not_enrolled")])
    retry = Reply(
        f"verify/{result.outcome.value}",
        {"attempts_left": result.attempts_left},
        buttons=(CANCEL,),
        secret_input=True,
    )
    return Outcome([retry], step=step, data=turn.data)
