"""The README shows real output: its first console example is run here and must match what the bot prints.

The example is Carol's (the menu, then "Why am I locked?" with a lapsed licence). Only what changes from run
to run is set aside: the moment her licence ran out, which the demo sets relative to now.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from tests.test_console import Cli

ROOT = Path(__file__).resolve().parents[1]
# A date and time as the English templates write them: "29 Nov 2026, 01:27 UTC".
WHEN = re.compile(r"\d{1,2} [A-Z][a-z]{2} \d{4}, \d{2}:\d{2} UTC")


def console_examples(readme: str) -> list[list[str]]:
    """The ```console blocks of the README, as lists of lines."""
    return [block.splitlines() for block in re.findall(r"```console\n(.*?)```", readme, flags=re.DOTALL)]


def printed_by_chat(block: list[str]) -> tuple[str, list[str]]:
    """The ``unlockbot chat`` command line of an example and what the README says it prints."""
    [start] = [i for i, line in enumerate(block) if line.startswith("$ printf") and "unlockbot chat" in line]
    shown = []
    for line in block[start + 1 :]:
        if line.startswith("$ "):
            break
        if not line.startswith("# typed:"):  # the console does not echo piped input; the README notes it
            shown.append(line)
    return block[start][2:], shown


def normalised(lines: list[str]) -> list[str]:
    """Lines with the moments set aside, without the blank lines at the end."""
    kept = [WHEN.sub("<when>", line.rstrip()) for line in lines]
    while kept and not kept[-1]:
        kept.pop()
    return kept


def test_carols_example_in_the_readme_is_what_the_bot_prints(demo_home: Path) -> None:
    cli = Cli(demo_home)  # a copy of a folder where `demo seed --reset` ran
    carol = console_examples((ROOT / "README.md").read_text(encoding="utf-8"))[0]
    command, shown = printed_by_chat(carol)
    # "printf '1\n' | unlockbot chat --as carol --lang en": the typed input, then the chat's arguments.
    piped, chat = command.split(" | ")
    typed = shlex.split(piped)[1].replace("\\n", "\n")
    arguments = shlex.split(chat)[1:]
    printed = cli.run(*arguments, stdin=typed).stdout.splitlines()
    assert normalised(printed) == normalised(shown)
