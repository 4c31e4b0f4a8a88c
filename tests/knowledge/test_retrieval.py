"""Ranking free questions against the FAQ topics, forgiving how people type, and knowing what not to answer.

The measured accuracy on whole question sets is in ``test_faq_eval.py``; this module pins down behaviour one
question at a time: every listed question, the typos, shorthand and mixed-language messages people send,
the three verdicts (answer, unsure with something to offer, off-topic) and odd input.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.knowledge.analysis import Roles, load_roles, load_synonyms
from bot.knowledge.retrieval import MAX_QUESTION_CHARS, ConfidenceRule, FaqIndex
from bot.knowledge.topics import load_topics

KNOWLEDGE = Path(__file__).resolve().parents[2] / "knowledge"
LOCALES = ("zh-CN", "en")


@pytest.fixture(scope="module")
def index() -> FaqIndex:
    return FaqIndex.load(KNOWLEDGE)


def _listed_questions() -> list[tuple[str, str]]:
    topics = load_topics(KNOWLEDGE / "topics")
    return [
        (question, topic_id)
        for topic_id, topic in topics.items()
        for locale in LOCALES
        for question in (topic.title[locale], *topic.questions[locale])
    ]


def test_every_listed_question_is_answered_with_its_own_topic(index: FaqIndex) -> None:
    misses = [
        f"{question!r}: expected {topic_id}, got {result.answer_id} ({[m.topic_id for m in result.matches]})"
        for question, topic_id in _listed_questions()
        if (result := index.search(question)).answer_id != topic_id
    ]
    assert not misses, "\n".join(misses)


def test_a_listed_question_typed_with_a_slip_is_still_its_topic(index: FaqIndex) -> None:
    # "我的账号怎么突然被锁了" is listed in why-locked.yaml; the answer must not depend on exact punctuation.
    assert index.search("我的账号怎么突然被锁了").answer_id == "why-locked"
    assert index.search("我的帐号怎么突然被锁了！！").answer_id == "why-locked"


CLEAR_QUESTIONS = [
    ("账号被锁了，想知道原因", "why-locked"),
    ("密码忘了，输错好几次", "wrong-password"),
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
    ("解锁以后要检查什么", "after-unlock-check"),
    ("我的申请到哪一步了", "request-status"),
    ("登不进去了", "cannot-sign-in"),
    ("什么时候能恢复", "when-back"),
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
    ("any update on my unlock request?", "request-status"),
    ("can't log in", "cannot-sign-in"),
    ("how long will the lock last", "when-back"),
]


@pytest.mark.parametrize(("question", "topic_id"), CLEAR_QUESTIONS)
def test_a_clear_question_gets_its_topic(index: FaqIndex, question: str, topic_id: str) -> None:
    result = index.search(question)
    assert result.answer_id == topic_id, [m.topic_id for m in result.matches]
    assert result.matches[0].topic_id == topic_id
    assert not result.off_topic
    assert len(result.matches) <= 3
    assert [m.score for m in result.matches] == sorted((m.score for m in result.matches), reverse=True)


@pytest.mark.parametrize(
    ("question", "topic_id"),
    [
        ("forgot my pasword", "wrong-password"),
        ("is it my netwrok", "network"),
        ("how do i unlcok my acount", "unlock-steps"),
        ("will i still recieve customer emails", "receive-info"),
        ("is my dta safe", "data-safety"),
        ("我的帐号为什么被锁丁了", "why-locked"),
        ("网洛不好会被锁吗", "network"),
        ("授全过期了吗", "license"),
        ("忘记密码了，登陆不上", "wrong-password"),
        # A slip that makes another word is read by the phrase it completes: "sigh in" is "sign in".
        ("i cant sigh in to the crm", "cannot-sign-in"),
        # The letters are compared as meant, the slip corrected.
        ("帮我解琐", "unlock-steps"),
    ],
)
def test_typos_in_either_language_are_forgiven(index: FaqIndex, question: str, topic_id: str) -> None:
    assert index.search(question).answer_id == topic_id


@pytest.mark.parametrize(
    ("question", "topic_id"),
    [
        ("y am i locked out", "why-locked"),
        ("forgot pw pls help", "wrong-password"),
        ("r my records safe?", "data-safety"),
        ("whens the maintenance done", "maintenance"),
        ("登不进去了", "cannot-sign-in"),
        ("密码忘了咋办", "wrong-password"),
        ("啥时候能恢复", "when-back"),
    ],
)
def test_chat_shorthand_is_read_as_meant(index: FaqIndex, question: str, topic_id: str) -> None:
    assert index.search(question).answer_id == topic_id


@pytest.mark.parametrize(
    ("question", "topic_id"),
    [
        ("我的account被lock了", "why-locked"),
        ("CRM 的 password 输错了", "wrong-password"),
        ("is 数据 safe", "data-safety"),
        ("how do I 解锁 my account", "unlock-steps"),
        ("是不是我的wifi有问题", "network"),
        # An English word written straight before Chinese that completes it: login + 不了 = 登录不了.
        ("CRM一直login不了", "cannot-sign-in"),
    ],
)
def test_mixed_language_uses_both_vocabularies(index: FaqIndex, question: str, topic_id: str) -> None:
    assert index.search(question).answer_id == topic_id


def test_an_english_word_before_chinese_is_read_as_the_phrase_they_make(index: FaqIndex) -> None:
    # "VPN密码" is "vpn password", another system's password, as it is in English.
    for question in ("VPN密码忘了怎么办", "vpn password forgotten"):
        result = index.search(question)
        assert result.answer_id is None
        assert result.off_topic


def test_a_slip_is_read_as_the_word_that_makes_a_phrase_with_its_neighbour(index: FaqIndex) -> None:
    # "lnog" is as near to "log" as to "long"; "how long" is a phrase of the synonyms, so it is "long".
    assert "how long" in [unit.text for unit in index.analyzer.units("how lnog is the wait")]


def test_how_often_is_not_what_about(index: FaqIndex) -> None:
    # "time" in "too many times" is wrong-password's; "every time I sign in" says nothing of attempts.
    units = index.analyzer.units("every time I try to log into the CRM it fails")
    assert "time" not in [unit.text for unit in units]
    assert units[0].terms == ("~log in",)


def test_a_character_is_not_guessed_from_function_words_alone(index: FaqIndex) -> None:
    # 会不会 + a character jieba cannot place is not the keyword 会不会丢: "会不会影(响)" is about impact.
    units = index.analyzer.units("被锁了会不会影想我的业绩")
    assert not any(unit.corrected and unit.text == "会不会丢" for unit in units)


@pytest.mark.parametrize(
    "question",
    [
        "how do I assign this lead to a colleague",
        "怎么把这个客户分配给同事",
        "how can I export my pipeline to a spreadsheet",
        "CRM里怎么导出客户名单",
        "how do I convert a prospect into a customer",
        "怎么把两个重复的客户合并",
        "where do I create a new opportunity",
        "报价单怎么做",
        # Asked as a request rather than a how-to: still other work.
        "can you build me a dashboard of this month's deals",
        "帮我导出一下上个月的客户名单",
        "CRM里能加一个自定义字段吗",
    ],
)
def test_how_to_do_other_work_in_the_crm_is_off_topic(index: FaqIndex, question: str) -> None:
    result = index.search(question)
    assert result.answer_id is None
    assert result.off_topic


@pytest.mark.parametrize(
    ("question", "topic_id"),
    [
        # The same work, asked about a lock, is the bot's: naming the lock or the password makes it so.
        ("are new leads still assigned to me while I'm locked out", "receive-info"),
        ("how do I export less so I don't get locked again", None),
        ("新客户还会分配给我吗", "receive-info"),
    ],
)
def test_other_work_asked_about_a_lock_is_not_turned_away(index: FaqIndex, question: str, topic_id: str | None) -> None:
    result = index.search(question)
    assert not result.off_topic
    if topic_id is not None:
        assert result.answer_id == topic_id


OFF_TOPIC = [
    "what's the weather in Shenzhen",
    "明天要带伞吗",
    "tell me a joke",
    "给我讲个笑话",
    "is meeting room 3 free this afternoon",
    "三楼会议室下午有人用吗",
    "how do I claim my travel expenses",
    "打车费怎么报销",
    "when is the next public holiday",
    "国庆放几天假",
    "write me a poem",
    "给我写首诗",
    "where should we go for lunch",
    "中午吃什么",
]


@pytest.mark.parametrize("question", OFF_TOPIC)
def test_requests_far_from_the_crm_are_called_off_topic(index: FaqIndex, question: str) -> None:
    result = index.search(question)
    assert result.answer_id is None
    assert result.off_topic


@pytest.mark.parametrize("question", ["hello", "你好", "asdfgh qwerty", "???", "123", "哈哈", "ok thx"])
def test_small_talk_and_noise_are_refused(index: FaqIndex, question: str) -> None:
    result = index.search(question)
    assert result.answer_id is None


@pytest.mark.parametrize("question", ["a question about the CRM", "帐号的问题"])
def test_a_vague_question_about_the_crm_is_unsure_and_offers_topics(index: FaqIndex, question: str) -> None:
    result = index.search(question)
    assert result.answer_id is None
    assert not result.off_topic
    assert result.matches


def test_not_sure_never_comes_with_nothing_to_offer(index: FaqIndex) -> None:
    vague = ["锁", "lock", "账号", "password", "管理员", "help with the CRM", "问一下CRM的事", "请求"]
    questions = [question for question, _ in CLEAR_QUESTIONS] + OFF_TOPIC + vague
    for question in questions:
        result = index.search(question)
        if result.answer_id is None and not result.off_topic:
            assert result.matches, question


def test_an_explicit_locale_picks_the_titles(index: FaqIndex) -> None:
    result = index.search("is it my network?", "zh-CN")
    assert result.locale == "zh-CN"
    assert result.answer_id == "network"
    assert result.matches[0].title == index.topics["network"].title["zh-CN"]


@pytest.mark.parametrize(
    ("text", "locale"),
    [("账号为什么被锁", "zh-CN"), ("CRM登不上", "zh-CN"), ("why am I locked", "en"), ("", "en"), ("123 ?", "en")],
)
def test_the_locale_follows_the_script(index: FaqIndex, text: str, locale: str) -> None:
    assert index.search(text).locale == locale


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
def test_empty_input_is_off_topic_with_no_matches(index: FaqIndex, text: str) -> None:
    result = index.search(text)
    assert result.answer_id is None
    assert result.off_topic
    assert result.matches == []


def test_a_huge_paste_is_refused(index: FaqIndex) -> None:
    text = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 2_000
    assert len(text) > MAX_QUESTION_CHARS
    assert index.search(text).answer_id is None


def test_the_json_shape(index: FaqIndex) -> None:
    line = index.search("忘记密码了").to_json()
    assert list(line) == ["query", "locale", "answer_id", "off_topic", "matches"]
    assert line["answer_id"] == "wrong-password"
    assert line["off_topic"] is False
    assert isinstance(line["matches"], list)
    assert set(line["matches"][0]) == {"id", "score", "title"}


def test_a_stricter_rule_answers_less() -> None:
    # The rule is data: an index built with an impossible margin never answers from the words alone.
    topics = load_topics(KNOWLEDGE / "topics")
    synonyms = load_synonyms(KNOWLEDGE / "synonyms.yaml")
    strict = FaqIndex.build(topics, synonyms, ConfidenceRule(margin=1000.0, echo=2.0))
    assert strict.search("I typed the wrong password too many times").answer_id is None
    assert FaqIndex.build(topics, synonyms).search("I typed the wrong password too many times").answer_id


def test_synonyms_join_words_across_languages() -> None:
    groups = load_synonyms(KNOWLEDGE / "synonyms.yaml")
    assert any("lock" in group and "锁定" in group for group in groups)


def test_the_groups_with_a_role_name_existing_groups() -> None:
    groups = load_synonyms(KNOWLEDGE / "synonyms.yaml")
    roles = load_roles(KNOWLEDGE / "synonyms.yaml", groups)
    assert "~lock" in roles.core
    assert roles.ours == {"~crm"}
    assert roles.elsewhere
    assert "~export" in roles.tasks
    assert "~password" in roles.credentials
    assert roles.office


@pytest.mark.parametrize("role", ["core", "ours", "elsewhere", "tasks", "credentials", "office"])
def test_an_unknown_group_in_a_role_is_named(tmp_path: Path, role: str) -> None:
    path = tmp_path / "synonyms.yaml"
    path.write_text(f"{role}: [lock, frozen]\ngroups:\n  - [lock, frozen]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"{role}: 'frozen' is not the first word of any group"):
        load_roles(path, load_synonyms(path))


@pytest.mark.parametrize(
    "question",
    [
        "I forgot my Outlook password",
        "my Jira account is locked",
        "钉钉账号被锁了",
        "企业微信登录不了怎么办",
        # Personal accounts and locks: a bank card, a phone's passcode, a chat app, the keys.
        "the ATM kept my credit card after three wrong tries",
        "my Apple ID got locked, what do I do",
        "信用卡密码输错了好几次被锁了",
        "支付宝账号被冻结了怎么解冻",
        "locked my keys in the car",
    ],
)
def test_another_system_is_not_ours_even_when_locked(index: FaqIndex, question: str) -> None:
    result = index.search(question)
    assert result.answer_id is None
    assert result.off_topic


def test_another_system_named_beside_the_crm_is_still_ours(index: FaqIndex) -> None:
    assert not index.search("钉钉里打开CRM提示账号被锁了").off_topic


@pytest.mark.parametrize(
    ("question", "off_topic"),
    [
        ("how do I submit my expense claim", True),
        ("工资条在哪里看", True),
        ("is the canteen open on Saturday", True),
        # The same office matters beside a lock or a sign-in are the bot's.
        ("I was at the gym and now the CRM says I'm locked", False),
        ("想在CRM里查报销单，结果账号被锁了", False),
    ],
)
def test_office_matters_are_off_topic_unless_about_getting_in(index: FaqIndex, question: str, off_topic: bool) -> None:
    result = index.search(question)
    assert result.off_topic is off_topic
    if off_topic:
        assert result.answer_id is None


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
    assert load_roles(tmp_path / "absent.yaml", ()) == Roles()
