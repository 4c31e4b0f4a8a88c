"""Chinese that reads as native: full-width punctuation, one word for each thing, and no CRM English in a sentence.

Three checks over everything the bot says in Chinese:

- no ASCII ``, . ? ! : ; ( ) "`` next to a Chinese character, in every zh-CN template (its text, the
  strings inside its tags, its comments), every button label and every zh-CN text of the knowledge files;
  code spans and URLs are left alone;
- the words of ``templates/zh-CN/glossary.yaml``: a thing the bot names (the authenticator app, the code,
  the unlock request, the admin ...) has one name in the templates, the labels and the knowledge answers;
- every zh-CN template rendered with the demo's own CRM facts, for every demo user: what the CRM gives as
  data (an action's kind, an incident's state, a place, a reason or status code) is said in Chinese, and
  what it gives as prose (a detail, an incident title, a note, a licence name) appears only as a quotation.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot import demo
from bot.app import App
from bot.config import RestCrmSettings
from bot.crm.base import LockReason, LockStatus, Reachability, SystemStatus
from bot.crm.rest import RestCrm
from bot.flows.facts import json_evidence, plain, public_facts
from bot.flows.situation import Situation, Worry, verdict
from bot.messages import Reply
from bot.requests.policy import UnlockPolicy
from bot.requests.unlock_requests import Status
from tests.chat import Chat
from tests.fakes import TEST_TIMEOUT, serving
from tests.fakes.rest_crm import FakeRestCrm, rest_settings

ROOT = Path(__file__).resolve().parents[1]
ZH_TEMPLATES = ROOT / "templates" / "zh-CN"
KNOWLEDGE = ROOT / "knowledge"
GLOSSARY = yaml.safe_load((ZH_TEMPLATES / "glossary.yaml").read_text(encoding="utf-8"))

# Han characters, CJK punctuation and the full-width forms.
CHINESE = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")
ASCII_PUNCTUATION = frozenset(',.?!:;()"')
# Where a code span, a URL or a template tag was: neither Chinese nor a space.
HOLE = "\ue000"
LEFT_ALONE = re.compile(r"`[^`\n]*`|https?://\S+")
TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
COMMENT = re.compile(r"\{#(.*?)#\}", re.DOTALL)
LITERAL = re.compile(r'"([^"\\]*)"|\'([^\'\\]*)\'')
QUOTATION = re.compile(r"“[^”]*”")

# Knowledge that teaches the bot what people type: their words, not the bot's, so no glossary there.
HEARD = frozenset({"questions", "keywords"})
HEARD_FILES = frozenset({"synonyms.yaml", "shorthand.yaml", "commands.yaml", "off_topic.yaml"})


def ascii_punctuation_next_to_chinese(text: str) -> list[str]:
    """Each ASCII punctuation mark with a Chinese character beside it (spaces between do not count)."""
    text = LEFT_ALONE.sub(HOLE, text)
    found = []
    for at, char in enumerate(text):
        if char not in ASCII_PUNCTUATION:
            continue
        before, after = text[:at].rstrip(" ")[-1:], text[at + 1 :].lstrip(" ")[:1]
        if CHINESE.match(before) or CHINESE.match(after):
            found.append(text[max(0, at - 12) : at + 12].replace(HOLE, "…").replace("\n", "⏎"))
    return found


def template_prose(source: str) -> list[str]:
    """What a template says: its text around the tags, the strings inside its tags, and its comments."""
    literals: list[str] = []

    def hole(tag: re.Match[str]) -> str:
        literals.extend(a or b for a, b in LITERAL.findall(tag.group(0)))
        return HOLE

    text = TAG.sub(hole, COMMENT.sub(lambda c: c.group(1), source))
    return [text, *literals]


def zh_templates() -> list[Path]:
    return sorted(ZH_TEMPLATES.rglob("*.j2"))


def label_sources() -> list[str]:
    labels = yaml.safe_load((ZH_TEMPLATES / "labels.yaml").read_text(encoding="utf-8"))
    return [str(value) for value in labels.values()]


def zh_texts(node: Any, *, heard: bool = False, key: str = "") -> Iterator[tuple[str, bool]]:
    """Every zh-CN text in a knowledge file, and whether it is something people type."""
    if isinstance(node, dict):
        for name, value in node.items():
            inner_heard = heard or name in HEARD
            if name == "zh-CN" or key == "zh-CN":
                yield from zh_texts(value, heard=inner_heard, key="zh-CN")
                if key == "zh-CN":
                    yield str(name), heard  # shorthand keys and the like are Chinese text too
            else:
                yield from zh_texts(value, heard=inner_heard, key=key)
    elif isinstance(node, list):
        for value in node:
            yield from zh_texts(value, heard=heard, key=key)
    elif isinstance(node, str) and key == "zh-CN":
        yield node, heard


def knowledge_texts() -> Iterator[tuple[str, str, bool]]:
    """(file, text, heard) for every zh-CN text of knowledge/*.yaml and knowledge/topics/*.yaml."""
    for path in sorted([*KNOWLEDGE.glob("*.yaml"), *(KNOWLEDGE / "topics").glob("*.yaml")]):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for text, heard in zh_texts(data):
            yield path.relative_to(ROOT).as_posix(), text, heard or path.name in HEARD_FILES


def glossary_slips(text: str) -> list[str]:
    """The words the glossary says not to use, after its own terms and the typed commands are set aside."""
    for command in GLOSSARY["commands"]:
        text = text.replace(command, HOLE)
    slips = []
    for name, entry in GLOSSARY.items():
        if name == "commands":
            continue
        rest = text.replace(entry["term"], HOLE)
        slips += [f"{word} (say {entry['term']})" for word in entry["avoid"] if word in rest]
    return slips


# ---------------------------------------------------------------------------------------------------------
# The text as written


@pytest.mark.parametrize("path", zh_templates(), ids=lambda p: p.relative_to(ZH_TEMPLATES).as_posix())
def test_a_chinese_template_uses_full_width_punctuation(path: Path) -> None:
    found = [
        hit
        for prose in template_prose(path.read_text(encoding="utf-8"))
        for hit in ascii_punctuation_next_to_chinese(prose)
    ]
    assert not found, f"{path.name}: ASCII punctuation next to Chinese: {found}"


def test_the_chinese_labels_use_full_width_punctuation() -> None:
    found = [
        hit
        for label in label_sources()
        for prose in template_prose(label)
        for hit in ascii_punctuation_next_to_chinese(prose)
    ]
    assert not found


def test_the_chinese_knowledge_uses_full_width_punctuation() -> None:
    found = [f"{file}: {hit}" for file, text, _ in knowledge_texts() for hit in ascii_punctuation_next_to_chinese(text)]
    assert not found


def test_the_check_sees_ascii_punctuation_and_leaves_code_and_tags_alone() -> None:
    assert ascii_punctuation_next_to_chinese("你好, 世界") == ["你好, 世界"]
    assert ascii_punctuation_next_to_chinese("真的吗?")
    assert ascii_punctuation_next_to_chinese('点"取消"。')
    assert ascii_punctuation_next_to_chinese("(注意)")
    assert not ascii_punctuation_next_to_chinese("运行 `unlockbot audit verify --anchor a.b` 即可")
    assert not ascii_punctuation_next_to_chinese("打开 https://crm.example.com/login?next=1 登录")
    assert not ascii_punctuation_next_to_chinese("2026年11月29日 17:05（UTC+9），共 1.5 小时")
    assert not ascii_punctuation_next_to_chinese("Sign-in from 198.51.100.23 (Chengdu, China).")
    prose = template_prose('{{ "；" if not loop.last }}{# 注释（全角） #}{{ x }}:{{ y }}来自 {{ ip }}。')
    assert not [hit for text in prose for hit in ascii_punctuation_next_to_chinese(text)]
    assert ascii_punctuation_next_to_chinese(template_prose("{{ username }}: 你好")[0])
    assert ascii_punctuation_next_to_chinese(template_prose('{{ "错误:" }}')[1])


@pytest.mark.parametrize("path", zh_templates(), ids=lambda p: p.relative_to(ZH_TEMPLATES).as_posix())
def test_a_chinese_template_names_things_as_the_glossary_does(path: Path) -> None:
    slips = [slip for prose in template_prose(path.read_text(encoding="utf-8")) for slip in glossary_slips(prose)]
    assert not slips, f"{path.name}: {slips}"


def test_the_labels_and_knowledge_answers_name_things_as_the_glossary_does() -> None:
    slips = [f"labels.yaml: {slip}" for label in label_sources() for slip in glossary_slips(label)]
    slips += [
        f"{file}: {slip}" for file, text, heard in knowledge_texts() if not heard for slip in glossary_slips(text)
    ]
    assert not slips


def test_the_glossary_check_sees_another_name_for_the_app() -> None:
    assert glossary_slips("打开验证器 App，输入动态码") == ["验证器 (say 身份验证器)", "动态码 (say 验证码)"]
    assert not glossary_slips("打开身份验证器，把验证码发给我；管理员输入“重置验证器 bob”即可")


# ---------------------------------------------------------------------------------------------------------
# The text as rendered with the demo's facts

DEMO_USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "kim")
# Codes the bot itself uses for facts: a Chinese reply says what they mean.
CODES = [*(r.value for r in LockReason), *(s.value for s in Status), "investigating", "identified", "monitoring"]
# What a template reads about the person's own lock (and so must be rendered for every demo user).
PERSONAL = ("username", "reason", "facts", "evidence", "flagged", "ip", "location", "place", "locked_at", "channels")
VERDICT = re.compile(r"verdict\s*(?:==|!=)\s*\"(\w+)\"|verdict in \(([^)]*)\)")


async def crm_words(app: App) -> tuple[set[str], set[str]]:
    """The demo CRM's own English: (words that stand for data, prose that may only be quoted)."""
    data: set[str] = set()
    prose: set[str] = set()
    system = await app.crm.system_status()
    for incident in system.incidents:
        data.add(incident.status)
        prose.add(incident.title)
    prose.update(w.note for w in system.maintenance if w.note)
    for user in DEMO_USERS:
        status = await app.crm.lock_status(user)
        evidence = status.evidence
        if evidence.flagged_action is not None:
            data.add(evidence.flagged_action.action)
            prose.add(evidence.flagged_action.detail)
        places = [evidence.place, *(a.place for a in evidence.failed_attempts)]
        data.update(p.city for p in places if p is not None and p.city)
        data.update(loc for loc in [evidence.location, *(a.location for a in evidence.failed_attempts)] if loc)
        if evidence.detail:
            prose.add(evidence.detail)
        if evidence.licence is not None:
            prose.add(evidence.licence.name)
    return data, prose


def verdicts(source: str) -> list[str | None]:
    found: list[str | None] = [None]
    for one, many in VERDICT.findall(source):
        for value in [one, *re.findall(r'"(\w+)"', many)]:
            if value and value not in found:
                found.append(value)
    return found


def situation(app: App, now: datetime, status: LockStatus, system: SystemStatus, **more: Any) -> Situation:
    reason = (status.reason or LockReason.UNKNOWN) if status.locked else None
    return Situation(
        now=now,
        username=status.username,
        status=status,
        system=system,
        path=UnlockPolicy(app.settings.policy).rule(reason).path if reason is not None else None,
        request=more.pop("request", None),
        probe=more.pop("probe", Reachability(True, 42.0)),
        others_locked=more.pop("others_locked", 4),
        crm_failed=more.pop("crm_failed", False),
    )


# The worry each answer is given for (bot/flows/questions.py and the others): its verdict comes from the situation.
WORRIES = {
    "questions/data_safety": Worry.DATA,
    "questions/impact": Worry.IMPACT,
    "questions/maintenance": Worry.MAINTENANCE,
    "questions/normal_or_abnormal": Worry.NORMAL,
    "questions/receive_info": Worry.RECEIVE,
    "questions/system_fault": Worry.FAULT,
    "questions/usage": Worry.USAGE,
    "when_back/answer": Worry.WHEN_BACK,
    "situation/when_back": Worry.WHEN_BACK,
    "network/": Worry.NETWORK,
    "sign_in/": Worry.SIGN_IN,
}


def situation_verdicts(
    app: App, now: datetime, status: LockStatus, system: SystemStatus, name: str
) -> list[str | None] | None:
    """The verdict the person's situation gives for the worry a template answers; ``None``: not an answer."""
    worry = next((w for prefix, w in WORRIES.items() if name.startswith(prefix)), None)
    if worry is None:
        return None
    return [verdict(situation(app, now, status, system), worry).key]


def situation_facts(app: App, now: datetime, status: LockStatus, system: SystemStatus, **more: Any) -> dict[str, Any]:
    facts = situation(app, now, status, system, **more).facts()
    return {**public_facts(status), "many_locked": 9, **facts}


def request_row(now: datetime, status: str, kind: str = "unlock") -> dict[str, Any]:
    return {
        "id": 7,
        "kind": kind,
        "status": status,
        "created_at": now - timedelta(hours=2),
        "updated_at": now - timedelta(hours=1),
        "expires_at": now + timedelta(hours=22),
        "lapsed": False,
        "decided_by": "sam" if status != "pending" else None,
        "decided_at": now - timedelta(hours=1) if status != "pending" else None,
        "note": "请先和主管确认这次操作" if status == "denied" else None,
        "executed_at": now - timedelta(minutes=50) if status == "done" else None,
    }


def contexts(app: App, now: datetime, status: LockStatus, system: SystemStatus) -> Iterator[dict[str, Any]]:
    """The demo user's facts as every template may ask for them, then the variations templates branch on."""
    evidence = status.evidence
    stored = json_evidence(evidence)
    open_request = {"id": 7, "kind": "unlock", "status": "pending", "expires_at": now + timedelta(hours=22)}
    base: dict[str, Any] = {
        "username": status.username,
        "reason": (status.reason or LockReason.UNKNOWN).value,
        "locked_at": status.locked_at,
        "facts": situation_facts(app, now, status, system),
        "evidence": stored,
        "flagged": stored.get("flagged_action"),
        "ip": evidence.ip,
        "location": evidence.location,
        "place": plain(evidence.place),
        "trust_ip": evidence.ip,
        "channels": dict(system.inbound_channels or {}),
        "channels_known": True,
        "request": request_row(now, "pending"),
        "waiting": {"id": 7, "status": "pending"},
        "answers": {
            "travelling": True,
            "where": "成都，客户公司",
            "trust_ip": evidence.ip,
            "question": "数据会丢吗？",
            "cannot_sign_in": True,
            "checked": ["password", "network", "browser"],
            "daily_cap_reached": True,
        },
        "id": 7,
        "kind": "unlock",
        "status": "pending",
        "created_at": now - timedelta(hours=2),
        "expires_at": now + timedelta(hours=22),
        "decided_by": None,
        "decided_at": None,
        "note": None,
        "verdict": None,
        "account": f"{status.username}@example.com",
        "admin": True,
        "answer": "已经处理好了，请再登录一次。",
        "approved": True,
        "at": now,
        "attempts_left": 2,
        "by": "sam",
        "capped": False,
        "used": 11,  # seats in use and in all (admin/no_free_seat, admin/seats_nearly_full)
        "total": 10,
        "trial": False,  # admin/licence_ending
        "inactive": ["kim", "judy"],  # admin/no_free_seat: the seat holders longest without signing in
        "reminders": "on",  # faq/answer of the licence topic
        "ends_at": now + timedelta(days=20),
        "starts_at": now + timedelta(days=19),  # alerts/maintenance_ahead
        "changed": True,  # alerts/stopped, alerts/started: the choice changed, or was already so
        "locks": 7,  # admin/incident: locks in the window, what such a window usually holds, who came first
        "window_minutes": 10,
        "expected": 0.4,
        "first": ["alice", "bob"],
        "started_at": now - timedelta(minutes=8),
        "days": 20,
        "name": "Service Desk",
        "channel": "Slack",
        "code": "7Q2M-KD4P",
        "count": 2,
        "enrolled": False,
        "error": "the CRM's REST API answered 500: internal error",
        "event": 42,
        "events": [
            {"at": now, "actor": "sam", "action": action}
            for action in ("request.filed", "totp.verified", "notice.admin/card", "something.new")
        ],
        "hash": "3f2a9c",
        "intact": True,
        "issuer": "unlockbot",
        "limit": 5,
        "minutes": 30,
        "notified": True,
        "ok": True,
        "own": 1,
        "probed": True,
        "purpose": "details",
        "question": "数据会丢吗？",
        "removed": True,
        "requests": {s.value: 1 for s in Status},
        "self_service": 3,
        # admin/stats and admin/weekly_digest: bot.reports.stats.LockStats.summary()
        "hours": 720,  # and "total" above: the locks of the period
        "by_reason": {"failed_password": 5, "unusual_ip": 3, "license_expired": 1},
        "resolutions": {"self_service": 4, "approved": 3, "denied": 1, "nobody": 5, "waiting": 1},
        "approval_p50_minutes": 45,
        "approval_p90_minutes": 300,
        "approvals_timed": 3,
        "repeated_people": 7,
        "repeated": [["kim", 4], ["dave", 2]],
        "sent_to": "a***@example.com",
        "topic": "data-safety",
        "wait": timedelta(minutes=5),
        "why": "own_account",
    }
    yield base
    for value in Status:
        for kind in ("unlock", "help", "self_service"):
            row = request_row(now, value.value, kind)
            yield {
                **base,
                "status": value.value,
                "kind": kind,
                "request": row,
                "decided_by": row["decided_by"],
                "decided_at": row["decided_at"],
                "note": row["note"] or "请先和主管确认这次操作",
            }
    yield {**base, "request": None, "facts": situation_facts(app, now, status, system, request=open_request)}
    yield {**base, "request": {**request_row(now, "pending"), "lapsed": True}}
    yield {**base, "facts": situation_facts(app, now, status, system, crm_failed=True, probe=None)}
    yield {**base, "facts": situation_facts(app, now, status, system, probe=Reachability(False, None, "timed out"))}
    yield {**base, "intact": False, "approved": False, "ok": False, "removed": False, "count": 0, "capped": True}
    yield {**base, "hours": 12, "total": 0, "by_reason": {}, "approvals_timed": 0, "repeated_people": 0, "repeated": []}
    yield {**base, "why": "pending_request", "enrolled": True, "channels_known": False, "flagged": None}
    for purpose in ("approve", "admin_unlock", "unlock"):
        yield {**base, "purpose": purpose}
    for reminders in ("no_list", "no_admins"):
        yield {**base, "reminders": reminders, "topic": "license"}
    holders = [
        {"username": "kim", "display_name": "Kim Sun", "last_sign_in_at": None},
        {"username": "judy", "display_name": "Judy Xu", "last_sign_in_at": (now - timedelta(days=38)).isoformat()},
    ]
    yield {**base, "inactive": [], "evidence": {**stored, "inactive_accounts": holders}}


async def test_every_chinese_template_says_the_crm_facts_in_chinese(app: App) -> None:
    now = app.clock.now()
    system = await app.crm.system_status()
    data_words, prose = await crm_words(app)
    assert "bulk delete of customer records" in data_words  # the demo still has the English it is tested with
    assert "Database storage fault in the orders module" in prose
    code_words = re.compile(r"\b(" + "|".join(CODES) + r")\b")
    statuses = {user: await app.crm.lock_status(user) for user in DEMO_USERS}
    variants = {user: list(contexts(app, now, statuses[user], system)) for user in DEMO_USERS}
    problems: set[str] = set()
    rendered = 0
    for path in zh_templates():
        name = path.relative_to(ZH_TEMPLATES).with_suffix("").as_posix()
        if name.startswith("situation/words"):
            continue  # macros only: said through the templates that import them
        source = path.read_text(encoding="utf-8")
        for user in DEMO_USERS:
            if user != DEMO_USERS[0] and not any(key in source for key in PERSONAL):
                continue  # says nothing about the person's own lock
            # A worry's answer branches on what the person's situation says; other templates on their own words.
            branches = situation_verdicts(app, now, statuses[user], system, name) or verdicts(source)
            base = variants[user][0]
            for context in variants[user]:
                changed = [key for key, value in context.items() if value is not base[key]]
                if changed and not any(key in source for key in changed):
                    continue  # a variation this template does not read
                for branch in branches:
                    text = app.renderer.render(Reply(name, {**context, "verdict": branch}), "zh-CN").text
                    rendered += 1
                    unquoted = QUOTATION.sub("“”", text)
                    problems.update(
                        f"{name} ({user}): ASCII punctuation {hit!r}" for hit in ascii_punctuation_next_to_chinese(text)
                    )
                    problems.update(f"{name} ({user}): CRM data in English: {w!r}" for w in data_words if w in text)
                    problems.update(f"{name} ({user}): CRM prose not quoted: {w!r}" for w in prose if w in unquoted)
                    problems.update(f"{name} ({user}): a code: {m!r}" for m in code_words.findall(unquoted))
    assert rendered > 1000
    assert not problems, "\n".join(sorted(problems))


# ---------------------------------------------------------------------------------------------------------
# The same through a conversation


async def test_frank_hears_what_was_flagged_in_chinese_and_the_crm_words_as_a_quotation(app: App) -> None:
    frank = Chat(app.engine, "frank", locale="zh-CN")
    await frank.start()
    await frank.press("why")
    await frank.press("details")
    said = await frank.say(await demo.current_code(app, "frank"))
    assert "被标记的操作（2026年11月29日 16:47）：批量删除客户记录，共 312 条。" in said.text
    assert "CRM 的说明：“312 customer records deleted in one batch”" in said.text
    assert "bulk delete" not in said.text


async def test_the_admin_card_says_the_flagged_action_and_the_place_in_chinese(app: App) -> None:
    frank = Chat(app.engine, "frank", locale="zh-CN")
    await frank.say("解锁")
    said = await frank.say(await demo.current_code(app, "frank"))
    assert (
        "CRM 标记的操作：批量删除客户记录，共 312 条（CRM 的说明：“312 customer records deleted in one batch”）。"
        in said.text
    )
    bob = Chat(app.engine, "bob", locale="zh-CN")
    await bob.say("解锁")
    said = await bob.say(await demo.current_code(app, "bob"))
    assert "CRM 拦截了一次来自陌生地址的登录：198.51.100.23（中国成都）。" in said.text
    await bob.press("否")
    tina = Chat(app.engine, "tina", locale="zh-CN")
    said = await tina.say("待处理")
    assert "被标记的操作：批量删除客户记录，共 312 条" in said.text
    assert "被标记的登录来自 198.51.100.23（中国成都）。" in said.text
    assert "提交于 2026年11月29日 17:00，2026年11月30日 17:00 过期。" in said.text
    assert not ascii_punctuation_next_to_chinese(said.text)


async def test_a_crm_that_gives_its_facts_as_data_is_heard_in_chinese(app: App) -> None:
    at = app.clock.now() - timedelta(minutes=5)
    async with serving(FakeRestCrm(app.clock.now)) as fake:
        fake.add_account("ann", "ann@example.com", "Ann Lee")
        fake.lock(
            "ann",
            "policy_violation",
            at,
            {
                "ip": "203.0.113.9",
                "location": "somewhere near Berlin",
                "place": {"country": "de", "city": "Berlin", "city_names": {"zh-CN": "柏林", "en": "Berlin"}},
                "failed_attempts": [{"at": at.isoformat(), "ip": "203.0.113.9", "location": "Munich, DE"}],
                "flagged_action": {
                    "at": at.isoformat(),
                    "action": "Massenlöschung",
                    "detail": "40 Kontakte gelöscht",
                    "kind": "mass-delete",
                    "records": 40,
                    "record_type": "Contacts",
                },
                "incident": {"id": "9", "title": "Speicher voll", "started_at": at.isoformat(), "status": "Identified"},
            },
        )
        crm = RestCrm(RestCrmSettings.model_validate(rest_settings(fake)), timeout=TEST_TIMEOUT)
        try:
            status = await crm.lock_status("ann")
        finally:
            await crm.aclose()
    context = {"reason": "policy_violation", "locked_at": at, "evidence": plain(status.evidence)}
    text = app.renderer.render(Reply("diagnose/evidence", context), "zh-CN").text
    assert "- 2026年11月29日 16:55，来自 203.0.113.9（德国 Munich）" in text  # a city the bot has no name for
    assert "被标记的登录：来自 203.0.113.9（德国柏林）。" in text  # the name the CRM gave
    assert "批量删除联系人，共 40 条。CRM 的说明：“40 Kontakte gelöscht”" in text
    assert "故障：“Speicher voll”（已找到原因，正在修复，2026年11月29日 16:55 开始）。" in text
    assert "Massenlöschung" not in text
    assert not ascii_punctuation_next_to_chinese(text)
    english = app.renderer.render(Reply("diagnose/evidence", context), "en").text
    assert "from 203.0.113.9 (Berlin, Germany)." in english
    assert "bulk delete of contacts (40 in all)." in english
