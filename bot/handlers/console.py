"""The console channel: the assistant in a terminal, or driven line by line through a pipe.

On a terminal it prompts and reads secrets without echo; otherwise it reads
one line per turn, prints the replies and stops at the end of input. Buttons
print as ``[1] Label``; the person types the number or the label in any case.
Images are written to files whose paths are printed, with any text drawing.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TextIO

from bot.messages import Inbound, InboundKind, Rendered, RenderedButton

CHANNEL = "console"
QUIT = frozenset({"/quit", "/exit"})

Handle = Callable[[Inbound], Awaitable[list[Rendered]]]


class ConsoleChannel:
    """Talks to one person, as ``user_id``, on standard input and output."""

    def __init__(
        self,
        handle: Handle,
        user_id: str,
        *,
        locale: str | None,
        stdin: TextIO,
        stdout: TextIO,
        interactive: bool,
        image_dir: Path,
    ) -> None:
        self._handle = handle
        self._user_id = user_id
        self._locale = locale
        self._stdin = stdin
        self._stdout = stdout
        self._interactive = interactive
        self._image_dir = image_dir
        self._buttons: tuple[RenderedButton, ...] = ()
        self._secret_next = False
        self._images = 0

    async def run(self) -> None:
        await self._exchange(
            Inbound(
                CHANNEL,
                self._user_id,
                InboundKind.START,
                locale_hint=self._locale,
                locale_explicit=self._locale is not None,
            )
        )
        while True:
            line = await asyncio.to_thread(self._read)
            if line is None or line.strip().lower() in QUIT:
                return
            await self._exchange(self.translate(line))

    def translate(self, line: str) -> Inbound:
        """A typed line as an event: a button when it names one by number or label, else text."""
        typed = line.strip()
        if self._buttons and not self._secret_next:
            if typed.isdigit() and typed.isascii():
                number = int(typed)
                if 1 <= number <= len(self._buttons):
                    return self._button(self._buttons[number - 1].action)
                # Not one of the numbers shown: the engine refuses it and repeats the choices.
                return self._button(f"console:{typed}")
            for button in self._buttons:
                if typed.casefold() == button.label.casefold():
                    return self._button(button.action)
        return Inbound(CHANNEL, self._user_id, InboundKind.TEXT, text=line)

    def _button(self, action: str) -> Inbound:
        return Inbound(CHANNEL, self._user_id, InboundKind.BUTTON, button=action)

    def _read(self) -> str | None:
        if self._interactive:
            try:
                if self._secret_next:
                    return getpass.getpass("code (hidden)> ", stream=self._stdout)
                self._stdout.write("you> ")
                self._stdout.flush()
                return self._stdin.readline() or None
            except (EOFError, KeyboardInterrupt):
                return None
        line = self._stdin.readline()
        return line.rstrip("\n") if line else None

    async def _exchange(self, inbound: Inbound) -> None:
        self.show(await self._handle(inbound))

    def show(self, replies: Sequence[Rendered]) -> None:
        buttons: list[RenderedButton] = []
        for reply in replies:
            self._stdout.write(reply.text + "\n")
            if reply.image is not None:
                self._write_image(reply)
            buttons.extend(reply.buttons)
            self._stdout.write("\n")
        for number, button in enumerate(buttons, start=1):
            self._stdout.write(f"  [{number}] {button.label}\n")
        if buttons:
            self._stdout.write("\n")
            self._buttons = tuple(buttons)
        self._secret_next = any(reply.secret_input for reply in replies)
        self._stdout.flush()

    def _write_image(self, reply: Rendered) -> None:
        assert reply.image is not None
        self._image_dir.mkdir(parents=True, exist_ok=True)
        self._images += 1
        path = self._image_dir / f"{self._user_id}-{self._images}-{reply.image.name}"
        path.write_bytes(reply.image.png)
        if reply.image.text_art:
            self._stdout.write(reply.image.text_art + "\n")
        self._stdout.write(f"(image saved to {path})\n")
