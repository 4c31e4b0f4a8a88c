"""Times in replies: in the person's zone, else ``[bot] timezone``, else the locale's own, written the locale's way."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.messages import Reply
from bot.rendering import Renderer, make_environment

SHIPPED = Path(__file__).resolve().parents[1] / "templates"
AT = datetime(2026, 11, 29, 9, 5, tzinfo=UTC)


def templates(tmp_path: Path, text: str, words: str = "") -> Path:
    """A templates folder with one template ``t`` (and a macro file) in every locale."""
    for locale in ("zh-CN", "en"):
        (tmp_path / locale).mkdir(parents=True, exist_ok=True)
        (tmp_path / locale / "labels.yaml").write_text("menu: menu\n", encoding="utf-8")
        (tmp_path / locale / "t.j2").write_text(text, encoding="utf-8")
        (tmp_path / locale / "words.j2").write_text(words, encoding="utf-8")
    return tmp_path


def render(
    tmp_path: Path,
    text: str,
    locale: str,
    *,
    timezone: str | None = None,
    configured: str | None = None,
    words: str = "",
    **context: object,
) -> str:
    folder = templates(tmp_path, text, words)
    renderer = Renderer(make_environment(folder, configured), folder)
    return renderer.render(Reply("t", context), locale, timezone=timezone).text


@pytest.mark.parametrize(
    ("locale", "configured", "person", "said"),
    [
        ("zh-CN", None, None, "2026年11月29日 17:05"),  # Beijing time goes without saying in Chinese
        ("en", None, None, "29 Nov 2026, 09:05 UTC"),
        ("zh-CN", "Europe/Berlin", None, "2026年11月29日 10:05（UTC+1）"),
        ("en", "Asia/Shanghai", None, "29 Nov 2026, 17:05 UTC+8"),
        ("en", "Asia/Shanghai", "America/New_York", "29 Nov 2026, 04:05 UTC-5"),  # the person's own zone first
        ("zh-CN", "UTC", "Asia/Kolkata", "2026年11月29日 14:35（UTC+5:30）"),
        ("zh-CN", None, "Not/AZone", "2026年11月29日 17:05"),  # a zone this machine does not know: the default
    ],
)
def test_a_time_is_shown_in_the_readers_zone_and_their_way(
    tmp_path: Path, locale: str, configured: str | None, person: str | None, said: str
) -> None:
    assert render(tmp_path, "{{ at|when }}", locale, timezone=person, configured=configured, at=AT) == said


def test_a_time_stored_as_text_reads_the_same(tmp_path: Path) -> None:
    assert render(tmp_path, "{{ at|when }}", "zh-CN", at=AT.isoformat()) == "2026年11月29日 17:05"


@pytest.mark.parametrize(
    ("locale", "end", "said"),
    [
        ("zh-CN", datetime(2026, 11, 29, 10, 30, tzinfo=UTC), "2026年11月29日 17:05 至 18:30"),
        ("en", datetime(2026, 11, 29, 10, 30, tzinfo=UTC), "29 Nov 2026, 09:05 to 10:30 UTC"),
        ("zh-CN", datetime(2026, 11, 29, 17, 0, tzinfo=UTC), "2026年11月29日 17:05 至 2026年11月30日 01:00"),
        ("en", datetime(2026, 11, 30, 1, 0, tzinfo=UTC), "29 Nov 2026, 09:05 UTC to 30 Nov 2026, 01:00 UTC"),
    ],
)
def test_a_span_names_its_day_once_when_it_ends_on_the_same_day(
    tmp_path: Path, locale: str, end: datetime, said: str
) -> None:
    assert render(tmp_path, "{{ start|until(end) }}", locale, start=AT, end=end) == said


def test_quoted_words_get_the_locales_quotation_marks(tmp_path: Path) -> None:
    assert render(tmp_path, "{{ note|quoted }}", "zh-CN", note=" disk full ") == "“disk full”"
    assert render(tmp_path, "{{ note|quoted }}", "en", note="disk full") == '"disk full"'


def test_macros_show_times_when_imported_with_context(tmp_path: Path) -> None:
    words = "{% macro at(t) %}{{ t|when }}{% endmacro %}"
    text = '{% import locale ~ "/words.j2" as w with context %}{{ w.at(at) }}'
    assert render(tmp_path, text, "en", words=words, timezone="Asia/Tokyo", at=AT) == "29 Nov 2026, 18:05 UTC+9"


def test_macros_imported_without_context_are_refused_rather_than_shown_in_the_wrong_zone(tmp_path: Path) -> None:
    words = "{% macro at(t) %}{{ t|when }}{% endmacro %}"
    text = '{% import locale ~ "/words.j2" as w %}{{ w.at(at) }}'
    with pytest.raises(ConfigError, match="with context"):
        render(tmp_path, text, "en", words=words, at=AT)


def test_every_shipped_template_imports_its_macros_with_context() -> None:
    imports = re.compile(r"\{%-?\s*import\b(.*?)-?%\}", re.DOTALL)
    for path in SHIPPED.rglob("*.j2"):
        for found in imports.finditer(path.read_text(encoding="utf-8")):
            assert found.group(1).rstrip().endswith("with context"), f"{path}: {found.group(0)}"
