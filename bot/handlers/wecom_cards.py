"""WeCom's JSON for what the bot sends: app messages, a reply's buttons as a card, and request cards.

Pure functions from ``Rendered`` replies to the bodies of ``message/send`` and
``message/update_template_card``; nothing here calls WeCom. WeCom puts buttons only on template cards, so a
reply that offers choices becomes its text followed by a ``button_interaction`` card whose buttons carry the
engine's actions as their keys (WeCom sends a key back, in the signed callback, as ``EventKey``). A card's
``task_id`` says what it is: request cards for the admins start with ``CARD_TASK``, the rest with ``REPLY_TASK``.
"""

from __future__ import annotations

import secrets
from typing import Any

from bot.handlers.telegram_text import split_message
from bot.messages import Rendered, RenderedButton

Json = dict[str, Any]

CARD_TASK = "req-"
REPLY_TASK = "ask-"
# A text message holds 2048 bytes of UTF-8; 680 UTF-16 code units never take more than 2040.
TEXT_UNITS = 680
# What WeCom advises for a card: a title of 36 characters, a subtitle of 160, at most 6 buttons.
TITLE_CHARS = 36
SUBTITLE_CHARS = 160
CARD_BUTTONS = 6
PRIMARY, SECONDARY = 1, 2  # button styles


def task_id(prefix: str, request_id: int | None = None) -> str:
    """A card's task id: WeCom refuses one it has seen from the app before, so a random part keeps each new."""
    middle = f"{request_id}-" if request_id is not None else ""
    return f"{prefix}{middle}{secrets.token_hex(6)}"


def request_of_task(task: str) -> int | None:
    """The request a request card's task id names."""
    number, _, _ = task.removeprefix(CARD_TASK).partition("-")
    return int(number) if task.startswith(CARD_TASK) and number.isdigit() else None


def text_messages(text: str) -> list[Json]:
    """Plain text as one or more text messages, cut where a reader would pause."""
    if not text.strip():
        return []
    return [{"msgtype": "text", "text": {"content": piece}} for piece in split_message(text.strip(), TEXT_UNITS)]


def image_message(media_id: str, *, protected: bool) -> Json:
    # safe=1: WeCom shows a watermark and offers no forwarding (for a QR code that holds a secret).
    return {"msgtype": "image", "image": {"media_id": media_id}, "safe": int(protected)}


def _buttons(buttons: tuple[RenderedButton, ...]) -> list[Json]:
    return [
        {"type": 0, "text": button.label, "key": button.action, "style": PRIMARY if index == 0 else SECONDARY}
        for index, button in enumerate(buttons)
    ]


def _card(task: str, title: str, subtitle: str, buttons: list[Json]) -> Json:
    card: Json = {"card_type": "button_interaction", "task_id": task, "main_title": {"title": title}}
    if subtitle:
        card["sub_title_text"] = subtitle
    card["button_list"] = buttons
    return card


def reply_messages(reply: Rendered, choose: str) -> list[Json]:
    """A reply as messages: its text, then its buttons on cards (six a card) titled by its question.

    The question is the reply's last line when it fits a card's title ("Are you travelling?"); it is then
    left out of the text before it. Otherwise the cards are titled ``choose``.
    """
    text = reply.text.strip()
    if not reply.buttons:
        return text_messages(text)
    head, _, last = text.rpartition("\n")
    title = last.strip()
    if 0 < len(title) <= TITLE_CHARS:
        text = head
    else:
        title = choose
    count = -(-len(reply.buttons) // CARD_BUTTONS)  # as few cards as hold them, filled evenly: 7 are 4 and 3
    size = -(-len(reply.buttons) // count)
    cards = [
        _card(task_id(REPLY_TASK), title, "", _buttons(reply.buttons[start : start + size]))
        for start in range(0, len(reply.buttons), size)
    ]
    return [*text_messages(text), *({"msgtype": "template_card", "template_card": card} for card in cards)]


def _shortened(lines: list[str], limit: int) -> str:
    """``lines`` joined, cut to ``limit`` characters but always ending with the last (the request's status)."""
    whole = "\n".join(lines)
    if len(whole) <= limit or not lines:
        return whole
    last = lines[-1][: limit // 2]
    return "\n".join(lines[:-1])[: limit - len(last) - 2] + "…\n" + last


def request_card(card: Rendered, task: str, decided: str) -> tuple[str, Json]:
    """A request card: the full text to send first when the card cannot hold it (else ""), and the card.

    The card's title is the text's first line; its subtitle the rest, shortened if need be, always ending in
    the status line. A card with no buttons left (decided, expired) shows one grey button saying ``decided``.
    """
    lines = [line for line in card.text.strip().splitlines() if line.strip()]
    title = lines[0] if lines else ""
    body = lines[1:]
    subtitle = _shortened(body, SUBTITLE_CHARS)
    lead = card.text.strip() if len(title) > TITLE_CHARS or subtitle != "\n".join(body) else ""
    if len(title) > TITLE_CHARS:
        title = title[: TITLE_CHARS - 1] + "…"
    if card.buttons:
        return lead, _card(task, title, subtitle, _buttons(card.buttons))
    closed = _card(task, title, subtitle, [{"type": 0, "text": decided, "key": "decided", "style": SECONDARY}])
    closed["replace_text"] = decided  # WeCom greys the buttons out and shows this instead
    return lead, closed
