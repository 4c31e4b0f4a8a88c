"""The ``unlockbot`` command line.

    unlockbot [--config FILE] db upgrade [--create]
    unlockbot serve                          run every configured channel
    unlockbot chat --as USER [--lang zh|en]
    unlockbot demo [--lang zh|en]            seed when needed, pick a demo user, chat (language: --lang, else
                                             LANG, else asked at a terminal)
    unlockbot demo seed [--reset]            --reset starts over where only the demo or console chats are
    unlockbot demo code USER
    unlockbot demo lock USER REASON          lock a demo user now (a reason code), to see the lock alert
    unlockbot demo clear                     empty a demo database before it serves real people
    unlockbot crm show USER [--json]
    unlockbot crm check [--json]            the configured backend, what it can do, whether it answers now
    unlockbot channels check [--json]       which chat channels are configured, and whether their credentials work
    unlockbot faq "QUESTION" [--lang zh|en] [--json]
    unlockbot faq --json --stdin             one question per line in, one JSON line per question out
    unlockbot report [--since 30d] [--png FILE] [--lang zh|en]   lock statistics; the chart as a PNG
    unlockbot admin invite USER | unlink USER [--channel C] | reset-totp USER
    unlockbot keys generate | rotate
    unlockbot audit verify [--anchor HASH] | export --since DATE   (read-only: a copy of the database will do)

Errors the operator can fix (bad settings, a non-demo database) print one
clear line on standard error and exit with status 2; never a traceback.
Failures (the CRM, the database, a bug) print one line and exit with status
1, as does a command that logged an error along the way (a chat turn the
database failed). ``-v`` adds our debug lines and tracebacks, ``-vv`` the
libraries' payloads (see ``bot.logs``); secrets are masked in every line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from bot import __version__, admin
from bot.app import App, open_app
from bot.clock import person_zone
from bot.config import Settings, load_settings, locale_from_flag
from bot.crm.base import Capability
from bot.crm.registry import crm_location
from bot.errors import AccountNotFound, BotError, ConfigError, CrmError, NotADemoDatabase
from bot.handlers.console import ConsoleChannel
from bot.identity.secrets import SecretBox
from bot.logs import LogSetup, describe, secrets_of
from bot.logs import configure as configure_logging
from bot.messages import Inbound, Rendered, Reply
from bot.reports.stats import BadPeriod, gather, parse_period
from bot.requests import audit
from bot.requests.anchor import AnchorFile, anchor_path, load_audit_key
from bot.storage.db import Database, upgrade
from bot.storage.meta import forget_demo

log = logging.getLogger("bot")
OPERATOR = "cli:operator"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unlockbot", description="The CRM unlock assistant.")
    parser.add_argument("--version", action="version", version=f"unlockbot {__version__}")
    parser.add_argument(
        "--config", type=Path, help="TOML settings file (default: $UNLOCKBOT_CONFIG or ./unlockbot.toml)"
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log progress to standard error; -vv adds the libraries' requests, payloads and SQL",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_upgrade = db_commands.add_parser("upgrade", help="apply every migration")
    db_upgrade.add_argument(
        "--create",
        action="store_true",
        help="start a new SQLite database, making its folder if needed (otherwise the folder must exist)",
    )

    commands.add_parser("serve", help="run every configured channel (Telegram, Slack) until stopped")

    chat = commands.add_parser("chat", help="chat with the assistant in this terminal")
    chat.add_argument("--as", dest="user", required=True, help="the console user to chat as")
    chat.add_argument("--lang", help="zh or en")

    demo = commands.add_parser("demo", help="the embedded demo")
    demo.add_argument("--lang", help="zh or en (default: the language of LANG, else asked at a terminal)")
    demo_commands = demo.add_subparsers(dest="demo_command")
    seed = demo_commands.add_parser("seed", help="create the demo users in the embedded CRM")
    seed.add_argument(
        "--reset", action="store_true", help="start the demo again from scratch (where only demo or console data is)"
    )
    code = demo_commands.add_parser("code", help="print a demo user's current TOTP code")
    code.add_argument("user")
    lock = demo_commands.add_parser("lock", help="lock a demo user now in the embedded CRM, as its rules would")
    lock.add_argument("user")
    lock.add_argument("reason", help="a reason code, e.g. failed_password (see knowledge/reasons.yaml)")
    demo_commands.add_parser("clear", help="delete the demo's data (links, TOTP secrets, admins) from the database")

    crm = commands.add_parser("crm", help="ask the configured CRM backend")
    crm_commands = crm.add_subparsers(dest="crm_command", required=True)
    show = crm_commands.add_parser("show", help="what the CRM says of a user")
    show.add_argument("user")
    show.add_argument("--json", action="store_true", help="print JSON")
    check = crm_commands.add_parser("check", help="the configured backend, what it can do, whether it answers now")
    check.add_argument("--json", action="store_true", help="print JSON")

    channels = commands.add_parser("channels", help="the chat channels")
    channels_commands = channels.add_subparsers(dest="channels_command", required=True)
    channels_check = channels_commands.add_parser(
        "check", help="which channels are configured, and whether their credentials work now"
    )
    channels_check.add_argument("--json", action="store_true", help="print the result as JSON")
    admin_parser = commands.add_parser("admin", help="admin actions on people")
    admin_commands = admin_parser.add_subparsers(dest="admin_command", required=True)
    invite = admin_commands.add_parser("invite", help="print a one-time link code for a CRM user")
    invite.add_argument("user")
    unlink = admin_commands.add_parser("unlink", help="remove the chat accounts linked to a CRM user")
    unlink.add_argument("user")
    unlink.add_argument("--channel", help="only this channel (console, telegram, slack)")
    reset = admin_commands.add_parser("reset-totp", help="forget a user's authenticator; they enrol again")
    reset.add_argument("user")

    keys = commands.add_parser("keys", help="the key that encrypts TOTP secrets")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    keys_commands.add_parser("generate", help="print a new key for [security] secret_key")
    keys_commands.add_parser("rotate", help="re-encrypt every secret under the current key")

    audit_parser = commands.add_parser("audit", help="the audit trail")
    audit_commands = audit_parser.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser("verify", help="check that no audit event was edited or deleted")
    verify.add_argument(
        "--anchor",
        metavar="HASH",
        action="append",
        default=[],
        help="the hash of an event the trail must still hold (from the admins' daily notice); may be repeated",
    )
    export = audit_commands.add_parser("export", help="write audit events as JSON lines")
    export.add_argument("--since", required=True, help="a date or time, e.g. 2026-11-01")

    faq = commands.add_parser("faq", help="ask the FAQ a question (no database needed)")
    faq.add_argument("question", nargs="?", help="the question, in Chinese or English")
    faq.add_argument("--lang", help="zh or en (default: from the question's script)")
    faq.add_argument("--json", action="store_true", help="print the ranking as JSON")
    faq.add_argument("--stdin", action="store_true", help="read one question per line from standard input")

    report = commands.add_parser("report", help="lock statistics of a period, and the chart as a PNG")
    report.add_argument("--since", type=_period, default="30d", help="how far back: 30d, 7d, 12h, 2w (default 30d)")
    report.add_argument("--png", metavar="FILE", type=Path, help="write the chart (the one `stats` shows) to FILE")
    report.add_argument("--lang", help="zh or en (default: [bot] default_locale)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logs = configure_logging(args.verbose)
    try:
        status = _run(args, logs)
    finally:
        logs.close()
    return status


def _run(args: argparse.Namespace, logs: LogSetup) -> int:
    hint = "" if args.verbose else " (run with -v for details)"

    def fail(message: str, status: int) -> int:
        if logs.json:  # whatever reads standard error expects JSON lines: this is one more
            log.error("%s", message)
        else:
            print(f"unlockbot: {logs.redactor.redact(message, ours=False)}", file=sys.stderr)
        return status

    try:
        settings = load_settings(args.config)
        logs.add_secrets(secrets_of(settings))
        logs.use(settings.log, serving=args.command == "serve")
        status = asyncio.run(_dispatch(args, settings))
    except (ConfigError, NotADemoDatabase) as exc:
        return fail(str(exc), 2)
    except AccountNotFound as exc:
        return fail(str(exc), 1)
    except CrmError as exc:
        return fail(f"the CRM backend failed: {exc}", 1)
    except BotError as exc:
        return fail(str(exc), 1)
    except SQLAlchemyError as exc:
        log.debug("database error", exc_info=True)
        problem = describe(getattr(exc, "orig", None) or exc).partition(": ")[2] or type(exc).__name__
        return fail(f"the database failed: {problem}{hint}", 1)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug: one line for the person, details in the log
        log.debug("unexpected error", exc_info=True)
        return fail(f"unexpected error: {describe(exc)}{hint}", 1)
    if status == 0 and logs.errors and args.command != "serve":
        # Something failed along the way and was logged (a chat turn the database refused): not a success.
        # A server logs what it survives and still stops cleanly.
        return 1
    return status


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "faq":
        return _faq(args, settings)
    if args.command == "db":
        await asyncio.to_thread(upgrade, settings.database_url, create=args.create)
        print("database is up to date")
        return 0
    if args.command == "audit":
        return await _audit(settings, args)
    if args.command == "demo":
        return await _demo(args, settings)
    if args.command == "keys" and args.keys_command == "generate":
        print(SecretBox.generate_key().decode())
        return 0
    async with open_app(settings) as app:
        if args.command == "chat":
            await _chat(app, args.user, args.lang)
            return 0
        if args.command == "serve":
            from bot.serve import serve  # the HTTP server and channels load only here

            await serve(app)
            return 0
        if args.command == "crm" and args.crm_command == "check":
            return await _crm_check(app, as_json=args.json)
        if args.command == "channels":
            return await _channels_check(app, as_json=args.json)
        if args.command == "crm":
            return await _crm_show(app, args.user, as_json=args.json)
        if args.command == "admin":
            return await _admin(app, args)
        if args.command == "report":
            return await _report(app, args)
        if args.command == "keys":
            count = await admin.rotate_keys(app, by=OPERATOR)
            print(f"re-encrypted {count} secret(s) under the current key; previous_keys can now be removed")
            return 0
    raise AssertionError(f"unhandled command {args.command}")


async def _admin(app: App, args: argparse.Namespace) -> int:
    if args.admin_command == "invite":
        invitation = await admin.invite(app, args.user, by=OPERATOR)
        print(f"link code for {invitation.issued.username}: {invitation.issued.code}")
        print(f"valid until {invitation.issued.expires_at.isoformat()}; single use")
        if invitation.telegram_link:
            print(f"Telegram: {invitation.telegram_link}")
        return 0
    if args.admin_command == "unlink":
        count = await admin.unlink_user(app, args.user, by=OPERATOR, channel=args.channel)
        print(f"unlinked {count} chat account(s) from {args.user}")
        return 0
    removed = await admin.reset_totp(app, args.user, by=OPERATOR)
    print(f"reset the authenticator of {args.user}" if removed else f"{args.user} has no authenticator set up")
    return 0


async def _audit(settings: Settings, args: argparse.Namespace) -> int:
    # Read-only and without open_app: nothing is migrated, created or written, so a copy of the database
    # (a backup, a file on a read-only mount) can be checked, and checking never disturbs the evidence.
    database = Database(settings.database_url, read_only=True)
    try:
        async with database.session() as session:
            if args.audit_command == "verify":
                return await _audit_verify(session, settings, args.anchor)
            try:
                since = datetime.fromisoformat(args.since)
            except ValueError:
                raise ConfigError(f"--since: expected a date such as 2026-11-01, got {args.since!r}") from None
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
            async for row in audit.export_since(session, since):
                print(json.dumps(row, ensure_ascii=False))
        return 0
    finally:
        await database.dispose()


_SHOWN_PROBLEMS = 20


async def _audit_verify(session: AsyncSession, settings: Settings, given: Sequence[str]) -> int:
    anchors = [_operator_anchor(value) for value in given]
    kept = AnchorFile(anchor_path(settings))
    stored = kept.read()
    if stored is not None:
        anchors.append(stored)
    report = await audit.verify_chain(session, load_audit_key(settings), anchors=anchors)
    for problem in report.problems[:_SHOWN_PROBLEMS]:
        print(f"audit event {problem.event_id}: {problem.problem}" if problem.event_id is not None else problem.problem)
    if len(report.problems) > _SHOWN_PROBLEMS:
        print(f"... and {len(report.problems) - _SHOWN_PROBLEMS} more problem(s)")
    head = f"the newest is event {report.head.id}" if report.head else "there are none"
    if report.intact:
        print(f"audit trail intact: {report.events} event(s), {head}")
    else:
        print(f"audit trail NOT intact: {len(report.problems)} problem(s) in {report.events} event(s), {head}")
    if report.head is not None:
        print(f"head hash: {report.head.hash}")
    if report.pending:
        print(f"{report.pending} event(s) not linked into the chain yet; each was checked against its signature")
    if report.unsigned:
        print(
            f"{report.unsigned} event(s) from before the audit key were checked without it; "
            "the first signed event vouches for them"
        )
    if stored is not None:
        print(f"checked against the anchor in {kept.path} (event {stored.id})")
    elif not given:
        print(
            f"no anchor in {kept.path}: deleted newest events cannot be told from a shorter trail "
            "(give --anchor HASH from the admins' daily notice)"
        )
    return 0 if report.intact else 1


def _operator_anchor(value: str) -> audit.Anchor:
    digest = value.strip().lower()
    if len(digest) != 64 or any(ch not in "0123456789abcdef" for ch in digest):
        raise ConfigError(f"--anchor: expected the 64-character hash of an audit event, got {value!r}")
    return audit.Anchor(None, digest, "--anchor")


async def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from bot import demo  # the demo is not part of a production start

    if args.demo_command == "clear":
        await _clear_demo(settings)
        print("cleared the demo: its links, TOTP secrets, admins and requests are gone from the database")
        return 0
    if args.demo_command in (None, "seed"):
        demo.ensure_key(settings)
    if args.demo_command == "seed" and args.reset:
        await demo.start_over(settings)  # before open_app, which a lost audit key would stop
    async with open_app(settings) as app:
        if args.demo_command == "seed":
            created = await demo.seed(app, reset=args.reset)
            print("demo seeded" if created else "demo already seeded (use --reset to start again)")
            return 0
        if args.demo_command == "code":
            print(await demo.current_code(app, args.user))
            return 0
        if args.demo_command == "lock":
            reason = await demo.lock_now(app, args.user, args.reason)
            print(f"locked {args.user} ({reason.value}); linked chats hear of it within [alerts] poll_seconds")
            return 0
        await demo.seed(app, reset=False)
        locale = _demo_locale(args.lang, os.environ, interactive=sys.stdin.isatty())
        user = _pick_demo_user(demo.USERS)
        if user is None:
            return 0
        await _chat(app, user, locale)
        return 0


async def _clear_demo(settings: Settings) -> None:
    # Not through open_app: that refuses a demo database with a real CRM, and this is how it is made acceptable.
    database = Database(settings.database_url)
    try:
        await database.upgrade()
        async with database.session() as session, session.begin():
            await forget_demo(session)
    finally:
        await database.dispose()
    AnchorFile(anchor_path(settings)).forget()  # the audit trail starts over, on purpose


def locale_from_environment(environ: Mapping[str, str]) -> str | None:
    """The language the shell speaks (``LC_ALL``, then ``LC_MESSAGES``, then ``LANG``), if it is one of ours."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name, "").strip().lower()
        if value:
            # zh_CN.UTF-8, zh_TW, en_US.UTF-8, en: the language before the territory decides.
            language = value.replace("-", "_").partition("_")[0].partition(".")[0]
            return {"zh": "zh-CN", "en": "en"}.get(language)
    return None


