"""``bot.language``: one meaning for "Chinese text" and one guess of the locale, for the whole bot."""

from __future__ import annotations

import pytest

from bot.language import guess_locale, has_han, is_han


@pytest.mark.parametrize(
    ("text", "locale"),
    [
        ("为什么", "zh-CN"),
        ("我的account被lock了", "zh-CN"),
        ("is 数据 safe", "zh-CN"),
        ("why", "en"),
        ("CRM", "en"),
        ("123456", None),
        ("", None),
        ("😀 ?!", None),
        ("x", None),
        ("ロック", None),  # kana alone is not Chinese
    ],
)
def test_the_locale_follows_the_script(text: str, locale: str | None) -> None:
    assert guess_locale(text) == locale


def test_han_means_chinese_characters_only() -> None:
    assert has_han("CRM登不上")
    assert not has_han("CRM ロック")
    assert is_han("登不上")
    assert not is_han("CRM登不上")
    assert not is_han("")
