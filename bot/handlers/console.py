"""The console channel: the assistant in a terminal, or driven line by line through a pipe.

On a terminal it prompts and reads secrets without echo; otherwise it reads
one line per turn, prints the replies and stops at the end of input. Buttons
print as ``[1] Label``; the person types the number or the label in any case.
Images are written to files whose paths are printed, with any text drawing.

Every image file is readable by its owner only (in a 0700 folder). An
enrolment QR code holds a TOTP secret: its file is deleted as soon as a turn
no longer asks for a code (the enrolment was confirmed or abandoned), when
the next image replaces it, and when the console stops. A console that was
killed leaves its file behind; the next start of the same user's console
deletes it. An image without a secret (the admins' stats chart) is kept,
under its own name and a random part, for the admin to open when they like.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import hashlib
import os
import secrets
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
        # Files are named by a digest of the user id: any id makes a safe file name, and each user's are findable.
        self._image_prefix = "qr-" + hashlib.sha256(user_id.encode()).hexdigest()[:16] + "-"
        self._shown: list[Path] = []

    async def run(self) -> None:
        self._delete_leftover_images()
        try:
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
        finally:
            self._delete_shown_images()

    def translate(self, line: str) -> Inbound:
        """A typed line as an event: a button when it names one by number or label, else text."""
        typed = line.strip()
        if self._buttons and self._secret_next and typed.isascii() and typed.isdigit() and len(typed) <= 2:
            # At a code prompt a one- or two-digit number is never a code: it is a button's number ("1" Cancel).
            number = int(typed)
            if 1 <= number <= len(self._buttons):
                return self._button(self._buttons[number - 1].action)
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
        for index, reply in enumerate(replies):
            self._stdout.write(reply.text + "\n")
            if reply.image is not None:
                self._write_image(reply)
            # One numbered list for the whole turn: a choice a later reply offers again is listed once, there.
            later = {button.action for after in replies[index + 1 :] for button in after.buttons}
            buttons.extend(button for button in reply.buttons if button.action not in later)
            self._stdout.write("\n")
        for number, button in enumerate(buttons, start=1):
            self._stdout.write(f"  [{number}] {button.label}\n")
        if buttons:
            self._stdout.write("\n")
            self._buttons = tuple(buttons)
        self._secret_next = any(reply.secret_input for reply in replies)
        if not self._secret_next:
            # No code is asked for any more: the QR code was used or given up, so its secret leaves the disk.
            self._delete_shown_images()
        self._stdout.flush()

    def _write_image(self, reply: Rendered) -> None:
        assert reply.image is not None
        name = Path(reply.image.name)
        if reply.image.secret:
            self._delete_shown_images()
            path = self._image_dir / f"{self._image_prefix}{secrets.token_hex(4)}-{name.name}"
        else:
            path = self._image_dir / f"{name.stem}-{secrets.token_hex(4)}{name.suffix}"
        self._make_image_dir()
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)  # the umask may have taken more; it must not leave more
            handle.write(reply.image.png)
        if reply.image.secret:
            self._shown.append(path)
        if reply.image.text_art:
            self._stdout.write(reply.image.text_art + "\n")
        self._stdout.write(f"(image saved to {path})\n")

    def _make_image_dir(self) -> None:
        missing = [folder for folder in (self._image_dir, *self._image_dir.parents) if not folder.exists()]
        for folder in reversed(missing):
            with contextlib.suppress(FileExistsError):
                folder.mkdir(mode=0o700)
                folder.chmod(0o700)

    def _delete_shown_images(self) -> None:
        for path in self._shown:
            path.unlink(missing_ok=True)
        self._shown.clear()

    def _delete_leftover_images(self) -> None:
        if self._image_dir.is_dir():
            for path in self._image_dir.glob(f"{self._image_prefix}*"):
                path.unlink(missing_ok=True)
