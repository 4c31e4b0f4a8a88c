"""The console channel and the command line, driven through pipes like a person's script."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bot.handlers.console import ConsoleChannel
from bot.messages import Image, Inbound, InboundKind, Rendered, RenderedButton

REASONS_TITLE_ZH = "公司的 CRM 授权已到期"


class Cli:
    """Runs ``unlockbot`` in a directory of its own, as a fresh machine would."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("UNLOCKBOT_")}
        self.env["UNLOCKBOT_BOT__TIMEZONE"] = "UTC"

    def run(self, *args: str, stdin: str = "", check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "bot", *args],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=self.home,
            env=self.env,
            timeout=60,
        )
        assert "Traceback" not in result.stderr + result.stdout, result.stderr
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "bot", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.home,
            env=self.env,
        )


@pytest.fixture
def cli(demo_home: Path) -> Cli:
    return Cli(demo_home)  # a copy of a folder where `demo seed --reset` ran


def test_carol_hears_about_the_licence_in_both_languages(cli: Cli) -> None:
    zh = cli.run("chat", "--as", "carol", stdin="1\n")
    assert REASONS_TITLE_ZH in zh.stdout
    assert "[1] 我为什么被锁定了？" in zh.stdout
    en = cli.run("chat", "--as", "carol", "--lang", "en", stdin="1\n")
    assert "The company's CRM licence has expired" in en.stdout or "licence" in en.stdout
    assert REASONS_TITLE_ZH not in en.stdout


def test_alice_unlocks_with_the_demo_code(cli: Cli) -> None:
    assert json.loads(cli.run("crm", "show", "alice", "--json").stdout)["locked"] is True
    wrong = cli.run("chat", "--as", "alice", "--lang", "en", stdin="unlock me\n000000\n")
    assert "That code isn't right" in wrong.stdout
    assert json.loads(cli.run("crm", "show", "alice", "--json").stdout)["locked"] is True
    code = cli.run("demo", "code", "alice").stdout.strip()
    assert len(code) == 6
    assert code.isdigit()
    done = cli.run("chat", "--as", "alice", "--lang", "en", stdin=f"unlock me\n{code}\n")
    assert "Done: your CRM account is unlocked." in done.stdout
    assert code not in done.stdout  # the console never echoes a code
    shown = json.loads(cli.run("crm", "show", "alice", "--json").stdout)
    assert {"username": "alice", "locked": False, "reason": None}.items() <= shown.items()


def test_bad_input_gets_clear_replies(cli: Cli) -> None:
    lines = ["", "x" * 10_000, "\x00\x1b[31m\x07", "9", "1"]
    result = cli.run("chat", "--as", "dave", "--lang", "en", stdin="\n".join(lines) + "\n")
    out = result.stdout
    assert "I didn't get any text" in out
    assert "too long" in out
    assert "isn't one of the options" in out
    assert "Your account is locked" in out


def test_a_killed_chat_resumes_at_the_same_step(cli: Cli) -> None:
    process = cli.popen("chat", "--as", "alice", "--lang", "en")
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write("unlock me\n")
    process.stdin.flush()
    seen = ""
    for line in process.stdout:  # each read waits for the next line; the end of output stops it
        seen += line
        if "6-digit code" in line:
            break
    assert "6-digit code" in seen
    process.kill()
    process.wait(timeout=10)
    process.stdout.close()
    process.stdin.close()
    assert process.stderr is not None
    process.stderr.close()
    code = cli.run("demo", "code", "alice").stdout.strip()
    resumed = cli.run("chat", "--as", "alice", "--lang", "en", stdin=f"{code}\n")
    assert "Welcome back" in resumed.stdout
    assert "unlocked" in resumed.stdout


