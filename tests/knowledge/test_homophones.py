"""Sound-alike characters typed through a pinyin keyboard are read as the word meant, and nothing else is."""

from __future__ import annotations

from bot.knowledge.homophones import Homophones, readings

WORDS = ("账号", "被锁", "解锁", "申请", "检查", "试用", "人数", "密码")


def corrected(homophones: Homophones, text: str, cuts: set[int]) -> str:
    return homophones.correct(text, cuts)[0]


def test_the_table_gives_the_usual_reading_without_tones() -> None:
    table = readings()
    assert table["锁"] == table["所"] == "suo"
    assert table["绿"] == "lu"


def test_one_sound_alike_character_in_a_word_is_read_as_the_word() -> None:
    homophones = Homophones(WORDS, known=set(WORDS))
    assert corrected(homophones, "帐号被所了", {0, 2, 3, 4, 5}) == "账号被锁了"
    assert corrected(homophones, "接锁", {0, 1, 2}) == "解锁"
    assert corrected(homophones, "申情", {0, 1, 2}) == "申请"
    assert homophones.correct("接锁", {0, 1, 2})[1] == [(0, 2)]


def test_what_is_written_right_or_is_no_slip_is_left_alone() -> None:
    homophones = Homophones(WORDS, known=set(WORDS), kept={"是"}, frequency={"使用": 24035, "试用": 526})
    assert corrected(homophones, "使用", {0, 2}) == "使用"  # a common word is not a slip for a rarer one
    assert corrected(homophones, "是用", {0, 1, 2}) == "是用"  # 是 is kept
    assert corrected(homophones, "确认数据", {0, 2, 4}) == "确认数据"  # 认数 straddles two words
    assert corrected(homophones, "事件", {0, 2}) == "事件"  # nothing within one character
    assert corrected(homophones, "账号", {0, 2}) == "账号"


def test_chinese_spelled_in_pinyin_is_read_as_the_word() -> None:
    from bot.knowledge.homophones import spelled_in_pinyin

    meanings = {
        "账号": "account",
        "帐号": "account",
        "解锁": "unlock",
        "批了": "approved",
        "试用": "trial",
        "使用": "use",
    }
    spelled = spelled_in_pinyin(meanings, meanings.__getitem__)
    assert spelled["jiesuo"] == "解锁"
    assert spelled["zhanghao"] in {"账号", "帐号"}  # two spellings of one meaning: either will do
    assert "pile" not in spelled  # 批了: an inflected form, and an English word
    assert "shiyong" not in spelled  # 试用 or 使用: two meanings, so neither


async def test_a_question_with_pinyin_in_it_finds_its_topic() -> None:
    from pathlib import Path

    from bot.knowledge.retrieval import FaqIndex

    index = FaqIndex.load(Path(__file__).resolve().parents[2] / "knowledge")
    assert index.search("forgot my mima and now locked").answer_id == "wrong-password"
    first = index.analyzer.units("a pile of errors")[0]
    assert first.text == "pile"
