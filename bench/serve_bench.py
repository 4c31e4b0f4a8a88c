"""Throughput of the real ``unlockbot serve`` against local fakes of Slack and Telegram, beside bare apps.

In one run, on 127.0.0.1:

1. ``FakeSlack`` and ``FakeBotApi`` start; a bot database (SQLite, or a schema of its own on the PostgreSQL
   server given by ``--database-url``, dropped at the end) gets N distinct CRM users per measurement, each
   locked and linked to a Slack or Telegram account of their own (``_serve_setup.prepare``).
2. ``unlockbot serve`` runs as a subprocess (Slack over HTTP, Telegram webhooks); each person writes one
   message, signed as Slack signs it or with Telegram's secret token header, at most ``--concurrency``
   people waiting for an answer at a time. A person is answered when the fake receives the bot's first
   message to them: people answered per second, p50/p99 latency, and the server CPU time per person.
3. A bare slack-bolt echo app and a bare python-telegram-bot echo app (``_bare_apps.py``) take the same
   load through the same fakes; the full bot / bare ratio is printed for each platform.
4. With ``--database-url``: two ``serve`` replicas on that one database, people spread over both; the
   ratio to one replica, and the cores this machine has.
5. A burst of ``--burst`` Telegram sends (replies and notices, to ``--burst-chats`` chats, in order within
   each) through ``PacedRateLimiter`` on PTB's ``ExtBot`` to a fake that answers 429 past 30 sends in any
   one second: messages per second, the share of 30/s, and how many 429s.

Every figure comes with the 1-minute load average when it was taken: other processes on the machine
skew them. A benchmark, not a test: it reports numbers and asserts nothing. The first people of each
measurement (``WARM_UP``) are answered before the clock starts and are not counted.

    .venv/bin/python bench/serve_bench.py [-n 200] [--concurrency 20] [--burst 1000]
    .venv/bin/python bench/serve_bench.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from _bare_apps import TELEGRAM_PATH, TELEGRAM_SECRET
from _serve_setup import (
    SLACK_PATH,
    Person,
    Processes,
    bare_command,
    crowd,
    new_keys,
    postgres_schema,
    prepare,
    serve_command,
    settings_for,
    write_toml,
)
from slack_sdk.signature import SignatureVerifier
from telegram.ext import ExtBot
from telegram.request import HTTPXRequest

from bot.channel_settings import TelegramSettings
from bot.handlers.telegram import RATE_LIMIT_RETRIES
from bot.handlers.telegram_pacing import PacedRateLimiter, notices
from tests.fakes.slack_api import SIGNING_SECRET, FakeSlack, dm_of, message_event
from tests.fakes.slack_api import Call as SlackCall
from tests.fakes.telegram_api import SENDS, FakeBotApi, FakeUser
from tests.fakes.telegram_api import Call as TelegramCall

QUESTION = "why am I locked?"
WARM_UP = 5
FLOOD_LIMIT = 30


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def load() -> float:
    return os.getloadavg()[0]


@dataclass
class Result:
    what: str
    people: int
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    cpu: float | None = None  # server CPU seconds over the measurement
    errors: int = 0
    load: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    @property
    def per_cpu_second(self) -> float:
        """People answered per second of the server's CPU: what the process costs, whatever paces or shares it."""
        return len(self.latencies) / self.cpu if self.cpu else 0.0

    def row(self) -> str:
        ordered = sorted(self.latencies) or [float("nan")]
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        cpu = f"{self.cpu * 1000 / max(1, len(self.latencies)):8.1f}" if self.cpu is not None else "       -"
        return (
            f"{self.what:<34} {len(self.latencies):>4}/{self.people:<4} {self.rate:8.1f} "
            f"{statistics.median(ordered) * 1000:8.0f} {p99 * 1000:8.0f} {cpu} {self.errors:>6} {self.load:7.2f}"
        )


HEADER = (
    f"{'what':<34} {'answered':>9} {'people/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/p':>8} {'errors':>6} "
    f"{'load 1m':>7}"
)