def test_demo_commands_refuse_a_database_that_is_not_a_demo(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli.run("db", "upgrade", "--create")
    result = cli.run("demo", "code", "alice", check=False)
    assert result.returncode == 2
    assert "not a demo database" in result.stderr


def test_a_bad_setting_is_named_without_a_traceback(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli.env["UNLOCKBOT_TOTP__MAX_FAILURES"] = "many"
    result = cli.run("crm", "show", "alice", check=False)
    assert result.returncode == 2
    assert "totp.max_failures" in result.stderr
    assert "UNLOCKBOT_TOTP__MAX_FAILURES" in result.stderr


def test_an_unknown_user_is_reported(cli: Cli) -> None:
    result = cli.run("crm", "show", "nobody", check=False)
    assert result.returncode == 1
    assert "nobody" in result.stderr


def test_buttons_are_chosen_by_number_or_label_in_any_case(tmp_path: Path) -> None:
    console = ConsoleChannel(
        lambda inbound: None,  # type: ignore[arg-type, return-value]
        "alice",
        locale=None,
        stdin=io.StringIO(),
        stdout=io.StringIO(),
        interactive=False,
        image_dir=tmp_path,
    )
    console.show([Rendered("hi", (RenderedButton("why", "Why am I locked?"), RenderedButton("unlock", "Unlock me")))])
    assert console.translate("2").button == "unlock"
    assert console.translate("  UNLOCK ME ").button == "unlock"
    assert console.translate("7").button == "console:7"
    assert console.translate("unlock please").kind is InboundKind.TEXT
    console.show([Rendered("code?", (RenderedButton("cancel", "Cancel"),), secret_input=True)])
    assert console.translate("1").button == "cancel"  # at a code prompt too, the number of Cancel cancels
    assert console.translate("123456").kind is InboundKind.TEXT  # a code is never a button number
    assert console.translate("7").kind is InboundKind.TEXT


def test_a_choice_offered_by_two_replies_of_a_turn_is_listed_once_in_its_later_place(tmp_path: Path) -> None:
    out = io.StringIO()
    console = ConsoleChannel(
        lambda inbound: None,  # type: ignore[arg-type, return-value]
        "kim",
        locale=None,
        stdin=io.StringIO(),
        stdout=out,
        interactive=False,
        image_dir=tmp_path,
    )
    alert = Rendered("You were locked.", (RenderedButton("unlock", "Unlock me"), RenderedButton("ask", "Ask")))
    menu = Rendered("Menu", (RenderedButton("why", "Why am I locked?"), RenderedButton("unlock", "Unlock me")))
    console.show([alert, menu])
    assert [line.strip() for line in out.getvalue().splitlines() if line.strip().startswith("[")] == [
        "[1] Ask",
        "[2] Why am I locked?",
        "[3] Unlock me",
    ]
    assert console.translate("3").button == "unlock"


def test_an_invitation_from_the_command_line_links_a_console_account(cli: Cli) -> None:
    assert "reset the authenticator of kim" in cli.run("admin", "reset-totp", "kim").stdout
    printed = cli.run("admin", "invite", "kim").stdout
    code = printed.split("link code for kim: ")[1].split()[0]
    result = cli.run("chat", "--as", "kim-laptop", "--lang", "en", stdin=f"{code}\n")
    assert "linked to the CRM account kim" in result.stdout
    assert "(image saved to " in result.stdout  # the enrolment QR code
    assert "█" in result.stdout  # and drawn as text
    saved = Path(result.stdout.split("(image saved to ")[1].split(")")[0])
    assert not saved.exists()  # it holds the TOTP secret: gone when the console stops
    again = cli.run("chat", "--as", "someone", "--lang", "en", stdin=f"{code}\n")
    assert "That link code isn't valid" in again.stdout


def test_the_audit_trail_names_an_edited_row(cli: Cli) -> None:
    import sqlite3

    assert cli.run("audit", "verify").stdout.startswith("audit trail intact")
    exported = [json.loads(line) for line in cli.run("audit", "export", "--since", "2020-01-01").stdout.splitlines()]
    assert exported
    assert exported[0]["prev_hash"] == "0" * 64
    with sqlite3.connect(cli.home / ".unlockbot" / "unlockbot.db") as connection:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            connection.execute("UPDATE audit_events SET actor = 'someone else' WHERE id = 3")
        connection.execute("DROP TRIGGER audit_events_no_update")  # anyone who can write the file can do this
        connection.execute("UPDATE audit_events SET actor = 'someone else' WHERE id = 3")
    result = cli.run("audit", "verify", check=False)
    assert result.returncode == 1
    assert "audit event 3: its content does not match its hash" in result.stdout


def test_keys_rotate_with_the_old_key_kept_for_reading(cli: Cli) -> None:
    old_key = (cli.home / ".unlockbot" / "secret.key").read_text().strip()
    new_key = cli.run("keys", "generate").stdout.strip()
    cli.env["UNLOCKBOT_SECURITY__SECRET_KEY"] = new_key
    cli.env["UNLOCKBOT_SECURITY__PREVIOUS_KEYS"] = json.dumps([old_key])
    assert "re-encrypted 13 secret(s)" in cli.run("keys", "rotate").stdout
    del cli.env["UNLOCKBOT_SECURITY__PREVIOUS_KEYS"]
    code = cli.run("demo", "code", "alice").stdout.strip()
    assert len(code) == 6
    cli.env["UNLOCKBOT_SECURITY__SECRET_KEY"] = old_key
    stale = cli.run("demo", "code", "alice", check=False)
    assert stale.returncode == 2
    assert "cannot decrypt" in stale.stderr


def test_secrets_are_required_when_stored(cli: Cli) -> None:
    (cli.home / ".unlockbot" / "secret.key").unlink()
    result = cli.run("crm", "show", "alice", check=False)
    assert result.returncode == 2
    assert "no key is configured" in result.stderr


def test_bob_asks_and_sam_approves_in_another_console(cli: Cli) -> None:
    bob_code = cli.run("demo", "code", "bob").stdout.strip()
    filed = cli.run(
        "chat", "--as", "bob", "--lang", "en", stdin=f"unlock me\n{bob_code}\nYes\nChengdu, client office\n1\n"
    )
    assert "I've filed unlock request #1" in filed.stdout
    assert "asking to trust 198.51.100.23" in filed.stdout
    sam_code = cli.run("demo", "code", "sam").stdout.strip()
    approved = cli.run("chat", "--as", "sam", "--lang", "en", stdin=f"pending\n1\n{sam_code}\n")
    assert "Unlock request #1 from bob" in approved.stdout
    assert "Approved: request #1 for bob" in approved.stdout
    shown = json.loads(cli.run("crm", "show", "bob", "--json").stdout)
    assert shown["locked"] is False
    told = cli.run("chat", "--as", "bob", "--lang", "en", stdin="")
    assert "sam approved your request #1" in told.stdout
    assert "Request #1 is done" in told.stdout


QR = Image(b"\x89PNG fake bytes", "totp-qr.png", "##\n##")


class Script:
    """What the engine would answer, turn by turn: the channel under test is the real console."""

    def __init__(self, *turns: list[Rendered]) -> None:
        self.turns = list(turns)

    async def __call__(self, inbound: Inbound) -> list[Rendered]:
        return self.turns.pop(0)


def console_for(script: Script, image_dir: Path, typed: str) -> tuple[ConsoleChannel, io.StringIO]:
    out = io.StringIO()
    channel = ConsoleChannel(
        script, "kim", locale="en", stdin=io.StringIO(typed), stdout=out, interactive=False, image_dir=image_dir
    )
    return channel, out


def saved_path(out: io.StringIO) -> Path:
    return Path(out.getvalue().split("(image saved to ")[1].split(")")[0])


async def test_the_enrolment_qr_code_is_private_and_goes_once_enrolment_is_confirmed(tmp_path: Path) -> None:
    image_dir = tmp_path / "data" / "images"
    scan = Rendered("Scan this, then send a code.", (RenderedButton("cancel", "Cancel"),), image=QR, secret_input=True)
    wrong = Rendered("That code isn't right.", (RenderedButton("cancel", "Cancel"),), secret_input=True)
    done = Rendered("You're set up.", (RenderedButton("menu", "Menu"),))
    menu = Rendered("What next?", (RenderedButton("menu", "Menu"),))
    seen: list[bool] = []  # whether the picture was on disk when each line was typed

    class Watching(Script):
        async def __call__(self, inbound: Inbound) -> list[Rendered]:
            if inbound.kind is not InboundKind.START:
                seen.append(saved_path(out).exists())
            return await super().__call__(inbound)

    channel, out = console_for(Watching([scan], [wrong], [done], [menu]), image_dir, "000000\n123456\n1\n")
    await channel.run()
    # Kept while a code is still asked for (a wrong one included), deleted as soon as it is not.
    assert seen == [True, True, False]
    assert not saved_path(out).exists()
    assert stat.S_IMODE(image_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700


async def test_a_qr_code_left_on_screen_is_deleted_when_the_console_stops(tmp_path: Path) -> None:
    scan = Rendered("Scan this, then send a code.", image=QR, secret_input=True)
    channel, out = console_for(Script([scan]), tmp_path / "images", "")
    await channel.run()  # the person leaves without confirming
    path = saved_path(out)
    assert not path.exists()
    assert list((tmp_path / "images").iterdir()) == []


def test_a_qr_code_is_written_for_its_owner_only(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        channel, out = console_for(Script(), tmp_path / "images", "")
        channel.show([Rendered("Scan this.", image=QR, secret_input=True)])
        path = saved_path(out)
        assert path.read_bytes() == QR.png
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        # A second picture replaces the first: only one enrolment code is ever on disk.
        channel.show([Rendered("Scan this one instead.", image=QR, secret_input=True)])
        assert not path.exists()
        assert len(list((tmp_path / "images").iterdir())) == 1
    finally:
        os.umask(previous)


async def test_a_qr_code_left_by_a_killed_console_is_deleted_at_the_next_start(tmp_path: Path) -> None:
    image_dir = tmp_path / "images"
    scan = Rendered("Scan this, then send a code.", image=QR, secret_input=True)
    killed, killed_out = console_for(Script(), image_dir, "")
    killed.show([scan])  # shown, and then the process died: nothing ran to delete it
    other = ConsoleChannel(
        Script(),
        "kimberly",
        locale="en",
        stdin=io.StringIO(),
        stdout=io.StringIO(),
        interactive=False,
        image_dir=image_dir,
    )
    other.show([scan])
    left, someone_elses = saved_path(killed_out), next(p for p in image_dir.iterdir() if p != saved_path(killed_out))
    channel, _ = console_for(Script([Rendered("Hi")]), image_dir, "")
    await channel.run()
    assert not left.exists()
    assert someone_elses.exists()  # another person's console may still be showing theirs
