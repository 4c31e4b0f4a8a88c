"""A chat harness over the engine: tests say things and read the replies, like a transcript.

chat = Chat(app.engine, "alice", locale="en")
said = await chat.start()
said = await chat.press("Unlock me")
said = await chat.say("123456")
assert "unlocked" in said.text
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import count

from bot.engine import Engine
from bot.messages import Inbound, InboundKind, Rendered

_event_ids = count(1)


@dataclass(frozen=True)
class Said:
    """The bot's replies to one event."""

    replies: list[Rendered]

    @property
    def text(self) -> str:
        return "\n".join(reply.text for reply in self.replies)

    @property
    def labels(self) -> list[str]:
        return [button.label for reply in self.replies for button in reply.buttons]

    @property
    def actions(self) -> list[str]:
        return [button.action for reply in self.replies for button in reply.buttons]

    @property
    def asks_secret(self) -> bool:
        return any(reply.secret_input for reply in self.replies)

    def __contains__(self, fragment: str) -> bool:
        return fragment in self.text


class Chat:
    """One person talking to the engine on one channel."""

    def __init__(
        self, engine: Engine, user: str, *, channel: str = "console", team: str = "", locale: str | None = None
    ) -> None:
        self.engine = engine
        self.user = user
        self.channel = channel
        self.team = team
        self.locale = locale
        self.last: Said | None = None

    async def _send(self, inbound: Inbound) -> Said:
        self.last = Said(await self.engine.handle(inbound))
        return self.last

    def _inbound(self, kind: InboundKind, **fields: object) -> Inbound:
        return Inbound(
            self.channel,
            self.user,
            kind,
            team_id=self.team,
            locale_hint=self.locale,
            locale_explicit=self.locale is not None and kind is InboundKind.START,
            **fields,  # type: ignore[arg-type]
        )

    async def start(self) -> Said:
        return await self._send(self._inbound(InboundKind.START))

    async def say(self, text: str, *, event_id: str | None = None) -> Said:
        return await self._send(self._inbound(InboundKind.TEXT, text=text, event_id=event_id))

    async def command(self, name: str, text: str = "") -> Said:
        """A platform command (Telegram's /unlock), as a channel sends it."""
        return await self._send(self._inbound(InboundKind.COMMAND, command=name, text=text))

    async def press(self, label: str) -> Said:
        """Press a button shown in the last replies, by its label (any case) or action."""
        assert self.last is not None, "nothing was said yet"
        for reply in self.last.replies:
            for button in reply.buttons:
                if label.casefold() in (button.label.casefold(), button.action):
                    return await self.press_action(button.action)
        raise AssertionError(f"no button {label!r} in {self.last.labels}")

    async def press_action(self, action: str, *, event_id: str | None = None) -> Said:
        """Send a button event for any action, offered or not (to test forged buttons)."""
        return await self._send(
            self._inbound(InboundKind.BUTTON, button=action, event_id=event_id or f"e{next(_event_ids)}")
        )
