"""The held-out FAQ evaluation (``tests/data/faq_eval.yaml``) and ``unlockbot faq --json --stdin`` end to end.

An in-domain question counts only when ``answer_id`` is its topic: a right topic offered without confidence
is a miss. Targets per language: top-1 accuracy >= 90 %, out-of-domain refusal >= 85 %.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot.knowledge.retrieval import FaqIndex

ROOT = Path(__file__).resolve().parents[2]
EVAL_SET = ROOT / "tests" / "data" / "faq_eval.yaml"
LOCALES = ("zh-CN", "en")


@pytest.fixture(scope="module")
def index() -> FaqIndex:
    return FaqIndex.load(ROOT / "knowledge")


@pytest.fixture(scope="module")
def eval_set() -> dict[str, list[dict[str, str]]]:
    raw = yaml.safe_load(EVAL_SET.read_text(encoding="utf-8"))
    assert isinstance(raw, dict)
    return raw


def _report(name: str, hits: int, total: int, misses: list[str]) -> str:
    lines = [f"{name}: {hits}/{total} = {hits / total:.1%}"] + [f"  miss: {miss}" for miss in misses]
    return "\n".join(lines)


@pytest.mark.parametrize("locale", LOCALES)
def test_in_domain_top1_accuracy(index: FaqIndex, eval_set: dict[str, list[dict[str, str]]], locale: str) -> None:
    items = [item for item in eval_set["in_domain"] if item["locale"] == locale]
    assert len(items) >= 60
    misses: list[str] = []
    for item in items:
        result = index.search(item["q"])
        if result.answer_id != item["id"]:
            ranked = ", ".join(f"{m.topic_id} {m.score:.2f}" for m in result.matches)
            misses.append(f"{item['q']!r}: expected {item['id']}, answered {result.answer_id} [{ranked}]")
    hits = len(items) - len(misses)
    report = _report(f"{locale} in-domain top-1", hits, len(items), misses)
    print(report)
    assert hits / len(items) >= 0.90, report


@pytest.mark.parametrize("locale", LOCALES)
def test_out_of_domain_refusal(index: FaqIndex, eval_set: dict[str, list[dict[str, str]]], locale: str) -> None:
    items = [item for item in eval_set["out_of_domain"] if item["locale"] == locale]
    assert len(items) >= 20
    misses = [f"{item['q']!r}: answered {answer}" for item in items if (answer := index.search(item["q"]).answer_id)]
    refused = len(items) - len(misses)
    report = _report(f"{locale} out-of-domain refusal", refused, len(items), misses)
    print(report)
    assert refused / len(items) >= 0.85, report


def test_faq_stdin_answers_a_mixed_file_in_one_process(tmp_path: Path) -> None:
    questions = ["我的数据安全吗?", "is it my network?", "", "明天上海天气怎么样", "how do I reset my password"]
    env = {name: value for name, value in os.environ.items() if not name.startswith("UNLOCKBOT_")}
    done = subprocess.run(
        [sys.executable, "-W", "error", "-m", "bot", "faq", "--json", "--stdin"],
        input="\n".join(questions) + "\n",
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=tmp_path,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["query"] for line in lines] == questions
    assert [line["locale"] for line in lines] == ["zh-CN", "en", "en", "zh-CN", "en"]
    assert [line["answer_id"] for line in lines] == ["data-safety", "network", None, None, "wrong-password"]
    for line in lines:
        assert list(line) == ["query", "locale", "answer_id", "matches"]
        assert all(set(match) == {"id", "score", "title"} for match in line["matches"])
    assert lines[0]["matches"][0]["title"] == "锁定后我的数据安全吗?"
    assert not list(tmp_path.iterdir()), "faq must not create a database or any file in the working directory"


def test_faq_prints_the_answer_or_the_closest_titles(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("UNLOCKBOT_")}

    def faq(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "bot", "faq", *args],
            capture_output=True,
            text=True,
            encoding="utf-8",
            cwd=tmp_path,
            env=env,
            timeout=60,
            check=True,
        )
        return done.stdout

    assert "VPN" in faq("is it my network?")
    assert "备份" in faq("数据会丢吗", "--lang", "zh")
    assert faq("how do I merge two contacts in the CRM").startswith("I'm not sure")
