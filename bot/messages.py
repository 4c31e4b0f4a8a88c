"""The neutral message model shared by every channel and the engine.

A channel turns a platform event into an ``Inbound`` and sends each
``Rendered`` reply the platform's way. Flows never build text: they return
``Reply`` objects that name a template and carry its context, and
``bot.rendering`` turns those into ``Rendered`` text for one locale.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

LOCALES = ("zh-CN", "en")
DEFAULT_LOCALE = "zh-CN"


class InboundKind(StrEnum):
    START = "start"  # the person opened the chat (console start, /start, App Home)
    TEXT = "text"
    BUTTON = "button"
    COMMAND = "command"  # a platform command (Telegram's /menu, a Feishu menu item): ``command`` names the action


@dataclass(frozen=True, slots=True)
class Inbound:
    """One event from a person, already stripped of platform details."""

    channel: str
    user_id: str
    kind: InboundKind
    text: str = ""
    button: str = ""
    # For COMMAND: an action (menu, unlock, why, lang, cancel) or "faq" with the question, if any, in ``text``.
    command: str = ""
    team_id: str = ""
    locale_hint: str | None = None
    # True when the person chose the language themselves (``--lang``), not the platform.
    locale_explicit: bool = False
    # The person's IANA time zone when their platform profile gives one (Slack): times in replies use it.
    timezone: str | None = None
    event_id: str | None = None
    # Said where others can read it (a group or channel): no codes here.
    public: bool = False
    # A button pressed on a request card posted to an admin destination, not in this conversation.
    from_card: bool = False

    def __repr__(self) -> str:
        # Text may be a TOTP code; never let it reach a log through a repr.
        return (
            f"Inbound(channel={self.channel!r}, user_id={self.user_id!r}, kind={self.kind.value!r}, "
            f"button={self.button!r}, command={self.command!r}, text=<{len(self.text)} chars>)"
        )


@dataclass(frozen=True, slots=True)
class Button:
    """A choice offered to the person; ``action`` is what the engine receives back."""

    action: str
    label: str  # a key of templates/<locale>/labels.yaml
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Image:
    """A picture to send: an enrolment QR code (a secret), or the admins' stats chart (``secret=False``)."""

    png: bytes
    name: str
    text_art: str = ""  # the same picture drawn in characters, for terminals
    # It holds a secret: kept no longer than it is needed, and not to be forwarded.
    secret: bool = True

    def __repr__(self) -> str:
        return f"Image(name={self.name!r}, {len(self.png)} bytes)"


@dataclass(frozen=True, slots=True)
class Reply:
    """What a flow wants to say: a template name, its context, and choices."""

    template: str
    context: Mapping[str, Any] = field(default_factory=dict)
    buttons: Sequence[Button] = ()
    image: Image | None = None
    # The next message the person sends is secret (a TOTP code): hide or delete it.
    secret_input: bool = False
    # Shown once and never stored with the conversation (a link code for an admin to pass on).
    private: bool = False


@dataclass(frozen=True, slots=True)
class RenderedButton:
    action: str
    label: str


@dataclass(frozen=True, slots=True)
class Rendered:
    """A reply in one locale, ready for a channel to send."""

    text: str
    buttons: tuple[RenderedButton, ...] = ()
    image: Image | None = None
    secret_input: bool = False
    # For the person's eyes only: a channel sends it privately, never to a group.
    private: bool = False
    locale: str = ""  # the language it is written in, for the channel's own controls around it


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    raise TypeError(f"cannot store {type(value).__name__} in a reply context")


def _decode(obj: dict[str, Any]) -> Any:
    if set(obj) == {"$dt"}:
        return datetime.fromisoformat(obj["$dt"])
    return obj


def replies_to_json(replies: Sequence[Reply]) -> str:
    """Serialise replies (without images) so a restarted conversation can repeat them."""
    return json.dumps(
        [
            {
                "template": r.template,
                "context": dict(r.context),
                "buttons": [{"action": b.action, "label": b.label, "params": dict(b.params)} for b in r.buttons],
                "secret_input": r.secret_input,
            }
            for r in replies
            if not r.private
        ],
        default=_encode,
        ensure_ascii=False,
    )


def replies_from_json(raw: str) -> list[Reply]:
    return [
        Reply(
            template=item["template"],
            context=item["context"],
            buttons=tuple(Button(b["action"], b["label"], b["params"]) for b in item["buttons"]),
            secret_input=item["secret_input"],
        )
        for item in json.loads(raw, object_hook=_decode)
    ]


def rendered_to_json(replies: Sequence[Rendered]) -> str:
    """Serialise rendered replies to keep in the database; ``holds_secret`` ones must not be passed here."""
    return json.dumps(
        [
            {
                "text": r.text,
                "buttons": [[b.action, b.label] for b in r.buttons],
                "image": {"png": base64.b64encode(r.image.png).decode(), "name": r.image.name} if r.image else None,
                "secret_input": r.secret_input,
                "locale": r.locale,
            }
            for r in replies
        ],
        ensure_ascii=False,
    )


def rendered_from_json(raw: str) -> list[Rendered]:
    return [
        Rendered(
            text=item["text"],
            buttons=tuple(RenderedButton(action, label) for action, label in item["buttons"]),
            image=Image(base64.b64decode(item["image"]["png"]), item["image"]["name"], secret=False)
            if item["image"]
            else None,
            secret_input=item["secret_input"],
            locale=item["locale"],
        )
        for item in json.loads(raw)
    ]


def holds_secret(reply: Rendered) -> bool:
    """A reply not to be written to the database in the clear: private, or with a secret image (a QR code)."""
    return reply.private or (reply.image is not None and reply.image.secret)
