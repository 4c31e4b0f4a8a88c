"""Admin insight: the numbers of ``stats`` from the bot's own rows, their chart, and the weekly digest."""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from matplotlib import font_manager
from PIL import Image as PILImage
from sqlalchemy import select

from bot.app import App
from bot.clock import ManualClock
from bot.config import Settings
from bot.messages import Reply
from bot.reports.chart import CJK_FAMILIES, DPI, HEIGHT, WIDTH, cjk_font, render_chart
from bot.reports.digest import AdminPost, week_of
from bot.reports.stats import BadPeriod, gather, parse_period, percentile
from bot.requests import audit
from bot.requests.housekeeping import Housekeeper
from bot.storage.models import Notification, UnlockRequest
from tests.chat import Chat
from tests.databases import DemoTemplates, demo_app
from tests.test_console import Cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Far past the demo's own rows, so the window holds only what a test puts there.
LATER = timedelta(days=120)


@dataclass(frozen=True)
class Lock:
    """One seeded unlock request: who, why, how many days before now, its kind and status, minutes to decide."""

    person: str
    reason: str
    days_ago: float
    kind: str = "unlock"
    status: str = "pending"
    decided_after: float | None = None  # minutes after filing; None: not decided by an admin
    admin_unlock: bool = False  # an admin's own `unlock USER`: approved at once, not timed

    @property
    def ended(self) -> str:
        if self.status == "pending":
            return "waiting"
        if self.status == "denied":
            return "denied"
        if self.kind == "self_service":
            return "self_service" if self.status in ("approved", "executing", "done") else "nobody"
        if self.decided_after is not None and self.status in ("approved", "executing", "done", "failed"):
            return "approved"
        return "nobody"


LOCKS = (
    Lock("kim", "failed_password", 1.2, kind="self_service", status="done"),
    Lock("kim", "failed_password", 3.5, kind="self_service", status="done"),
    Lock("kim", "unusual_ip", 6.1, status="done", decided_after=12),
    Lock("dave", "seat_limit", 2.3, status="approved", decided_after=95),
    Lock("dave", "seat_limit", 9.4, status="denied", decided_after=30),
    Lock("erin", "policy_violation", 4.7, status="failed", decided_after=240),
    Lock("frank", "unusual_ip", 11.0, status="expired"),
    Lock("grace", "rate_limit", 0.4, status="pending"),
    Lock("heidi", "failed_password", 20.2, kind="self_service", status="failed"),
    Lock("ivan", "network", 25.5, status="done", decided_after=0, admin_unlock=True),
    Lock("judy", "unusual_ip", 27.9, status="cancelled"),
    Lock("old", "failed_password", 45.0, kind="self_service", status="done"),  # outside the 30 days
)
# Locks no request was filed for: the admins' notice and a watch for the same lock count once.
SEEN = (
    ("notice.admin/lock_notice", "carol", "license_expired", 5.5),
    ("watch.started", "carol", "license_expired", 5.5),
    ("watch.started", "mallory", "maintenance", 8.2),
    ("notice.admin/lock_notice", "kim", "system_fault", 14.3),
    ("alert.lock", "nina", "failed_password", 3.3),
    ("alert.lock", "kim", "failed_password", 1.2),  # told of the lock she then unlocked herself: one lock
)


async def seed(app: App, now: datetime) -> None:
    async with app.database.session() as session, session.begin():
        for lock in LOCKS:
            filed = now - timedelta(days=lock.days_ago)
            decided = filed + timedelta(minutes=lock.decided_after) if lock.decided_after is not None else None
            request = UnlockRequest(
                kind=lock.kind,
                crm_username=lock.person,
                reason=lock.reason,
                evidence={},
                answers={},
                status=lock.status,
                channel="console",
                requester_user_id=lock.person,
                created_at=filed,
                updated_at=decided or filed,
                expires_at=filed + timedelta(hours=24),
                decided_at=decided if lock.kind == "unlock" else filed,
                decided_by="sam" if lock.decided_after is not None else None,
            )
            session.add(request)
            await session.flush()
            if lock.admin_unlock:
                await audit.record(
                    session,
                    at=filed,
                    actor="console:sam",
                    action="admin.unlock",
                    subject=lock.person,
                    details={"request": request.id},
                )
        for action, person, reason, days_ago in SEEN:
            at = now - timedelta(days=days_ago)
            await audit.record(
                session, at=at, actor="housekeeper", action=action, subject=person, details={"reason": reason}
            )