def _demo_locale(flag: str | None, environ: Mapping[str, str], *, interactive: bool) -> str | None:
    """``--lang``, else the shell's language, else asked at a terminal; ``None`` leaves it to the bot's default."""
    if flag is not None:
        return locale_from_flag(flag)
    spoken = locale_from_environment(environ)
    if spoken is not None or not interactive:
        return spoken
    print("Language / 语言:  [1] 中文  [2] English")
    while True:
        sys.stdout.write("> ")
        sys.stdout.flush()
        line = sys.stdin.readline()
        if not line:
            return None
        choice = line.strip().lower()
        if choice in ("1", "zh", "中文"):
            return "zh-CN"
        if choice in ("2", "en", "english"):
            return "en"
        print("1 = 中文, 2 = English")


def _pick_demo_user(users: Sequence[Any]) -> str | None:
    print("Demo users (each locked for one reason):")
    for number, user in enumerate(users, start=1):
        reason = user.reason.value if user.reason else ("admin" if user.admin else "not locked")
        print(f"  [{number:>2}] {user.username:<6} {reason}")
    while True:
        sys.stdout.write("Chat as (number or name)> ")
        sys.stdout.flush()
        line = sys.stdin.readline()
        if not line:
            return None
        choice = line.strip().lower()
        for number, user in enumerate(users, start=1):
            if choice in (str(number), user.username):
                print(f"\nChatting as {user.username}. Type /quit to leave.\n")
                return str(user.username)
        print("Please type one of the numbers or names above.")


