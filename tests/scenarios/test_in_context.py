"""Answers in context: (user, lock, question) -> what the answer must and must not say.

Every demo user asks their worries in both languages. The demo CRM has, at
09:00 UTC, an open database fault (since 08:20, "investigating"), maintenance
of the reporting module from 08:30 to 10:30, and every locked user locked at
08:48; a request filed at 09:00 expires 24 hours later. The answer must start
from the person's own lock and the live facts, and the facts must never
contradict each other: while the fault is open, nothing says the CRM is fine.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from bot import demo
from bot.app import App
from bot.crm.sql_schema import CrmIncident
from bot.storage.models import UnlockRequest
from tests.chat import Chat

Setup = Callable[[App], Awaitable[None]]

# What an answer may never say while the database fault is open.
CRM_IS_FINE = (
    "the CRM itself is up",
    "The CRM answers normally",
    "no open fault",
    "CRM 本身在正常运行",
    "CRM 响应正常",
    "没有未解决的故障",
)
# The network checklist and the maintenance rules, for people whose lock is neither.
CHECKLIST = ("can you open other websites", "router", "能正常打开其他网站吗", "路由器")
MAINTENANCE_RULES = ("A lock during maintenance is normal", "维护期间被锁定属于正常情况")
FAULT = "Database storage fault in the orders module"


async def bob_files_a_request(app: App) -> None:
    bob = Chat(app.engine, "bob", locale="en")
    await bob.say("unlock me")
    await bob.say(await demo.current_code(app, "bob"))
    said = await bob.press("No")
    assert "#1" in said.text


async def the_fault_is_fixed(app: App) -> None:
    async with app.crm.database.session() as session, session.begin():  # type: ignore[attr-defined]
        for incident in await session.scalars(select(CrmIncident)):
            incident.status = "resolved"
            incident.resolved_at = app.clock.now()


@dataclass(frozen=True)
class Case:
    user: str
    locale: str
    question: str
    must: tuple[str, ...]
    must_not: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()  # buttons the answer must offer
    setup: Setup | None = None

    def __str__(self) -> str:
        given = f"+{self.setup.__name__}" if self.setup else ""
        return f"{self.user}{given}[{self.locale}]:{self.question}"


CASES = (
    # Is it my network? Another reason is said in one line first, and the checklist is not walked.
    Case(
        "alice",
        "en",
        "is it my network?",
        ("No: your account is locked because too many wrong passwords were typed, not because of your network.",),
        CHECKLIST + CRM_IS_FINE,
        ("Unlock me", "Check my connection anyway"),
    ),
    Case(
        "carol",
        "zh-CN",
        "是我的网络问题吗",
        ("不是。你的账号被锁定，是因为公司的 CRM 授权已经到期，和你的网络无关。",),
        CHECKLIST + CRM_IS_FINE,
        ("我什么时候能重新登录？", "还是检查一下我的网络"),
    ),
    Case(
        "carol",
        "en",
        "is it my network",
        ("because the company's CRM licence has expired, not because of your network",),
        CHECKLIST,
    ),
    Case(
        "erin",
        "en",
        "is it my network",
        (
            "because of a fault in the CRM itself, not because of your network",
            f'The fault: "{FAULT}" (being investigated',
        ),
        CHECKLIST + CRM_IS_FINE,
    ),
    Case(
        "judy",
        "zh-CN",
        "是我的网络问题吗",
        ("是因为系统正在按计划维护，和你的网络无关", "2026年11月29日 16:30 至 18:30"),
        CHECKLIST,
    ),
    Case(
        "dave",
        "en",
        "is it my network",
        ("because the company has more users than licensed seats", "An admin needs to approve the unlock"),
        CHECKLIST,
        ("Ask an admin to unlock me",),
    ),
    Case(
        "grace",
        "en",
        "is it my network",
        ("your session kept dropping", "it has an open fault", "can you open other websites"),
        (*CRM_IS_FINE, "not because of your network"),
    ),
    Case(
        "grace",
        "zh-CN",
        "是我的网络问题吗",
        ("很有可能", "会话反复断开", f"未解决的故障：“{FAULT}”"),
        CRM_IS_FINE,
    ),
    Case(
        "kim",
        "en",
        "is it my network",
        ("Your account isn't locked", f'Open fault: "{FAULT}"'),
        CRM_IS_FINE,
    ),
    Case(
        "kim",
        "en",
        "is it my network",
        ("Your account isn't locked", "the CRM itself is up"),
        (FAULT,),
        setup=the_fault_is_fixed,
    ),
    # Is this normal? A wrong-password lock is the security rule, not maintenance rules or "many people at once".
    Case(
        "alice",
        "en",
        "is this normal?",
        ("Yes, this is normal: it's the CRM's ordinary security rule working as designed.",),
        (*MAINTENANCE_RULES, "many people at once", "points to the system"),
    ),
    Case(
        "alice",
        "zh-CN",
        "这正常吗",
        ("属于正常情况：这是 CRM 的常规安全规则在按设计起作用", "密码连续输错了好几次"),
        (*MAINTENANCE_RULES, "多半是系统原因"),
    ),
    Case(
        "heidi",
        "en",
        "is this normal",
        ("ordinary security rule", "because of too many actions in a short time"),
        MAINTENANCE_RULES,
    ),
    Case(
        "bob",
        "zh-CN",
        "这正常吗",
        ("常规安全规则", "有一次登录来自 CRM 不认识的地点"),
        MAINTENANCE_RULES,
    ),
    Case(
        "frank",
        "en",
        "is this normal",
        ("an action on your account was flagged", "until an admin has looked at it"),
        MAINTENANCE_RULES,
    ),
    Case(
        "judy",
        "en",
        "is this normal",
        ("Yes, this is normal: your lock is the scheduled maintenance", "at 29 Nov 2026, 10:30 UTC"),
        ("security rule",),
    ),
    Case(
        "erin",
        "zh-CN",
        "这正常吗",
        ("这不属于正常情况：CRM 出了故障", "正在排查"),
        ("常规安全规则", *CRM_IS_FINE),
    ),
    Case(
        "ivan",
        "zh-CN",
        "这正常吗",
        ("这在预料之中，不是故障", "试用版的使用额度已经用完"),
        MAINTENANCE_RULES,
    ),
    # Is my data safe? The lock's own words, then live backup and fault facts.
    Case(
        "erin",
        "en",
        "is my data safe",
        ("Last backup: 29 Nov 2026, 02:00 UTC", f'The fault behind your lock: "{FAULT}" (being investigated'),
        CRM_IS_FINE,
    ),
    Case(
        "dave",
        "zh-CN",
        "我的数据安全吗",
        ("名额不足只影响登录", "最近一次备份：2026年11月29日 10:00", f"未解决的故障：“{FAULT}”"),
    ),
    Case(
        "kim",
        "zh-CN",
        "我的数据安全吗",
        ("你的账号没有被锁定，数据也没有任何变化", "未解决的故障"),
        CRM_IS_FINE,
    ),
    # Can I still receive customer information?
    Case(
        "bob",
        "en",
        "can i still receive customer info",
        ("your lock is on your own sign-in", "phone sync: stopped for now"),
    ),
    Case(
        "erin",
        "zh-CN",
        "还能收到客户信息吗",
        ("是因为整个 CRM 系统出了故障", "电话同步：暂时停止", "正在排查"),
        CRM_IS_FINE,
    ),
    # When can I sign in again / when will it be over / is the fault fixed?
    Case(
        "judy",
        "en",
        "When will it be over?",
        ("When the maintenance ends, at 29 Nov 2026, 10:30 UTC.",),
        labels=("Tell me when I can sign in again",),
    ),
    Case(
        "judy",
        "zh-CN",
        "维护什么时候结束",
        ("维护会在 2026年11月29日 18:30 结束", "正在维护：2026年11月29日 16:30 至 18:30"),
    ),
    Case(
        "erin",
        "en",
        "is the fault fixed?",
        (
            "Not yet: the fault behind your lock is still open",
            f'"{FAULT}" (being investigated, since 29 Nov 2026, 08:20 UTC)',
        ),
        CRM_IS_FINE,
        ("Tell me when I can sign in again",),
    ),
    Case(
        "erin",
        "zh-CN",
        "我什么时候能重新登录",
        ("故障修好之后", "正在排查"),
        CRM_IS_FINE,
    ),
    Case(
        "erin",
        "en",
        "When can I sign in again?",
        ("The CRM lists no open incident right now",),
        (FAULT,),
        setup=the_fault_is_fixed,
    ),
    Case(
        "carol",
        "en",
        "When can I sign in again?",
        ("When the company's licence is renewed",),
        labels=("Tell me when I can sign in again",),
    ),
    Case(
        "alice",
        "zh-CN",
        "我什么时候能重新登录",
        ("现在就可以：用身份验证器里的验证码就能自助解锁",),
        labels=("帮我解锁",),
    ),
    Case(
        "heidi",
        "en",
        "When can I sign in again?",
        ("Right now", "the limit lifts by itself at 29 Nov 2026, 09:45 UTC"),
        labels=("Unlock me",),
    ),
    Case(
        "ivan",
        "en",
        "When can I sign in again?",
        ("When an admin upgrades the company from the trial edition",),
    ),
    Case(
        "grace",
        "en",
        "When can I sign in again?",
        ("Right now: you can unlock yourself",),
        ("lifts by itself",),
    ),
    Case(
        "dave",
        "en",
        "When can I sign in again?",
        ("Once an admin approves the unlock. Nothing has been filed yet",),
        labels=("Ask an admin to unlock me",),
    ),
    Case(
        "bob",
        "en",
        "When can I sign in again?",
        ("As soon as an admin approves your unlock request #1", "expires at 30 Nov 2026, 09:00 UTC"),
        labels=("What's happening with my request?",),
        setup=bob_files_a_request,
    ),
    # Where is my request?
    Case(
        "bob",
        "en",
        "What's happening with my request?",
        (
            "Your unlock request #1, filed 29 Nov 2026, 09:00 UTC: waiting for an admin.",
            "expires at 30 Nov 2026, 09:00 UTC",
        ),
        labels=("Withdraw my request",),
        setup=bob_files_a_request,
    ),
    Case(
        "bob",
        "zh-CN",
        "我的申请到哪一步了",
        ("你的解锁申请 #1", "等待管理员处理", "2026年11月30日 17:00 过期"),
        setup=bob_files_a_request,
    ),
    Case(
        "bob",
        "en",
        "why am I locked?",
        ("You already have unlock request #1: waiting for an admin",),
        ("What happens next",),
        ("What's happening with my request?",),
        setup=bob_files_a_request,
    ),
    Case(
        "frank",
        "en",
        "status",
        ("You have no unlock request at the moment", "An admin needs to approve the unlock"),
        labels=("Ask an admin to unlock me",),
    ),
    Case(
        "kim",
        "zh-CN",
        "我的申请到哪一步了",
        ("你目前没有解锁申请，账号也没有被锁定",),
    ),
    # Did I use it too much? What does it cost me?
    Case(
        "heidi",
        "zh-CN",
        "是不是我用得太多才被锁的？",
        ("可以这么说：你的账号被锁定，是因为短时间内操作过于频繁", "2026年11月29日 17:45"),
    ),
    Case(
        "carol",
        "en",
        "Did I get locked for using the CRM too much?",
        (
            "No: your account is locked because the company's CRM licence has expired, "
            "not because of how much you used the CRM.",
        ),
    ),
    Case(
        "frank",
        "zh-CN",
        "被锁一天会有什么影响？",
        ("先说你什么时候能重新登录", "管理员批准解锁之后"),
    ),
    # I can't sign in: the lock if there is one, a troubleshooting path if not.
    Case(
        "kim",
        "en",
        "I'm not locked but I still can't sign in",
        ("The CRM says your account isn't locked", "Step 1 of 3, the password"),
        ("I'm not sure I understood",),
        ("That worked, I'm in", "Still not working"),
    ),
    Case(
        "alice",
        "en",
        "I'm not locked but I still can't sign in",
        (
            "You can't sign in because your account is locked: "
            "it was locked because too many wrong passwords were typed",
        ),
        ("Step 1 of 3",),
        ("Unlock me",),
    ),
)


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_the_answer_starts_from_the_persons_situation(app: App, case: Case) -> None:
    if case.setup is not None:
        await case.setup(app)
    chat = Chat(app.engine, case.user, locale=case.locale)
    said = await chat.say(case.question)
    for fragment in case.must:
        assert fragment in said.text, f"{fragment!r} missing from:\n{said.text}"
    for fragment in case.must_not:
        assert fragment not in said.text, f"{fragment!r} should not be in:\n{said.text}"
    for label in case.labels:
        assert label in said.labels


def test_the_cases_cover_every_demo_user_in_both_languages() -> None:
    users = {u.username for u in demo.USERS if not u.admin}
    assert {case.user for case in CASES} == users
    assert {case.locale for case in CASES} == {"en", "zh-CN"}
    assert len(CASES) >= 30


WORRIES = {
    "en": ("is it my network", "is this normal", "is my data safe", "can i still receive customer info", "maintenance"),
    "zh-CN": ("是我的网络问题吗", "这正常吗", "我的数据安全吗", "还能收到客户信息吗", "维护"),
}


@pytest.mark.parametrize("user", ["alice", "erin", "kim"])
@pytest.mark.parametrize("locale", ["en", "zh-CN"])
async def test_while_the_fault_is_open_no_answer_says_the_crm_is_fine(app: App, user: str, locale: str) -> None:
    chat = Chat(app.engine, user, locale=locale)
    for question in WORRIES[locale]:
        said = await chat.say(question)
        assert FAULT in said.text, f"{question!r} did not mention the open fault:\n{said.text}"
        for fine in CRM_IS_FINE:
            assert fine not in said.text, f"{question!r} said {fine!r}:\n{said.text}"


async def test_a_request_denied_by_an_admin_says_who_and_when(app: App) -> None:
    await bob_files_a_request(app)
    tina = Chat(app.engine, "tina", locale="en")
    await tina.say("pending")
    await tina.press("deny:1")
    await tina.say("Please confirm the sign-in with IT first")
    bob = Chat(app.engine, "bob", locale="en")
    said = await bob.say("What's happening with my request?")
    assert "Your unlock request #1" in said.text
    assert 'tina declined it at 29 Nov 2026, 09:00 UTC: "Please confirm the sign-in with IT first"' in said.text
    assert "Ask an admin to unlock me" in said.labels  # still locked: a new request is one press away


async def test_a_withdrawn_request_is_still_reported_for_a_while(app: App) -> None:
    await bob_files_a_request(app)
    bob = Chat(app.engine, "bob", locale="zh-CN")
    said = await bob.say("我的申请到哪一步了")
    said = await bob.press("撤回我的申请")
    said = await bob.say("我的申请到哪一步了")
    assert "你的解锁申请 #1" in said.text
    assert "你在 2026年11月29日 17:00 撤回了它" in said.text
    async with app.database.session() as session:
        assert await session.scalar(select(UnlockRequest.status)) == "cancelled"


async def test_kim_walks_the_sign_in_path_to_a_person(app: App) -> None:
    kim = Chat(app.engine, "kim", locale="en")
    await kim.say("I'm not locked but I still can't sign in")
    said = await kim.press("Still not working")
    assert "Step 2 of 3, the connection" in said.text
    assert f'it has an open fault, which may be what\'s in your way: "{FAULT}"' in said.text
    assert "Walk me through my connection" in said.labels
    said = await kim.press("Still not working")
    assert "cache and cookies" in said.text
    said = await kim.press("Still not working")
    said = await kim.press("Ask a person")
    assert "request #1" in said.text
    async with app.database.session() as session:
        request = await session.scalar(select(UnlockRequest))
    assert request is not None
    assert request.kind == "help"
    assert request.answers["question"] == "I'm not locked but I still can't sign in"
    assert request.answers["checked"] == ["password", "network", "browser"]


async def test_kim_stops_when_signing_in_works(app: App) -> None:
    kim = Chat(app.engine, "kim", locale="zh-CN")
    await kim.start()
    said = await kim.press("我为什么被锁定了？")
    said = await kim.press("我还是登录不了")
    assert "第 1 步（共 3 步），密码" in said.text
    said = await kim.press("好了，已经能登录了")
    assert "你已经登录进去了" in said.text


async def test_carol_can_still_have_her_connection_checked(app: App) -> None:
    carol = Chat(app.engine, "carol", locale="en")
    await carol.say("is it my network")
    said = await carol.press("Check my connection anyway")
    assert "Here's the connection check." in said.text
    assert "can you open other websites" in said.text
    await carol.press("Yes, they load fine")
    said = await carol.press("No")
    assert "Your account is locked for another reason" in said.text
    assert f'The CRM, though, has an open fault: "{FAULT}"' in said.text
