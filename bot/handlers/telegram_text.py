"""Our plain text as Telegram messages: HTML-escaped, and cut to Telegram's length limits.

Templates render plain text; Telegram is sent it with ``parse_mode=HTML`` so
that nothing a person typed (a deny reason, a question) can turn into markup:
``&``, ``<`` and ``>`` are escaped. Telegram counts a message's length in
UTF-16 code units after markup is parsed, so a long answer is cut on that
count, at a blank line, a line end or a space when one is near.
"""

from __future__ import annotations

import html

MAX_MESSAGE = 4096  # characters of text in one message
MAX_CALLBACK_ANSWER = 200  # characters in an answerCallbackQuery notice


def as_html(text: str) -> str:
    return html.escape(text, quote=False)


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _fitting_prefix(text: str, limit: int) -> int:
    """How many characters of ``text`` fit in ``limit`` UTF-16 code units."""
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > limit:
            return index
    return len(text)


def split_message(text: str, limit: int = MAX_MESSAGE) -> list[str]:
    """``text`` in pieces of at most ``limit`` UTF-16 code units, cut where a reader would pause."""
    pieces: list[str] = []
    rest = text
    while _utf16_length(rest) > limit:
        fits = _fitting_prefix(rest, limit)
        head = rest[:fits]
        cut = -1
        for separator in ("\n\n", "\n", " "):
            found = head.rfind(separator)
            if found > fits // 2:  # a pause in the second half; else cut hard rather than leave a stub
                cut = found
                break
        if cut == -1:
            pieces.append(head)
            rest = rest[fits:]
        else:
            pieces.append(head[:cut].rstrip())
            rest = rest[cut:].lstrip("\n ")
    if rest or not pieces:
        pieces.append(rest)
    return pieces


def shorten(text: str, limit: int) -> str:
    """The first line of ``text``, cut to ``limit`` characters with an ellipsis when longer."""
    line = text.strip().split("\n", 1)[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"