async def _chat(app: App, user: str, lang: str | None) -> None:
    # Approved work left over from a process that stopped is carried out first.
    await app.housekeeper.round()

    async def handle(inbound: Inbound) -> list[Rendered]:
        replies = await app.engine.handle(inbound)
        await app.housekeeper.round()  # an approval made in this turn is carried out at once
        return replies

    console = ConsoleChannel(
        handle,
        user,
        locale=locale_from_flag(lang),
        stdin=sys.stdin,
        stdout=sys.stdout,
        interactive=sys.stdin.isatty(),
        image_dir=app.settings.image_dir,
    )
    await console.run()


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


async def _crm_show(app: App, username: str, *, as_json: bool) -> int:
    account = await app.crm.find_account(username)
    if account is None:
        raise AccountNotFound(username)
    status = await app.crm.lock_status(account.username)
    facts = {
        "username": account.username,
        "email": account.email,
        "display_name": account.display_name,
        "locked": status.locked,
        "reason": status.reason.value if status.reason else None,
        "locked_at": status.locked_at,
        "evidence": asdict(status.evidence) if status.locked else None,
    }
    if as_json:
        print(json.dumps(_jsonable(facts), ensure_ascii=False, indent=2))
        return 0
    print(f"{account.username} <{account.email}> ({account.display_name})")
    if status.locked:
        print(
            f"locked: yes, reason {facts['reason']}, since {status.locked_at.isoformat() if status.locked_at else '?'}"
        )
    else:
        print("locked: no")
    return 0


