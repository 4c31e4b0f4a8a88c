"""``unlockbot audit`` and ``unlockbot db`` as an operator runs them: on the demo, on copies, with typos."""

from __future__ import annotations

import json
import shutil
import sqlite3
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.requests import audit
from tests.test_console import Cli


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def cli(demo_home: Path) -> Cli:
    cli = Cli(demo_home)  # a copy of a folder where `demo seed --reset` ran
    # A few turns, each followed by the housekeeper, which keeps the anchor.
    cli.run("chat", "--as", "alice", "--lang", "en", stdin="unlock me\n000000\n")
    return cli


def data(cli: Cli) -> Path:
    return cli.home / ".unlockbot"


def events(cli: Cli) -> list[dict[str, object]]:
    return [json.loads(line) for line in cli.run("audit", "export", "--since", "2000-01-01").stdout.splitlines()]


def test_events_are_signed_and_a_rewrite_without_the_key_is_named(cli: Cli) -> None:
    trail = events(cli)
    assert {event["key_id"] for event in trail} == {
        audit.AuditKey.from_text((data(cli) / "audit.key").read_text(), name="test").key_id
    }
    verified = cli.run("audit", "verify")
    assert verified.stdout.startswith(f"audit trail intact: {len(trail)} event(s)")
    assert f"head hash: {trail[-1]['hash']}" in verified.stdout

    # Someone with the database but not the key edits event 3 and recomputes every hash after it.
    with sqlite3.connect(data(cli) / "unlockbot.db") as connection:
        connection.execute("DROP TRIGGER audit_events_no_update")
        rows = connection.execute(
            "SELECT id, at, actor, action, subject, details, prev_hash FROM audit_events WHERE id >= 3 ORDER BY id"
        ).fetchall()
        prev = rows[0][6]
        for event_id, at, actor, action, subject, details, _ in rows:
            actor = "someone else" if event_id == 3 else actor
            forged = audit.event_hash(prev, _at(at), actor, action, subject, json.loads(details))
            connection.execute(
                "UPDATE audit_events SET actor = ?, prev_hash = ?, hash = ? WHERE id = ?",
                (actor, prev, forged, event_id),
            )
            prev = forged
    result = cli.run("audit", "verify", check=False)
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == "audit event 3: its content does not match its hash (the event was edited)"
    assert "audit trail NOT intact" in result.stdout


def _at(stored: str) -> datetime:
    """A time as SQLite keeps it (UTC, without a zone), as the bot reads it back."""
    return datetime.fromisoformat(stored).replace(tzinfo=UTC)


def test_deleting_the_newest_events_is_caught_by_the_anchor_the_bot_keeps(cli: Cli) -> None:
    anchor = json.loads((data(cli) / "audit-anchor.json").read_text())
    assert mode(data(cli) / "audit-anchor.json") == 0o600
    assert "checked against the anchor" in cli.run("audit", "verify").stdout
    with sqlite3.connect(data(cli) / "unlockbot.db") as connection:
        connection.execute("DELETE FROM audit_events WHERE id > ?", (anchor["event"] - 2,))
    result = cli.run("audit", "verify", check=False)
    assert result.returncode == 1
    assert f"names event {anchor['event']}: the newest events were deleted" in result.stdout


def test_the_operator_can_give_the_head_from_the_daily_notice(cli: Cli) -> None:
    head = str(events(cli)[-1]["hash"])
    (data(cli) / "audit-anchor.json").unlink(missing_ok=True)  # as on a machine that never kept one
    assert cli.run("audit", "verify", "--anchor", head).returncode == 0
    with sqlite3.connect(data(cli) / "unlockbot.db") as connection:
        connection.execute("DELETE FROM audit_events WHERE id = (SELECT max(id) FROM audit_events)")
    result = cli.run("audit", "verify", "--anchor", head, check=False)
    assert result.returncode == 1
    assert f"no event has the hash {head} that --anchor gives" in result.stdout
    without = cli.run("audit", "verify")  # a shorter chain is a good chain: only an anchor tells
    assert "no anchor in" in without.stdout
    bad = cli.run("audit", "verify", "--anchor", "not-a-hash", check=False)
    assert bad.returncode == 2
    assert "--anchor: expected the 64-character hash" in bad.stderr


def test_verify_reads_a_read_only_copy_and_changes_nothing(cli: Cli, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(data(cli) / "unlockbot.db", copy / "bot.db")
    before = (copy / "bot.db").read_bytes()
    (copy / "bot.db").chmod(0o444)
    copy.chmod(0o555)
    # Run as root, permissions stop nothing; a file made and removed again still changes the folder's time.
    folder_time = copy.stat().st_mtime_ns
    try:
        cli.env["UNLOCKBOT_DATABASE__URL"] = f"sqlite:///{copy / 'bot.db'}"
        result = cli.run("audit", "verify")
        assert result.stdout.startswith("audit trail intact")
        assert cli.run("audit", "export", "--since", "2000-01-01").stdout.count("\n") == len(events(cli))
    finally:
        copy.chmod(0o755)
    assert sorted(p.name for p in copy.iterdir()) == ["bot.db"]  # no log, no lock file, no CRM database
    assert copy.stat().st_mtime_ns == folder_time  # not even for a moment
    assert (copy / "bot.db").read_bytes() == before


def test_verify_needs_the_key_of_a_signed_trail(cli: Cli) -> None:
    (data(cli) / "audit.key").unlink()
    result = cli.run("audit", "verify", check=False)
    assert result.returncode == 2
    assert "no audit key is configured" in result.stderr
    assert not (data(cli) / "audit.key").exists()  # a check never makes a key
    started = cli.run("crm", "show", "alice", check=False)  # nor does a start on a signed trail
    assert started.returncode == 2
    assert "security.audit_key" in started.stderr


def test_a_mistyped_sqlite_url_creates_nothing(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli.run("demo", "seed", "--reset")
    cli.env["UNLOCKBOT_DATABASE__URL"] = f"sqlite:///{tmp_path / 'unlokbot' / 'bot.db'}"
    for command in (("crm", "show", "alice"), ("db", "upgrade"), ("audit", "verify")):
        result = cli.run(*command, check=False)
        assert result.returncode == 2, command
        assert "unlokbot" in result.stderr
    assert "db upgrade --create" in cli.run("db", "upgrade", check=False).stderr
    assert not (tmp_path / "unlokbot").exists()
    cli.run("db", "upgrade", "--create")
    assert mode(tmp_path / "unlokbot") == 0o700
    assert mode(tmp_path / "unlokbot" / "bot.db") == 0o600


def test_what_the_bot_writes_is_for_its_owner_only(cli: Cli) -> None:
    for name in ("unlockbot.db", "crm.db", "secret.key", "audit.key", "audit-anchor.json"):
        assert mode(data(cli) / name) == 0o600, name