class Answers:
    """The moment the fake first received something for each awaited key (a Slack DM, a Telegram chat)."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[float]] = {}

    def expect(self, key: str) -> asyncio.Future[float]:
        future = self._waiting[key] = asyncio.get_running_loop().create_future()
        return future

    def saw(self, key: str) -> None:
        future = self._waiting.pop(key, None)
        if future is not None and not future.done():
            future.set_result(time.perf_counter())


Send = Callable[[int, Person], Awaitable[bool]]


async def drive(
    people: list[Person], key: Callable[[Person], str], send: Send, answers: Answers, concurrency: int, patience: float
) -> tuple[list[float], float]:
    """Each person writes once, ``concurrency`` of them waiting at a time; their latencies and the seconds taken."""
    queue = iter(enumerate(people))
    latencies: list[float] = []

    async def person_after_person() -> None:
        for number, person in queue:
            answer = answers.expect(key(person))
            sent = time.perf_counter()
            if not await send(number, person):
                continue
            with contextlib.suppress(TimeoutError):
                latencies.append(await asyncio.wait_for(answer, patience) - sent)

    started = time.perf_counter()
    await asyncio.gather(*(person_after_person() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


class Platforms:
    """The two fakes, and how a person writes to an app through each of them."""

    def __init__(self, slack: FakeSlack, telegram: FakeBotApi, client: aiohttp.ClientSession) -> None:
        self.slack, self.telegram, self.client = slack, telegram, client
        self.answers = Answers()
        self._signer = SignatureVerifier(SIGNING_SECRET)
        slack.on_call = self._slack_call
        telegram.on_call = self._telegram_call

    def _slack_call(self, call: SlackCall) -> None:
        if call.method == "chat.postMessage":
            self.answers.saw(call.args["channel"])

    def _telegram_call(self, call: TelegramCall) -> None:
        if call.method in SENDS and call.status == 200:
            self.answers.saw(str(call.params["chat_id"]))

    async def _post(self, url: str, raw: bytes, headers: dict[str, str]) -> bool:
        async with self.client.post(url, data=raw, headers=headers) as response:
            await response.read()
            return response.status == 200

    def sender(self, platform: str, urls: list[str]) -> Send:
        async def slack(number: int, person: Person) -> bool:
            raw = json.dumps(message_event(person.user_id, QUESTION))
            stamp = str(int(time.time()))
            signature = self._signer.generate_signature(timestamp=stamp, body=raw) or ""
            headers = {
                "Content-Type": "application/json",
                "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": signature,
            }
            return await self._post(urls[number % len(urls)] + SLACK_PATH, raw.encode(), headers)

        async def telegram(number: int, person: Person) -> bool:
            update = self.telegram.message_update(FakeUser(int(person.user_id), "Bench", "en"), QUESTION)
            headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
            return await self._post(urls[number % len(urls)] + TELEGRAM_PATH, json.dumps(update).encode(), headers)

        return slack if platform == "slack" else telegram

    @staticmethod
    def key(person: Person) -> str:
        return dm_of(person.user_id) if person.channel == "slack" else person.user_id

    async def measure(
        self, what: str, platform: str, people: list[Person], servers: Processes, args: argparse.Namespace
    ) -> Result:
        send = self.sender(platform, servers.urls)
        await drive(people[:WARM_UP], self.key, send, self.answers, WARM_UP, args.timeout)
        measured = people[WARM_UP:]
        errors, cpu = servers.errors(), servers.cpu_seconds()
        latencies, seconds = await drive(measured, self.key, send, self.answers, args.concurrency, args.timeout)
        after = servers.cpu_seconds()
        used = after - cpu if after is not None and cpu is not None else None
        result = Result(what, len(measured), latencies, seconds, used, servers.errors() - errors, load())
        print(result.row(), flush=True)
        return result


async def throughput(args: argparse.Namespace, home: Path, database_url: str | None) -> list[Result]:
    replica_counts = (1, 2) if database_url else (1,)
    size = args.people + WARM_UP
    crowds = {
        (platform, replicas): crowd(platform, 2 * replicas + (platform == "telegram"), size)
        for replicas in replica_counts
        for platform in ("slack", "telegram")
    }
    bare = {platform: crowd(platform, 9, size) for platform in ("slack", "telegram")}
    url = database_url or f"sqlite:///{home / 'bot.db'}"
    crm_url = database_url or f"sqlite:///{home / 'crm.db'}"
    keys = new_keys()
    slack = FakeSlack()
    await slack.start()
    results: list[Result] = []
    try:
        async with FakeBotApi() as telegram, aiohttp.ClientSession() as client:
            platforms = Platforms(slack, telegram, client)
            everyone = [person for people in crowds.values() for person in people]
            for person in everyone + bare["slack"]:
                if person.channel == "slack":
                    slack.add_person(person.user_id, person.username, email=f"{person.username}@example.com")

            def settings(name: str, port: int = 8080, replicas: int = 1) -> dict[str, Any]:
                api = (slack.api_url, telegram.base_url)
                return settings_for(home / name, url, crm_url, port, *api, keys, replicas=replicas)

            started = time.perf_counter()
            await prepare(settings("prepare"), everyone)
            print(f"prepared {len(everyone)} linked people in {time.perf_counter() - started:.1f} s\n")
            print(HEADER)
            for replicas in replica_counts:
                ports = [free_port() for _ in range(replicas)]
                configs = [
                    write_toml(home / f"r{n}.toml", settings(f"replica{n}", p, replicas)) for n, p in enumerate(ports)
                ]
                commands = [serve_command(config) for config in configs]
                async with Processes(commands, ports, home / f"serve{replicas}", ready_path="/readyz") as servers:
                    for platform in ("slack", "telegram"):
                        what = f"full bot, {platform}, {replicas} replica{'s' if replicas > 1 else ''}"
                        results.append(
                            await platforms.measure(what, platform, crowds[(platform, replicas)], servers, args)
                        )
                if replicas == 1:
                    for platform, api in (("slack", slack.api_url), ("telegram", telegram.base_url)):
                        port = free_port()
                        command = bare_command(platform, port, api)
                        async with Processes(
                            [command], [port], home / f"bare-{platform}", ready_path="/healthz"
                        ) as app:
                            what = f"bare {'Bolt' if platform == 'slack' else 'PTB'} echo, {platform}"
                            results.append(await platforms.measure(what, platform, bare[platform], app, args))
    finally:
        await slack.stop()
    return results


async def burst(count: int, chats: int, rate: float) -> str:
    """``count`` sends to ``chats`` chats, half of them notices, through the limiter the Telegram channel uses."""
    async with FakeBotApi(flood_limit=FLOOD_LIMIT) as api:
        users = [FakeUser(900_001 + number, "Burst", "en") for number in range(chats)]
        for user in users:
            api.message_update(user, "/start")  # each opened a private chat with the bot
        refused: list[TelegramCall] = []

        def count_refusals(call: TelegramCall) -> None:
            if call.method in SENDS and call.status == 429:
                refused.append(call)

        api.on_call = count_refusals
        limiter = PacedRateLimiter(rate, max_retries=RATE_LIMIT_RETRIES)
        request = HTTPXRequest(connection_pool_size=16)
        finished: dict[str, float] = {}
        async with ExtBot(
            api.token, base_url=api.base_url, base_file_url=api.base_file_url, rate_limiter=limiter, request=request
        ) as bot:

            async def one_chat(number: int, user: FakeUser) -> None:
                kind = "notices" if number % 2 else "replies"
                with notices() if kind == "notices" else contextlib.nullcontext():
                    for sent in range(number, count, chats):
                        await bot.send_message(user.id, f"message {sent}")
                finished[kind] = max(finished.get(kind, 0.0), time.perf_counter() - started)

            started = time.perf_counter()
            await asyncio.gather(*(one_chat(number, user) for number, user in enumerate(users)))
            seconds = time.perf_counter() - started
        in_order = sum(
            [message.text for message in api.chat(user.id)]
            == [f"message {sent}" for sent in range(number, count, chats)]
            for number, user in enumerate(users)
        )
    per_second = count / seconds
    return (
        f"Telegram burst: {count} sends to {chats} chats (half replies, half notices), PacedRateLimiter at "
        f"{rate:g}/s, fake answering 429 past {FLOOD_LIMIT} sends in any one second:\n"
        f"  {per_second:.1f} messages/s = {per_second / FLOOD_LIMIT:.1%} of {FLOOD_LIMIT}/s, "
        f"{len(refused)} responses 429, order kept in {in_order}/{chats} chats; replies all sent after "
        f"{finished.get('replies', 0):.1f} s, notices after {finished.get('notices', 0):.1f} s   (load 1m {load():.2f})"
    )


def ratio(results: list[Result], top: str, bottom: str, *, per_cpu: bool = False) -> str:
    high, low = (next(r for r in results if r.what == what) for what in (top, bottom))
    if per_cpu:
        return f"{high.per_cpu_second / low.per_cpu_second:.2f}" if low.per_cpu_second else "-"
    return f"{high.rate / low.rate:.2f}" if low.rate else "-"


async def run(args: argparse.Namespace) -> None:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    kind = "PostgreSQL (a schema of its own)" if args.database_url else "SQLite"
    print(f"serve benchmark: {args.people} people per measurement, concurrency {args.concurrency}, {kind}")
    print(
        f"cores: os.cpu_count() = {os.cpu_count()}, sched_getaffinity = {affinity}; load average at start "
        f"{' '.join(f'{value:.2f}' for value in os.getloadavg())}"
    )
    kept = tempfile.mkdtemp(prefix="serve_bench_") if args.keep else None
    with contextlib.nullcontext(kept) if kept else tempfile.TemporaryDirectory(prefix="serve_bench_") as folder:
        if args.database_url:
            with postgres_schema(args.database_url) as url:
                results = await throughput(args, Path(folder), url)
        else:
            results = await throughput(args, Path(folder), None)
    if kept:
        print(f"settings and the servers' logs are kept in {kept}")
    pace = TelegramSettings().messages_per_second
    print("\nfull bot / bare app (the same fake, people and concurrency): people/s, and people per CPU-second")
    slack = ("full bot, slack, 1 replica", "bare Bolt echo, slack")
    telegram = ("full bot, telegram, 1 replica", "bare PTB echo, telegram")
    print(f"  Slack:    {ratio(results, *slack)}  per CPU-second {ratio(results, *slack, per_cpu=True)}")
    print(
        f"  Telegram: {ratio(results, *telegram)}  per CPU-second {ratio(results, *telegram, per_cpu=True)}"
        f"   (the bot paces its sends at {pace:g}/s; the bare app has no limiter)"
    )
    if args.database_url:
        print("two replicas / one replica on one PostgreSQL:")
        for platform in ("slack", "telegram"):
            both = ratio(results, f"full bot, {platform}, 2 replicas", f"full bot, {platform}, 1 replica")
            print(f"  {platform.title():<9} {both}")
    if args.burst:
        print()
        print(await burst(args.burst, args.burst_chats, args.burst_rate))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--people", type=int, default=200, help="people per measurement (default 200)")
    parser.add_argument("--concurrency", type=int, default=20, help="people waiting for an answer at once")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds after which a person counts unanswered")
    parser.add_argument("--database-url", help="PostgreSQL to run on (and measure two replicas); default SQLite")
    parser.add_argument("--keep", action="store_true", help="keep the settings files and the servers' logs")
    parser.add_argument("--burst", type=int, default=1000, help="Telegram sends in the burst (0: no burst)")
    parser.add_argument("--burst-chats", type=int, default=100)
    parser.add_argument(
        "--burst-rate",
        type=float,
        default=TelegramSettings().messages_per_second,
        help="messages_per_second to pace the burst at (default: [telegram] messages_per_second's default)",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
