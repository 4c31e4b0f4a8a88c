"""Ranking free questions against the FAQ topics, and refusing what the FAQ does not cover.

The out-of-domain questions here were used to calibrate ``ConfidenceRule`` (with the topics' own example
questions, each left out in turn); the held-out set in ``tests/data/faq_eval.yaml`` is checked separately.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.knowledge.retrieval import MAX_QUESTION_CHARS, FaqIndex, detect_locale, load_synonyms

KNOWLEDGE = Path(__file__).resolve().parents[2] / "knowledge"


@pytest.fixture(scope="module")
def index() -> FaqIndex:
    return FaqIndex.load(KNOWLEDGE)


CLEAR_QUESTIONS = [
    ("账号被锁了,想知道原因", "why-locked"),
    ("密码忘了,输错好几次", "wrong-password"),
    ("在外地出差登录被锁", "unusual-ip"),
    ("公司的CRM授权过期了吗", "license"),
    ("服务器宕机导致的锁定", "system-fault"),
    ("误删了客户数据被锁", "violation"),
    ("网络断了会导致锁定吗", "network"),
    ("锁定后我的数据会丢失吗", "data-safety"),
    ("锁定期间还能收到客户的消息吗", "receive-info"),
    ("系统维护要多久", "maintenance"),
    ("我要申请解锁", "unlock-steps"),
    ("以后怎么防止再被锁", "prevention"),
    ("解锁后要核对哪些数据", "after-unlock-check"),
    ("锁定对业务有什么影响", "impact"),
    ("操作太频繁被限制了", "usage-count"),
    ("是不是只有我被锁了", "normal-or-abnormal"),
    ("why is my CRM account locked", "why-locked"),
    ("I typed the wrong password too many times", "wrong-password"),
    ("signed in from a hotel abroad and got locked", "unusual-ip"),
    ("our licence expired", "license"),
    ("a server error locked my account", "system-fault"),
    ("will I lose data while locked out", "data-safety"),
    ("is the wifi causing my lockout", "network"),
    ("how long is the maintenance window", "maintenance"),
    ("please unlock my account", "unlock-steps"),
    ("how can I avoid getting locked again", "prevention"),
    ("can new leads still come in while I'm locked", "receive-info"),
    ("what should I check now that I'm unlocked", "after-unlock-check"),
    ("I deleted records by mistake and got locked", "violation"),
    ("is everyone locked or only me", "normal-or-abnormal"),
    ("what does the lockout cost the business", "impact"),
    ("did I hit a usage limit", "usage-count"),
]


@pytest.mark.parametrize(("question", "topic_id"), CLEAR_QUESTIONS)
def test_a_clear_question_gets_its_topic(index: FaqIndex, question: str, topic_id: str) -> None:
    result = index.search(question)
    assert result.answer_id == topic_id, [m.topic_id for m in result.matches]
    assert result.matches[0].topic_id == topic_id
    assert len(result.matches) <= 3
    assert [m.score for m in result.matches] == sorted((m.score for m in result.matches), reverse=True)


OUT_OF_DOMAIN = {
    "zh-CN": [
        "后天北京会下雨吗",
        "帮我查一下去杭州的高铁票",
        "给我讲个冷笑话吧",
        "公司食堂今天有什么菜",
        "年终奖什么时候发",
        "社保公积金怎么查",
        "CRM里怎么新建一个商机",
        "怎么在CRM里设置跟进提醒",
        "客户联系人的电话号码怎么批量修改",
        "CRM的销售漏斗报表在哪看",
        "怎么把线索转成客户",
        "钉钉密码忘了怎么找回",
        "企业微信登录不了怎么办",
        "邮箱密码过期了怎么改",
        "VPN客户端怎么安装",
        "投影仪怎么连电脑",
        "帮我翻译这段话",
        "今天星期几",
        "写一首关于春天的诗",
        "怎么申请加班调休",
        "新员工入职要准备什么材料",
        "Excel怎么做数据透视表",
        "下周团建去哪里",
        "停车位怎么申请",
        "打卡机坏了",
        "帮我总结一下这份合同",
        "怎么给客户发报价单",
        "季度销售排名出来了吗",
        "CRM里怎么改头像",
        "澳大利亚的首都是哪里",
    ],
    "en": [
        "will it rain in Paris this weekend",
        "find me a cheap hotel in Chicago",
        "tell me something funny",
        "what's on the cafeteria menu today",
        "when do bonuses get paid",
        "how do I update my tax withholding",
        "how do I create an opportunity in the CRM",
        "how to set a follow-up reminder on a contact",
        "where do I find the sales funnel report",
        "how do I convert a lead into a customer",
        "I forgot my Slack password",
        "my email password expired",
        "how do I install the VPN client on my new laptop",
        "the projector in room B won't connect",
        "translate thank you into German",
        "what day is it today",
        "write a poem about spring",
        "how do I book overtime",
        "what paperwork do new hires need",
        "how do I make a pivot table in Excel",
        "where is the team offsite next month",
        "how do I get a parking permit",
        "the badge reader at the door is broken",
        "summarise this contract for me",
        "how do I send a quote to a customer",
        "who topped the sales leaderboard this quarter",
        "how do I change my profile picture in the CRM",
        "what's the capital of Australia",
    ],
}


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_most_out_of_domain_questions_are_refused(index: FaqIndex, locale: str) -> None:
    answered = {q: r.answer_id for q in OUT_OF_DOMAIN[locale] if (r := index.search(q)).answer_id is not None}
    refused = 1 - len(answered) / len(OUT_OF_DOMAIN[locale])
    assert refused >= 0.85, f"refused {refused:.0%}; answered anyway: {answered}"


@pytest.mark.parametrize(
    "question",
    [
        "what's the weather in Shenzhen",
        "明天要带伞吗",
        "tell me a joke",
        "hello",
        "你好",
        "asdfgh qwerty",
        "???",
        "123",
    ],
)
def test_small_talk_and_noise_are_refused(index: FaqIndex, question: str) -> None:
    assert index.search(question).answer_id is None


@pytest.mark.parametrize(
    ("text", "locale"),
    [("账号为什么被锁", "zh-CN"), ("CRM登不上", "zh-CN"), ("why am I locked", "en"), ("", "en"), ("123 ?", "en")],
)
def test_the_locale_follows_the_script(index: FaqIndex, text: str, locale: str) -> None:
    assert detect_locale(text) == locale
    assert index.search(text).locale == locale


def test_an_explicit_locale_picks_the_titles(index: FaqIndex) -> None:
    result = index.search("is it my network?", "zh-CN")
    assert result.locale == "zh-CN"
    assert result.answer_id == "network"
    assert result.matches[0].title == index.topics["network"].title["zh-CN"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\t ",
        "\x00\x01\x1b[31m why locked \x7f",
        "密码" * 100_000,
        "locked " * 100_000,
        "\ud800 broken surrogate",
        "😀🔒🔑",
        "ＣＲＭ 密码 ｗｒｏｎｇ" + "\u200b" * 50,
    ],
    ids=["empty", "blank", "control", "huge-zh", "huge-en", "surrogate", "emoji", "full-width"],
)
def test_odd_input_does_not_crash(index: FaqIndex, text: str) -> None:
    result = index.search(text)
    assert result.query == text
    assert len(result.matches) <= 3


@pytest.mark.parametrize("text", ["", "   ", "\x00\x07", "😀🔒", "!!!???"])
def test_empty_input_is_refused_with_no_matches(index: FaqIndex, text: str) -> None:
    result = index.search(text)
    assert result.answer_id is None
    assert result.matches == []


def test_a_huge_paste_is_refused(index: FaqIndex) -> None:
    text = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 2_000
    assert len(text) > MAX_QUESTION_CHARS
    assert index.search(text).answer_id is None


def test_the_json_shape(index: FaqIndex) -> None:
    line = index.search("忘记密码了").to_json()
    assert list(line) == ["query", "locale", "answer_id", "matches"]
    assert line["answer_id"] == "wrong-password"
    assert isinstance(line["matches"], list)
    assert set(line["matches"][0]) == {"id", "score", "title"}


def test_synonyms_join_words_across_languages() -> None:
    groups = load_synonyms(KNOWLEDGE / "synonyms.yaml")
    assert any("lock" in group and "锁定" in group for group in groups)


def test_a_word_in_two_synonym_groups_is_named(tmp_path: Path) -> None:
    path = tmp_path / "synonyms.yaml"
    path.write_text("groups:\n  - [lock, frozen]\n  - [freeze, Frozen]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"group 2: 'Frozen' is already in group 1") as caught:
        load_synonyms(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("content", ["groups: [lock]\n", "- [a, b]\n", "groups:\n  - [lock]\n", "groups: [[a, '']]\n"])
def test_a_malformed_synonyms_file_is_named(tmp_path: Path, content: str) -> None:
    path = tmp_path / "synonyms.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"synonyms\.yaml"):
        load_synonyms(path)


def test_without_a_synonyms_file_the_index_still_works(tmp_path: Path) -> None:
    assert load_synonyms(tmp_path / "absent.yaml") == ()
