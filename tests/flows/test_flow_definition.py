"""Flows that cannot drift: a step named in a flow module must be one of its flows' steps, checked at import."""

from __future__ import annotations

import pytest

from bot.flows import FLOWS, TIMEOUT, Flow, FlowError, Outcome, Turn
from bot.flows.base import check_steps


async def _start(turn: Turn) -> Outcome:
    return Outcome([], step="cdoe")  # the typo the check must catch


async def _on_code(turn: Turn) -> Outcome:
    return Outcome([])


def test_a_misspelt_step_is_found_when_the_flows_are_checked() -> None:
    flow = Flow("typo", start=_start, steps={"code": _on_code}, takes_text=frozenset({"code"}))
    with pytest.raises(FlowError, match="'cdoe' is not a step"):
        check_steps([flow])


def test_takes_text_must_name_steps() -> None:
    with pytest.raises(FlowError, match="takes_text names no step"):
        Flow("typo", start=_on_code, steps={"code": _on_code}, takes_text=frozenset({"coed"}))
    with pytest.raises(FlowError, match="takes no text"):
        Flow("typo", start=_on_code, steps={TIMEOUT: _on_code}, takes_text=frozenset({TIMEOUT}))


def test_the_shipped_flows_pass_the_check() -> None:
    check_steps(FLOWS.values())  # also run at import of bot.flows; here it is named
