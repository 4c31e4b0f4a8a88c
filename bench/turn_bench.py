"""How long one chat turn takes through the whole engine, and how much memory the process holds.

Runs on a fresh demo database in a temporary directory (SQLite by default, or
the database given by UNLOCKBOT_BENCH_DATABASE_URL) and prints p50/p99 per
kind of turn and the peak resident memory. A benchmark, not a test: it reports
numbers and asserts nothing.

    .venv/bin/python bench/turn_bench.py [--turns 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

from cryptography.fernet import Fernet

from bot import demo
from bot.app import open_app
from bot.config import Settings
from bot.messages import Inbound, InboundKind


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run(turns: int) -> None:
    with tempfile.TemporaryDirectory() as home:
        url = os.environ.get("UNLOCKBOT_BENCH_DATABASE_URL", f"sqlite:///{Path(home) / 'bot.db'}")
        settings = Settings.model_validate(
            {
                "bot": {"data_dir": home},
                "database": {"url": url},
                "crm": {"sql": {"url": f"sqlite:///{Path(home) / 'crm.db'}"}},
                "security": {"secret_key": Fernet.generate_key().decode()},
            }
        )
        started = time.perf_counter()
        async with open_app(settings) as app:
            print(f"start-up (migrate, load knowledge, build the FAQ index): {time.perf_counter() - started:.2f} s")
            await demo.seed(app, reset=True)
            kinds = {
                "menu button": Inbound("console", "carol", InboundKind.BUTTON, button="menu"),
                "why am I locked": Inbound("console", "carol", InboundKind.BUTTON, button="why"),
                "typed FAQ question": Inbound("console", "carol", InboundKind.TEXT, text="will I lose my data?"),
                "typed Chinese question": Inbound("console", "carol", InboundKind.TEXT, text="是不是网络的问题"),
            }
            await app.engine.handle(Inbound("console", "carol", InboundKind.START))
            for name, inbound in kinds.items():
                samples = []
                for _ in range(turns):
                    # Buttons must be on offer: the menu offers them all.
                    await app.engine.handle(Inbound("console", "carol", InboundKind.BUTTON, button="menu"))
                    began = time.perf_counter()
                    await app.engine.handle(inbound)
                    samples.append((time.perf_counter() - began) * 1000)
                print(
                    f"{name:<24} p50 {statistics.median(samples):6.2f} ms   p99 {percentile(samples, 0.99):6.2f} ms"
                    f"   ({turns} turns)"
                )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=300)
    asyncio.run(run(parser.parse_args().turns))


if __name__ == "__main__":
    main()
