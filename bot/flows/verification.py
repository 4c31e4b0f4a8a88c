"""The TOTP step that several flows share: ask for a code, check it, explain a refusal."""

from __future__ import annotations

from bot.flows.base import Outcome, Turn
from bot.flows.menu import CANCEL, MENU, MENU_BUTTONS
from bot.identity.totp import CodeCheck
from bot.messages import Button, Reply
from bot.metrics import metrics_of
from bot.requests.notifications import notify

ENROL = Button("enrol", "enrol")
# Codes that were checked and refused (a code typed during a lockout is not checked, so it is not counted).
_GUESSES = frozenset({CodeCheck.WRONG, CodeCheck.REPLAYED})


def ask_code(purpose: str) -> Reply:
    """Ask for a code; ``purpose`` (``details``, ``unlock`` or ``enrol``) says what it is for."""
    return Reply("verify/ask", {"purpose": purpose}, buttons=(CANCEL,), secret_input=True)


def not_enrolled() -> Outcome:
    return Outcome([Reply("errors/not_enrolled", buttons=(ENROL, MENU))])


async def check_code(turn: Turn, *, step: str, confirming: bool = False) -> Outcome | None:
    """``None`` when the code is right; otherwise what to tell the person, staying on ``step`` if they may retry."""
    username = turn.require_user()
    if turn.inbound.public:
        # Others can read it: the code is burnt for nothing, and nothing is checked.
        return Outcome([Reply("verify/public", buttons=(CANCEL,), secret_input=True)], step=step, data=turn.data)
    result = await turn.services.totp.verify(turn.session, username, turn.text, actor=turn.actor, confirming=confirming)
    if result.outcome is CodeCheck.OK:
        turn.verified_at = turn.now  # a follow-up within the grace period asks for no other code
        return None
    metrics = metrics_of(turn.session)
    if metrics is not None and (result.outcome in _GUESSES or result.lockout_started):
        metrics.totp_failures.inc()
    if result.outcome is CodeCheck.THROTTLED:
        assert result.retry_after is not None
        wait = result.retry_after.total_seconds()
        if result.lockout_started:
            await notify(
                turn.session,
                now=turn.now,
                usernames=[a for a in turn.services.admins if a != username],
                template="admin/throttled",
                context={"username": username, "wait": wait},
            )
        return Outcome([Reply("verify/throttled", {"wait": wait}, MENU_BUTTONS)])
    if result.outcome is CodeCheck.NOT_ENROLLED:
        return not_enrolled()
    retry = Reply(
        f"verify/{result.outcome.value}",
        {"attempts_left": result.attempts_left},
        buttons=(CANCEL,),
        secret_input=True,
    )
    return Outcome([retry], step=step, data=turn.data)
