"""Feishu message cards (card JSON 2.0) for the Feishu channel, and what a card callback carries back.

Pure functions from ``Rendered`` replies to the JSON of an ``interactive`` message; nothing here calls Feishu.
Every reply is a card, so that its text can be ``plain_text``: nothing a person typed or the CRM said turns
into markup, a link or an @-mention. Each button sends the engine's action back in its callback value. A
reply that asks for a code carries a form with a password field: the code comes back in the callback and
never becomes a chat message, which matters on Feishu because a bot may recall only its own messages.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.messages import Rendered, RenderedButton

ACTION = "action"  # a button's callback value: {"action": <the engine's action>}
FORM = "form"  # the code form's submit button: {"form": "code"}
CODE = "code"  # the name of the form's password field, and of the form
# A card's JSON may be 30 KB, three bytes a Chinese character; text beyond this is cut (answers are far shorter).
MAX_TEXT = 6000
_SUMMARY_CHARS = 60
_CODE_CHARS = 12

Card = dict[str, Any]


@dataclass(frozen=True, slots=True)
class CodeForm:
    """The words of the code form, in the reply's language (labels ``feishu_code_label`` and ``feishu_send``)."""

    label: str
    send: str


def _plain(text: str) -> dict[str, str]:
    return {"tag": "plain_text", "content": text}


def _style(action: str) -> str:
    return {"approve": "primary", "deny": "danger"}.get(action.partition(":")[0], "default")


def _button(button: RenderedButton) -> Card:
    return {
        "tag": "button",
        "text": _plain(button.label),
        "type": _style(button.action),
        "behaviors": [{"type": "callback", "value": {ACTION: button.action}}],
    }


def _code_form(words: CodeForm) -> Card:
    return {
        "tag": "form",
        "name": CODE,
        "elements": [
            {
                "tag": "input",
                "name": CODE,
                "input_type": "password",
                "required": True,
                "max_length": _CODE_CHARS,
                "placeholder": _plain(words.label),
            },
            {
                "tag": "button",
                "name": "send",
                "text": _plain(words.send),
                "type": "primary",
                "form_action_type": "submit",
                "behaviors": [{"type": "callback", "value": {FORM: CODE}}],
            },
        ],
    }


def card(reply: Rendered, code_form: CodeForm | None = None) -> Card:
    """A reply (or a request card) as a card: its text, a form when it asks for a code, then its buttons.

    Buttons stand one to a row: their labels are short sentences, in Chinese and English alike. A decided
    request card has none. The summary is what Feishu shows in the chat list.
    """
    text = reply.text if len(reply.text) <= MAX_TEXT else reply.text[: MAX_TEXT - 1] + "…"
    elements: list[Card] = [{"tag": "div", "text": _plain(text)}]
    if reply.secret_input and code_form is not None:
        elements.append(_code_form(code_form))
    elements += [_button(button) for button in reply.buttons]
    first_line = text.strip().split("\n", 1)[0]
    return {
        "schema": "2.0",
        "config": {"update_multi": True, "summary": {"content": first_line[:_SUMMARY_CHARS]}},
        "body": {"elements": elements},
    }


def content(message: Card) -> str:
    """The ``content`` string of an ``interactive`` message (or of a patch to one)."""
    return json.dumps(message, ensure_ascii=False)


def pressed(value: Mapping[str, Any] | None, form: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """What a card callback asks: ("button", action) or ("code", what was typed in the form); else ``None``."""
    value = value or {}
    action = value.get(ACTION)
    if isinstance(action, str) and action:
        return "button", action
    if value.get(FORM) == CODE:
        typed = (form or {}).get(CODE)
        return "code", typed if isinstance(typed, str) else ""
    return None