# What the operator loses when the CRM lacks a capability, said plainly by `crm check`.
_WITHOUT = {
    Capability.LICENCE_LIST: "cannot list its licences: nobody is reminded before a licence or trial ends",
    Capability.SEAT_USAGE: "cannot tell who holds the seats: seat-limit cards show seats used / total only",
}


def _lock_alerts(app: App) -> str:
    """Whether people hear of a new lock before they ask, in one plain line."""
    if Capability.LOCK_EVENTS not in app.crm.capabilities:
        return (
            f"no: the {app.crm.name} backend cannot tell about new locks, so nobody is messaged when locked; "
            "people find out when they try to sign in"
        )
    if not app.settings.alerts.enabled:
        return "off: [alerts] enabled = false"
    return f"yes: new locks are read every {app.settings.alerts.poll_seconds:g} s and told to the linked person"


async def _crm_check(app: App, *, as_json: bool) -> int:
    """Exit 0 when the CRM answers now, 1 when it does not."""
    can = [c.value for c in Capability if c in app.crm.capabilities]
    cannot = [c.value for c in Capability if c not in app.crm.capabilities]
    notes = [f"this CRM {text}" for capability, text in _WITHOUT.items() if capability not in app.crm.capabilities]
    reach = await app.crm.probe() if Capability.PROBE in app.crm.capabilities else None
    answers = reach is not None and reach.reachable
    if as_json:
        facts = {
            "backend": app.crm.name,
            "location": crm_location(app.settings),
            "capabilities": can,
            "lacks": cannot,
            "notes": notes,
            "answers": answers,
            "latency_ms": round(reach.latency_ms, 1) if reach and reach.latency_ms is not None else None,
            "detail": reach.detail if reach else "this backend offers no probe",
            "lock_alerts": _lock_alerts(app),
        }
        print(json.dumps(facts, ensure_ascii=False, indent=2))
        return 0 if answers else 1
    print(f"backend: {app.crm.name} at {crm_location(app.settings)}")
    print(f"can:     {', '.join(can) or '-'}")
    print(f"cannot:  {', '.join(cannot) or '-'}")
    print(f"alerts:  {_lock_alerts(app)}")
    for note in notes:
        print(f"note:    {note}")
    if reach is None:
        print("answers: unknown (this backend offers no probe)")
    elif reach.reachable:
        latency = f" in {reach.latency_ms:.0f} ms" if reach.latency_ms is not None else ""
        print(f"answers: yes{latency}")
    else:
        print(f"answers: no ({reach.detail or 'no detail'})")
    return 0 if answers else 1


