"""Which script a text is written in, and the locale that guess suggests.

One definition for the whole bot: Han characters mean Chinese (zh-CN), Latin words mean English (en), and a
text with neither (digits, emoji, kana alone) says nothing about the language.
"""

from __future__ import annotations

import re

LOCALE_ZH = "zh-CN"
LOCALE_EN = "en"

# CJK Unified Ideographs, Extension A and the compatibility block: every Han character a person types.
HAN_CHARACTERS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
HAN = re.compile(f"[{HAN_CHARACTERS}]")
HAN_RUN = re.compile(f"[{HAN_CHARACTERS}]+")
# Two Latin letters at least: "I" alone or a stray "x" says nothing about the language.
LATIN_WORD = re.compile(r"[A-Za-z]{2,}")


def has_han(text: str) -> bool:
    """Whether ``text`` holds at least one Han character."""
    return HAN.search(text) is not None


def is_han(text: str) -> bool:
    """Whether ``text`` is non-empty and made of Han characters only."""
    return HAN_RUN.fullmatch(text) is not None


def guess_locale(text: str) -> str | None:
    """zh-CN when the text has Han characters, en when it has Latin words, ``None`` when it tells neither.

    Mixed text ("我的account被lock了") is Chinese: someone who writes any Chinese reads it.
    """
    if has_han(text):
        return LOCALE_ZH
    if LATIN_WORD.search(text):
        return LOCALE_EN
    return None