@dataclass(frozen=True)
class Expected:
    ended: dict[str, int]
    reasons: dict[str, int]
    repeated: dict[str, int]
    p50: timedelta
    p90: timedelta
    timed: int


def expected(now: datetime, period: timedelta) -> Expected:
    """What the numbers must be, worked out from LOCKS and SEEN the plain way."""
    inside = [lock for lock in LOCKS if timedelta(days=lock.days_ago) <= period]
    ended = dict.fromkeys(("self_service", "approved", "denied", "nobody", "waiting"), 0)
    for lock in inside:
        ended[lock.ended] += 1
    reasons: dict[str, int] = {}
    people: dict[str, int] = {}
    seen: set[tuple[str, str, object]] = set()
    for lock in inside:
        reasons[lock.reason] = reasons.get(lock.reason, 0) + 1
        people[lock.person] = people.get(lock.person, 0) + 1
        seen.add((lock.person, lock.reason, (now - timedelta(days=lock.days_ago)).date()))
    for _, person, reason, days_ago in SEEN:
        key = (person, reason, (now - timedelta(days=days_ago)).date())
        if timedelta(days=days_ago) <= period and key not in seen:
            seen.add(key)
            ended["nobody"] += 1
            reasons[reason] = reasons.get(reason, 0) + 1
            people[person] = people.get(person, 0) + 1
    waits = sorted(
        timedelta(minutes=lock.decided_after)
        for lock in inside
        if lock.ended == "approved" and lock.decided_after is not None and not lock.admin_unlock
    )
    return Expected(
        ended=ended,
        reasons=reasons,
        repeated={p: n for p, n in people.items() if n > 1},
        p50=waits[math.ceil(0.5 * len(waits)) - 1],
        p90=waits[math.ceil(0.9 * len(waits)) - 1],
        timed=len(waits),
    )


@pytest.fixture
async def seeded(app: App, clock: ManualClock) -> App:
    clock.advance(LATER)
    await seed(app, clock.now())
    return app


async def test_the_numbers_are_counted_from_the_bots_own_rows(seeded: App, clock: ManualClock) -> None:
    now = clock.now()
    async with seeded.database.session() as session:
        numbers = await gather(session, now=now, zone=ZoneInfo("UTC"))
    want = expected(now, timedelta(days=30))
    assert dict(numbers.resolutions) == want.ended
    assert numbers.by_reason == want.reasons
    assert dict(numbers.repeated) == want.repeated
    assert numbers.approval_p50 == want.p50
    assert numbers.approval_p90 == want.p90
    assert numbers.approvals_timed == want.timed
    assert numbers.total == sum(want.ended.values())
    assert len(numbers.days) == 31  # every calendar day the 30 days touch, empty ones included
    for reason, per_day in numbers.per_day.items():
        assert len(per_day) == len(numbers.days)
        assert sum(per_day) == want.reasons[reason]

    async with seeded.database.session() as session:
        week = await gather(session, now=now, period=timedelta(days=7))
    assert dict(week.resolutions) == expected(now, timedelta(days=7)).ended


async def test_the_summary_reads_the_numbers_in_both_languages(seeded: App, clock: ManualClock) -> None:
    async with seeded.database.session() as session:
        numbers = await gather(session, now=clock.now())
    want = expected(clock.now(), timedelta(days=30))
    ended = want.ended
    en = seeded.renderer.render(Reply("admin/stats", numbers.summary()), "en").text
    assert f"Locks in the last 30 days: {numbers.total}." in en
    assert f"self-service unlocks {ended['self_service']}, approved by an admin {ended['approved']}" in en
    assert "kim 4 times" in en
    zh = seeded.renderer.render(Reply("admin/stats", numbers.summary()), "zh-CN").text
    assert f"近 30 天共锁定 {numbers.total} 次。" in zh
    assert f"自助解锁 {ended['self_service']} 次" in zh
    assert "密码输错次数过多" in zh