async def _channels_check(app: App, *, as_json: bool) -> int:
    """Exit 0 when every configured channel's credentials work (and at least one is configured), else 1."""
    from bot.handlers.base import CHANNELS, channel_class  # the channels' SDKs load only here

    found: dict[str, str] = {}
    for name in CHANNELS:
        if not getattr(app.settings, name).configured:
            found[name] = "not configured"
            continue
        try:
            problem = await channel_class(name).for_app(app).check()
        except Exception as exc:  # a channel that cannot even be built says why, like one that fails its check
            problem = describe(exc)
        found[name] = "ok" if problem is None else f"fails: {problem}"
    configured = [name for name, state in found.items() if state != "not configured"]
    healthy = bool(configured) and all(found[name] == "ok" for name in configured)
    if as_json:
        print(json.dumps(found, ensure_ascii=False, indent=2))
    else:
        for name, state in found.items():
            print(f"{name + ':':10} {state}")
        if not configured:
            print("no channel is configured: fill in one of the sections above (see docs/)")
    return 0 if healthy else 1


_NOT_SURE = {
    "zh-CN": "我不太确定你问的是哪一项。最接近的话题：{titles}",
    "en": "I'm not sure which question you mean. Closest topics: {titles}",
}
_OFF_TOPIC = {
    "zh-CN": "这个我帮不上忙：我只负责 CRM 登录和账号锁定方面的问题。",
    "en": "I can't help with that: I only deal with signing in to the CRM and locked CRM accounts.",
}


