"""What's happening with my request: the person's open request, or their latest one from the last days.

The answer names the request's number and status, who decided it and when,
and when it expires; with no request, it says so and offers the way in that
the policy gives for the person's lock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bot.flows.base import Flow, Outcome, Turn
from bot.flows.menu import MENU
from bot.flows.situation import next_step, read_situation
from bot.messages import Button, Reply
from bot.requests.unlock_requests import latest_request, open_request
from bot.storage.models import UnlockRequest

# A request closed longer ago than this is history, not news.
RECENT = timedelta(days=7)


def described(request: UnlockRequest, now: datetime) -> dict[str, Any]:
    return {
        "id": request.id,
        "kind": request.kind,
        "status": request.status,
        "created_at": request.created_at,
        "updated_at": request.updated_at,
        "expires_at": request.expires_at,
        # Still "pending" in the table until the housekeeper's next round, but past its time.
        "lapsed": request.status == "pending" and request.expires_at <= now,
        "decided_by": request.decided_by,
        "decided_at": request.decided_at,
        "note": request.decision_note,
        "executed_at": request.executed_at,
    }


async def request_status(turn: Turn) -> Outcome:
    username = turn.require_user()
    request = await open_request(turn.session, username)
    if request is None:
        request = await latest_request(turn.session, username, since=turn.now - RECENT)
    situation = await read_situation(turn)
    context = {"request": described(request, turn.now) if request else None, "facts": situation.facts()}
    if request is not None and request.status == "pending" and request.kind == "unlock":
        buttons: tuple[Button, ...] = (Button(f"withdraw:{request.id}", "withdraw"), MENU)
    elif request is not None and request.status in ("pending", "approved", "executing"):
        buttons = (MENU,)
    else:
        buttons = (*next_step(situation), MENU)
    return Outcome([Reply("my_request/status", context, buttons)])


REQUEST_STATUS = Flow("request_status", start=request_status)
