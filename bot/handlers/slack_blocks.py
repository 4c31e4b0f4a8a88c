"""Block Kit for the Slack channel: replies as messages, request cards, the App Home, and input modals.

Pure functions from ``Rendered`` replies to Slack's JSON; nothing here calls Slack. Every button a
reply offers carries the engine's action as its value. The few words that belong to Slack's own
controls rather than to the conversation (the button that opens a code modal, a modal's title and its
Send button) are kept here in both locales, chosen by the script of the reply they belong to.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bot.messages import LOCALES, Rendered, RenderedButton

# action_id prefixes: a reply's own buttons, and the buttons that open an input modal.
REPLY_BUTTON = "unlockbot.reply."
OPEN_CODE_MODAL = "unlockbot.input.code"
OPEN_ANSWER_MODAL = "unlockbot.input.answer"
# callback_id of the two modals.
CODE_MODAL = "unlockbot.code"
ANSWER_MODAL = "unlockbot.answer"
# block_id and action_id of the one input in each modal.
INPUT_BLOCK = "input"
INPUT_ACTION = "value"
CARD_BLOCK = "card."

CANCEL_ACTION = "cancel"
# Slack's limits (https://docs.slack.dev/reference/block-kit/blocks).
_SECTION_CHARS = 3000
_BUTTON_CHARS = 75
_BUTTONS_PER_BLOCK = 25
_MESSAGE_BLOCKS = 50
_HOME_BLOCKS = 100
_TITLE_CHARS = 24
_CODE_CHARS = 12
_ANSWER_CHARS = 500

Block = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Controls:
    """The words on Slack's own controls, in one locale."""

    locale: str
    enter_code: str
    code_title: str
    code_label: str
    answer: str
    answer_title: str
    answer_label: str
    send: str
    close: str


def controls(label: Callable[[str, str], str], locale: str) -> Controls:
    """The words on Slack's own controls in ``locale``, from ``templates/<locale>/labels.yaml``."""
    locale = locale if locale in LOCALES else "en"

    def word(key: str) -> str:
        return label(f"slack_{key}", locale)

    return Controls(
        locale=locale,
        enter_code=word("enter_code"),
        code_title=word("code_title"),
        code_label=word("code_label"),
        answer=word("answer"),
        answer_title=word("answer_title"),
        answer_label=word("answer_label"),
        send=word("send"),
        close=word("close"),
    )