def _period(text: str) -> timedelta:
    try:
        return parse_period(text)
    except BadPeriod as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


async def _report(app: App, args: argparse.Namespace) -> int:
    """The numbers of ``stats`` for ``--since``, printed; with ``--png``, the chart written to the file too."""
    locale = locale_from_flag(args.lang) or app.settings.bot.default_locale
    zone = person_zone(None, app.settings.bot.timezone, locale)
    async with app.database.session() as session:
        numbers = await gather(session, now=app.clock.now(), period=args.since, zone=zone)
    print(app.renderer.render(Reply("admin/stats", numbers.summary()), locale).text)
    if args.png is not None:
        from bot.reports.chart import render_chart  # matplotlib loads only for a picture

        chart = await asyncio.to_thread(render_chart, numbers, app.renderer.label, locale)
        try:
            args.png.write_bytes(chart.png)
        except OSError as exc:
            raise BotError(f"cannot write the chart to {args.png}: {exc.strerror or exc}") from exc
        print(f"chart written to {args.png}")
    return 0


def _faq(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import knowledge_dir
    from bot.knowledge.retrieval import FaqIndex  # loads jieba: only for this command

    if args.stdin == (args.question is not None):
        print("unlockbot: faq: give either a QUESTION or --stdin", file=sys.stderr)
        return 2
    locale = locale_from_flag(args.lang)
    index = FaqIndex.load(knowledge_dir(settings))
    questions = (line.rstrip("\r\n") for line in sys.stdin) if args.stdin else iter([args.question])
    for question in questions:
        result = index.search(question, locale)
        if args.json:
            print(json.dumps(result.to_json(), ensure_ascii=False), flush=True)
        elif result.answer_id is not None:
            print(index.topics[result.answer_id].answer[result.locale].rstrip(), flush=True)
        elif result.off_topic:
            print(_OFF_TOPIC[result.locale], flush=True)
        else:
            titles = "; ".join(match.title for match in result.matches) or "-"
            print(_NOT_SURE[result.locale].format(titles=titles), flush=True)
    return 0
