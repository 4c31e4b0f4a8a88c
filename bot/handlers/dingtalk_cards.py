"""DingTalk's robot interactive cards (the ``StandardCard`` kind): replies with buttons, and request cards.

Pure functions between our ``Rendered`` replies and DingTalk's JSON; nothing here calls DingTalk. A card
shows the reply's text as plain text (never markdown: a deny reason someone typed must stay as typed)
and one button per choice. A button's id is the engine's action: DingTalk sends it back as the
pressed action id (``cardPrivateData.actionIds``) with the presser's user id, over the Stream
connection or the signed callback, so nothing in a press is taken from the presser's own client.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from bot.messages import Rendered

TEMPLATE = "StandardCard"  # the card DingTalk draws from the JSON we send; no template to build in its console
# Card ids (DingTalk's cardBizId / outTrackId) say what a card is: a request card in the admin group, or a reply.
REQUEST_CARD = "unlockbot-request-"
REPLY_CARD = "unlockbot-reply-"
_TEXT_CHARS = 5000
_BUTTON_CHARS = 60  # a long label wraps on the button; past this it is cut
_TITLE_CHARS = 40


def request_card_id(request_id: int) -> str:
    return f"{REQUEST_CARD}{request_id}-{uuid.uuid4().hex[:12]}"


def reply_card_id() -> str:
    return f"{REPLY_CARD}{uuid.uuid4().hex}"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _status(action: str) -> str:
    return {"approve": "primary", "deny": "warning"}.get(action.partition(":")[0], "normal")


def card_data(reply: Rendered, title: str) -> dict[str, Any]:
    """A reply (or a request card) as a card: a title, its text, and its buttons; decided cards have none."""
    contents: list[dict[str, Any]] = [{"type": "text", "text": _cut(reply.text, _TEXT_CHARS), "id": "text"}]
    if reply.buttons:
        buttons = [
            {
                "type": "button",
                "label": {"type": "text", "text": _cut(button.label, _BUTTON_CHARS), "id": f"label-{number}"},
                "actionType": "request",
                "status": _status(button.action),
                "id": button.action,
            }
            for number, button in enumerate(reply.buttons)
        ]
        contents.append({"type": "action", "actions": buttons, "id": "actions"})
    return {
        "config": {"autoLayout": True, "enableForward": False},
        "header": {"title": {"type": "text", "text": _cut(title, _TITLE_CHARS)}},
        "contents": contents,
    }


def pressed_action(content: Mapping[str, Any]) -> str:
    """The action of the button pressed, from a card callback's parsed ``content``; empty if none."""
    private = content.get("cardPrivateData")
    actions = private.get("actionIds") if isinstance(private, Mapping) else None
    if isinstance(actions, list) and actions and isinstance(actions[0], str):
        return actions[0]
    return ""


def callback_content(raw: object) -> dict[str, Any]:
    """A card callback's ``content`` (a JSON string inside the JSON), as a dict; empty when malformed."""
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        parsed = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