def test_periods_read_as_days_hours_or_weeks() -> None:
    assert parse_period("30d") == timedelta(days=30)
    assert parse_period("12h") == timedelta(hours=12)
    assert parse_period(" 2W ") == timedelta(weeks=2)
    for bad in ("", "30", "0d", "-1d", "3 months", "1.5d"):
        with pytest.raises(BadPeriod):
            parse_period(bad)
    minutes = [timedelta(minutes=m) for m in (5, 1, 9, 3)]
    assert percentile(minutes, 0.5) == timedelta(minutes=3)
    assert percentile(minutes, 0.9) == timedelta(minutes=9)
    assert percentile([], 0.5) is None


def decoded(png: bytes) -> PILImage.Image:
    assert png.startswith(PNG_MAGIC)
    picture = PILImage.open(io.BytesIO(png))
    picture.load()
    assert picture.format == "PNG"
    return picture


async def test_the_chart_is_a_png_with_chinese_labels_in_a_cjk_font(seeded: App, clock: ManualClock) -> None:
    async with seeded.database.session() as session:
        numbers = await gather(session, now=clock.now())
    english = render_chart(numbers, seeded.renderer.label, "en")
    assert english.locale == "en"
    assert decoded(english.png).size == (round(WIDTH * DPI), round(HEIGHT * DPI))
    chinese = render_chart(numbers, seeded.renderer.label, "zh-CN")
    assert decoded(chinese.png).size == (round(WIDTH * DPI), round(HEIGHT * DPI))
    if cjk_font() is None:
        pytest.skip("no CJK font installed (apt-get install fonts-wqy-microhei): the Chinese chart is drawn in English")
    assert chinese.locale == "zh-CN"
    assert chinese.font in CJK_FAMILIES or "CJK" in chinese.font
    assert chinese.png != english.png


async def test_without_a_cjk_font_the_chart_falls_back_to_english_and_says_so(
    seeded: App, clock: ManualClock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    latin = [f for f in font_manager.fontManager.ttflist if f.name not in CJK_FAMILIES and "CJK" not in f.name]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", latin)  # a machine with no CJK font
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda *args, **kwargs: [])
    async with seeded.database.session() as session:
        numbers = await gather(session, now=clock.now())
    with caplog.at_level(logging.WARNING, logger="bot.reports.chart"):
        chart = render_chart(numbers, seeded.renderer.label, "zh-CN")
    assert chart.locale == "en"
    decoded(chart.png)
    assert "no CJK font" in caplog.text


async def test_an_admin_typing_stats_gets_the_chart_and_others_do_not(seeded: App) -> None:
    sam = Chat(seeded.engine, "sam", locale="en")
    said = await sam.say("stats")
    [reply] = [r for r in said.replies if r.image is not None]
    assert "Locks in the last 30 days" in reply.text
    assert not reply.image.secret
    assert reply.image.name.endswith(".png")
    decoded(reply.image.png)  # type: ignore[union-attr]
    kim = Chat(seeded.engine, "kim", locale="en")
    said = await kim.say("stats")  # not an admin: no numbers and no chart (read as a question: "status")
    assert all(r.image is None for r in said.replies)
    assert "Locks in the last" not in said.text
    said = await kim.press_action("stats")  # nor from a forged button: never offered to kim
    assert all(r.image is None for r in said.replies)


def digest_settings(settings: Settings) -> Settings:
    return Settings.model_validate(
        {**settings.model_dump(), "admins": {**settings.admins.model_dump(), "weekly_digest": True}}
    )


async def digests(app: App) -> list[Notification]:
    async with app.database.session() as session:
        found = await session.scalars(
            select(Notification).where(Notification.template == "admin/weekly_digest").order_by(Notification.id)
        )
        return list(found)