@dataclass(frozen=True, slots=True)
class ReplyTarget:
    """Where the answer to a modal goes: the conversation the modal was opened from.

    ``channel`` empty means the person's direct messages with the bot; ``ephemeral`` means only the
    person sees it (in a shared channel); ``message_ts`` is the message to mark while working.
    """

    channel: str = ""
    ephemeral: bool = False
    message_ts: str = ""

    def to_metadata(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_metadata(cls, raw: str) -> ReplyTarget:
        data = json.loads(raw or "{}")
        return cls(str(data.get("channel", "")), bool(data.get("ephemeral", False)), str(data.get("message_ts", "")))


def escape(text: str) -> str:
    """Text for a ``text`` field that Slack reads as mrkdwn (the notification fallback)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _plain(text: str, limit: int | None = None) -> dict[str, Any]:
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return {"type": "plain_text", "text": text or " ", "emoji": True}


def _chunks(text: str, limit: int) -> list[str]:
    """Split at line breaks where possible, so each piece fits one section."""
    pieces: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        cut = cut if cut > 0 else limit
        pieces.append(text[:cut])
        text = text[cut:].lstrip("\n")
    if text:
        pieces.append(text)
    return pieces


def text_blocks(text: str) -> list[Block]:
    # plain_text, not mrkdwn: templates write plain text, and a * or _ in it must stay as typed.
    return [{"type": "section", "text": _plain(piece)} for piece in _chunks(text, _SECTION_CHARS)]


def _button(action_id: str, label: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": _plain(label, _BUTTON_CHARS),
        "value": value,
    }
    if style is not None:
        button["style"] = style
    return button


def _actions(buttons: Sequence[dict[str, Any]], block_id: str | None = None) -> list[Block]:
    blocks: list[Block] = []
    for start in range(0, len(buttons), _BUTTONS_PER_BLOCK):
        block: Block = {"type": "actions", "elements": list(buttons[start : start + _BUTTONS_PER_BLOCK])}
        if block_id is not None:
            block["block_id"] = f"{block_id}.{start}"
        blocks.append(block)
    return blocks


def _style(action: str) -> str | None:
    name = action.partition(":")[0]
    return {"approve": "primary", "deny": "danger"}.get(name)


def reply_buttons(buttons: Iterable[RenderedButton]) -> list[dict[str, Any]]:
    return [
        _button(f"{REPLY_BUTTON}{number}", button.label, button.action, _style(button.action))
        for number, button in enumerate(buttons)
    ]


def asks_for_text(reply: Rendered) -> bool:
    """A question answered by typing (it offers Cancel), other than a code."""
    return not reply.secret_input and any(button.action == CANCEL_ACTION for button in reply.buttons)


def message_blocks(reply: Rendered, controls: Controls, *, typing_possible: bool = True) -> list[Block]:
    """One reply as a message: its text, its buttons, and a button that opens a modal when input is asked.

    A code is never typed into a chat: a reply asking for one gets an "Enter code" button. Where the
    person cannot type to the bot (a shared channel), a question gets an "Answer" button too.
    """
    buttons = reply_buttons(reply.buttons)
    if reply.secret_input:
        buttons.insert(0, _button(OPEN_CODE_MODAL, controls.enter_code, controls.locale, "primary"))
    elif not typing_possible and asks_for_text(reply):
        buttons.insert(0, _button(OPEN_ANSWER_MODAL, controls.answer, controls.locale, "primary"))
    return (text_blocks(reply.text) + _actions(buttons))[:_MESSAGE_BLOCKS]


def card_blocks(request_id: int, card: Rendered) -> list[Block]:
    """A request card for the admin channel; a decided card has no buttons."""
    return (text_blocks(card.text) + _actions(reply_buttons(card.buttons), f"{CARD_BLOCK}{request_id}"))[
        :_MESSAGE_BLOCKS
    ]


def home_view(replies: Sequence[Rendered]) -> dict[str, Any]:
    """The App Home tab: what the bot says when the person opens it (the menu, and anything waiting)."""
    blocks: list[Block] = []
    for number, reply in enumerate(replies):
        if number:
            blocks.append({"type": "divider"})
        blocks += text_blocks(reply.text)
        buttons = [
            _button(f"{REPLY_BUTTON}{number}.{index}", button.label, button.action, _style(button.action))
            for index, button in enumerate(reply.buttons)
        ]
        blocks += _actions(buttons)
    return {"type": "home", "blocks": blocks[:_HOME_BLOCKS]}


def code_modal(controls: Controls, target: ReplyTarget) -> dict[str, Any]:
    """The modal a TOTP code is typed into: it never shows up in a conversation."""
    return {
        "type": "modal",
        "callback_id": CODE_MODAL,
        "title": _plain(controls.code_title, _TITLE_CHARS),
        "submit": _plain(controls.send, _TITLE_CHARS),
        "close": _plain(controls.close, _TITLE_CHARS),
        "private_metadata": target.to_metadata(),
        "blocks": [
            {
                "type": "input",
                "block_id": INPUT_BLOCK,
                "label": _plain(controls.code_label),
                "element": {
                    "type": "plain_text_input",
                    "action_id": INPUT_ACTION,
                    "max_length": _CODE_CHARS,
                    "focus_on_load": True,
                },
            }
        ],
    }


def answer_modal(controls: Controls, target: ReplyTarget, question: str = "") -> dict[str, Any]:
    """A modal for a typed answer (a reason for denying a request); closing it cancels the question."""
    blocks = text_blocks(question) if question else []
    blocks.append(
        {
            "type": "input",
            "block_id": INPUT_BLOCK,
            "label": _plain(controls.answer_label),
            "element": {
                "type": "plain_text_input",
                "action_id": INPUT_ACTION,
                "multiline": True,
                "max_length": _ANSWER_CHARS,
                "focus_on_load": True,
            },
        }
    )
    return {
        "type": "modal",
        "callback_id": ANSWER_MODAL,
        "title": _plain(controls.answer_title, _TITLE_CHARS),
        "submit": _plain(controls.send, _TITLE_CHARS),
        "close": _plain(controls.close, _TITLE_CHARS),
        "notify_on_close": True,
        "private_metadata": target.to_metadata(),
        "blocks": blocks,
    }


def submitted_value(view: dict[str, Any]) -> str:
    """What the person typed into a modal's input."""
    value = view.get("state", {}).get("values", {}).get(INPUT_BLOCK, {}).get(INPUT_ACTION, {}).get("value")
    return value if isinstance(value, str) else ""
