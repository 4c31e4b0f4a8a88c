"""Incident detection: many more locks at once than the baseline is told to the admins once, and said to askers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.app import App
from bot.clock import ManualClock
from bot.config import AlertSettings
from bot.crm.base import LockEvent, LockReason
from bot.crm.sql import SqlCrm
from bot.messages import Reply
from bot.requests.alerts import Alerts
from bot.requests.incidents import detect
from bot.requests.policy import UnlockPolicy
from bot.storage.models import AuditEvent, Notification
from tests.chat import Chat

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=10)
DAY = timedelta(hours=24)
WAVE = (
    ("alice", LockReason.FAILED_PASSWORD),
    ("bob", LockReason.FAILED_PASSWORD),
    ("carol", LockReason.UNUSUAL_IP),
    ("dave", LockReason.FAILED_PASSWORD),
    ("erin", LockReason.UNUSUAL_IP),
    ("frank", LockReason.FAILED_PASSWORD),
)


def event(number: int, username: str, minutes_ago: float, reason: LockReason = LockReason.FAILED_PASSWORD) -> LockEvent:
    return LockEvent(str(number), username, reason, NOW - timedelta(minutes=minutes_ago))


def test_a_window_is_an_incident_only_well_above_its_baseline() -> None:
    wave = [
        event(i, f"u{i}", 9 - i, LockReason.UNUSUAL_IP if i % 3 == 0 else LockReason.FAILED_PASSWORD) for i in range(6)
    ]
    found = detect(wave, now=NOW, window=WINDOW, baseline=DAY, factor=3, minimum=5)
    assert found is not None
    assert (found.locks, found.expected) == (6, 0)
    assert found.by_reason == {"failed_password": 4, "unusual_ip": 2}
    assert found.first == ("u0", "u1", "u2", "u3", "u4")  # earliest first, five named
    # Fewer than the minimum is never an incident, however quiet the day was.
    assert detect(wave[:4], now=NOW, window=WINDOW, baseline=DAY, factor=3, minimum=5) is None
    # A busy day: 6 in ten minutes is what such a window usually holds, so nothing stands out.
    busy = [event(100 + i, f"b{i}", 11 + i * 1.4) for i in range(1000)]
    assert detect(wave + busy, now=NOW, window=WINDOW, baseline=DAY, factor=3, minimum=5) is None


async def lock_many(app: App) -> None:
    assert isinstance(app.crm, SqlCrm)
    for username, reason in WAVE:
        await app.crm.lock(username, reason)


async def notices(app: App) -> list[Notification]:
    async with app.database.session() as session:
        found = await session.scalars(select(Notification).where(Notification.template == "admin/incident"))
        return list(found)


async def test_a_wave_of_locks_is_told_to_the_admins_once_and_every_answer_knows_it(
    app: App, clock: ManualClock
) -> None:
    alerts = Alerts(app.database, app.crm, clock, AlertSettings(), UnlockPolicy({}), admins=("sam", "tina"))
    await alerts.poll_if_due()
    clock.advance(timedelta(minutes=1))
    kim = Chat(app.engine, "kim", locale="en")
    calm = await kim.say("is this normal?")
    assert "far more accounts" not in calm.text

    await lock_many(app)
    told = await alerts.poll_if_due()
    assert "incident" in told
    sent = await notices(app)
    assert sorted(n.crm_username for n in sent) == ["sam", "tina"]
    context = sent[0].context
    assert context["locks"] == 6
    assert context["by_reason"] == {"failed_password": 4, "unusual_ip": 2}
    assert context["first"] == ["alice", "bob", "carol", "dave", "erin"]
    text = app.renderer.render(Reply("admin/incident", context), "en").text
    assert "6 in the last 10 minutes" in text
    assert "Too many wrong passwords: 4" in text
    assert "First affected: alice, bob, carol, dave, erin." in text
    zh = app.renderer.render(Reply("admin/incident", context), "zh-CN").text
    assert "过去 10 分钟内有 6 个账号被锁定" in zh
    async with app.database.session() as session:
        detected = await session.scalar(select(AuditEvent).where(AuditEvent.action == "incident.detected"))
    assert detected is not None
    assert detected.details["told"] is True  # the audit event records the notice it was written with

    clock.advance(timedelta(minutes=1))
    assert "incident" not in await alerts.poll_if_due()  # still under way: not told again
    assert len(await notices(app)) == 2

    said = await kim.say("is this normal?")
    assert "far more accounts are being locked than usual: 6 in the last 10 minutes" in said.text
    assert "the admins have been told" in said.text
    # Alice's own lock is the ordinary wrong-password rule; with the wave, "yes, normal" would contradict it.
    said = await Chat(app.engine, "alice", locale="en").say("is this normal?")
    assert "Yes, this is normal" not in said.text
    assert "far more accounts than usual are being locked right now, and that is not normal" in said.text
    said = await Chat(app.engine, "grace", locale="zh-CN").say("是只有我被锁吗？")
    assert "所以不只是你一个人" in said.text
    said = await Chat(app.engine, "heidi", locale="en").say("why am I locked?")
    assert "6 accounts were locked in the last 10 minutes: this looks like something system-wide" in said.text

    clock.advance(timedelta(minutes=15))  # no more locks: the wave is over, and the answers say so no more
    await alerts.poll_if_due()
    said = await kim.say("is this normal?")
    assert "far more accounts" not in said.text