async def test_the_weekly_digest_goes_out_once_a_week_across_replicas(
    settings: Settings, clock: ManualClock, demo_templates: DemoTemplates
) -> None:
    async with demo_app(digest_settings(settings), clock, demo_templates) as app:
        # A second replica on the same database, with its own housekeeper.
        other = Housekeeper(
            app.database,
            app.outbox,
            app.crm,
            clock,
            app.settings.requests,
            admins=("sam", "tina"),
            escalation=(),
            weekly_digest=True,
        )
        await app.housekeeper.tick()
        await other.tick()
        first = await digests(app)
        assert sorted(n.crm_username for n in first) == ["sam", "tina"]
        assert [b[0] for b in first[0].buttons] == ["stats", "menu"]

        clock.advance(timedelta(hours=1))  # Sunday 29 November still: the same ISO week
        await other.tick()
        await app.housekeeper.tick()
        assert len(await digests(app)) == 2

        clock.advance(timedelta(days=1))  # Monday: a new week, one more each
        await other.tick()
        await app.housekeeper.tick()
        assert len(await digests(app)) == 4

        # The digest says the numbers in words, and its button draws the chart.
        for locale, words in (("en", "Your weekly lock digest"), ("zh-CN", "本周的锁定周报")):
            rendered = app.renderer.render(Reply(first[0].template, first[0].context), locale)
            assert words in rendered.text
        sam = Chat(app.engine, "sam", locale="en")
        said = await sam.say("hello")
        assert "Your weekly lock digest" in said.text
        said = await sam.press("Lock statistics")
        assert any(r.image is not None for r in said.replies)


async def test_no_digest_unless_asked(app: App) -> None:
    await app.housekeeper.tick()
    assert await digests(app) == []


async def test_the_posted_digest_carries_its_chart_and_the_numbers_of_the_week_it_names(
    app: App, clock: ManualClock
) -> None:
    # What a channel posts to its admin destination: in the default language (Chinese here), with the chart.
    named = AdminPost(week_of(clock.now()), clock.now() - timedelta(days=1), days=7)
    posted = await app.engine.admin_post(named.to_json())
    assert posted is not None
    assert "本周的锁定周报" in posted.text
    assert "按钮" not in posted.text  # no button to press: the chart is posted with it
    assert posted.buttons == ()
    assert posted.image is not None
    assert not posted.image.secret
    decoded(posted.image.png)
    assert AdminPost.from_json(named.to_json()) == named
    # A post this version does not know is dropped, not guessed at.
    for unknown in ("not json", '{"kind": "monthly", "week": "x", "until": "2026-11-29T00:00:00+00:00", "days": 30}'):
        assert await app.engine.admin_post(unknown) is None


# --- the command line and the console, as an operator and an admin meet them ------------------------------------


@pytest.fixture
def cli(demo_home: Path) -> Cli:
    return Cli(demo_home)


def test_report_prints_the_numbers_and_writes_the_chart(cli: Cli) -> None:
    result = cli.run("report", "--since", "30d", "--png", "out.png", "--lang", "zh")
    assert "近 30 天共锁定" in result.stdout
    written = cli.home / "out.png"
    assert f"chart written to {Path('out.png')}" in result.stdout
    assert decoded(written.read_bytes()).size == (round(WIDTH * DPI), round(HEIGHT * DPI))

    english = cli.run("report", "--since", "12h", "--lang", "en")
    assert "Locks in the last 12 hours:" in english.stdout
    assert "chart written" not in english.stdout  # no --png, no picture

    refused = cli.run("report", "--since", "a month", check=False)
    assert refused.returncode == 2
    assert "expected a period such as 30d, 7d or 12h" in refused.stderr
    nowhere = cli.run("report", "--png", str(cli.home / "missing" / "out.png"), check=False)
    assert nowhere.returncode == 1
    assert "cannot write the chart to" in nowhere.stderr


def test_stats_in_the_console_saves_the_chart_and_names_its_file(cli: Cli) -> None:
    result = cli.run("chat", "--as", "sam", "--lang", "en", stdin="stats\n")
    assert "Locks in the last 30 days:" in result.stdout
    saved = cli.home / result.stdout.split("(image saved to ")[1].split(")")[0]
    assert saved.name.startswith("lock-stats-")
    assert saved.suffix == ".png"
    decoded(saved.read_bytes())  # kept after the console stopped: nothing secret in it


def test_a_cjk_font_installed_after_matplotlib_made_its_cache_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    if cjk_font() is None:
        pytest.skip("no CJK font installed (apt-get install fonts-wqy-microhei)")
    latin = [f for f in font_manager.fontManager.ttflist if f.name not in CJK_FAMILIES and "CJK" not in f.name]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", latin)  # the cache from before the font came
    assert cjk_font() is not None
