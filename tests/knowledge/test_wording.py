"""Chat shorthand spelled out, and English typos corrected towards a known vocabulary (and only those)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.knowledge.wording import Shorthand, Speller, normalise

KNOWLEDGE = Path(__file__).resolve().parents[2] / "knowledge"


@pytest.fixture(scope="module")
def shorthand() -> Shorthand:
    return Shorthand.load(KNOWLEDGE / "shorthand.yaml")


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("y am i locked", "why am i locked"),
        ("pls unlock me", "please unlock me"),
        ("can u help", "can you help"),
        ("啥时候能好", "什么时候能好"),
        ("啥时能好", "什么时候能好"),
        ("unlock you", "unlock you"),  # whole words only: "u" never touches "unlock"
        ("no  puedo entrar", "cannot get in"),  # a phrase, whatever the spaces between its words
        ("nopuedo entrar", "nopuedo get in"),  # a phrase only as whole words
        ("kena locked, bila boleh login", "got locked, when can login"),
        ("咋解锁", "怎么解锁"),
        ("维护啥时候完事", "维护什么时候结束"),
        ("登不上去了", "登不上了"),
    ],
)
def test_shorthand_is_spelled_out(shorthand: Shorthand, text: str, expanded: str) -> None:
    assert shorthand.expand(text) == expanded


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("Contraseña", "contrasena"),
        ("¿Cuándo?", "¿cuando?"),
        ("我的Cuenta被锁了？", "我的cuenta被锁了?"),
        ("ＣＲＭ", "crm"),
    ],
)
def test_normalising_drops_case_accents_and_full_width_forms(text: str, normalised: str) -> None:
    assert normalise(text) == normalised


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("en: [y]\n", r"en: expected a mapping"),
        ("fr:\n  stp: please\n", r"expected `en:` and `zh-CN:`"),
        ("en:\n  two-words: x\n", r"'two-words': must be one word or a few words"),
        ("zh-CN:\n  啥: 什么\n", r"'啥': must be Chinese, at least two characters"),
        ("en:\n  y: ''\n", r"'y': both sides must be non-empty"),
        ("en: [unclosed\n", r"cannot read"),
    ],
)
def test_a_broken_shorthand_file_is_named(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "shorthand.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=problem) as caught:
        Shorthand.load(path)
    assert str(path) in str(caught.value)


def test_no_shorthand_file_means_no_shorthand(tmp_path: Path) -> None:
    assert Shorthand.load(tmp_path / "absent.yaml").expand("y u") == "y u"


VOCABULARY = ["password", "locked", "lock", "unlock", "network", "maintenance", "account", "data", "quota", "apply"]


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("pasword", "password"),  # a letter missing
        ("netwrok", "network"),  # two letters swapped
        ("unlcok", "unlock"),
        ("acount", "account"),
        ("dta", "data"),
        ("lockedd", "locked"),  # a letter too many
        ("maintenence", "maintenance"),  # a long word: any one edit
        ("maintainance", "maintenance"),
    ],
)
def test_a_typo_becomes_the_known_word(typed: str, meant: str) -> None:
    assert Speller(VOCABULARY).correct(typed) == meant


@pytest.mark.parametrize(
    "word",
    [
        "date",  # one letter changed makes another real word: never "data"
        "quote",
        "apple",
        "password",  # known already
        "weather",  # nothing near
        "ip",  # too short to guess
        "passwords2",
        "mpassword",  # the first letter is kept
    ],
)
def test_a_word_that_is_not_a_typo_is_left_alone(word: str) -> None:
    assert Speller(VOCABULARY).correct(word) is None


def test_a_word_is_never_read_as_a_two_letter_one() -> None:
    # "atx" and "far" are one letter from "at" and "fa" (of "2fa"), but a real word is likelier than that slip.
    speller = Speller(["at", "fa", "data"])
    assert speller.correct("atx") is None
    assert speller.correct("far") is None
    assert "fa" not in speller.within_one_edit("far")


def test_the_more_common_of_two_equally_near_words_wins() -> None:
    assert Speller(["from", "form", "form"]).correct("fom") == "form"
    assert Speller(["from", "from", "form"]).correct("fom") == "from"
