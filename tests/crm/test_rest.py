"""The generic REST backend: paths and field names from config, auth, reason codes, what it may not do."""

from __future__ import annotations

import re
import tomllib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.clock import ManualClock
from bot.config import RestCrmSettings, RestPaths, Settings
from bot.crm.base import Capability, LockReason
from bot.crm.rest import RestCrm
from bot.errors import AccountNotFound, CrmError, CrmUnsupported
from tests.conftest import START
from tests.fakes import TEST_TIMEOUT, serving
from tests.fakes.rest_crm import TOKEN, FakeRestCrm, rest_settings

AT = START - timedelta(minutes=3)


@pytest.fixture
async def fake(clock: ManualClock) -> AsyncIterator[FakeRestCrm]:
    async with serving(FakeRestCrm(clock.now)) as crm:
        crm.add_account("ann", "ann@example.com", "Ann Lee")
        yield crm


def backend(fake: FakeRestCrm, **extra: Any) -> RestCrm:
    return RestCrm(RestCrmSettings.model_validate(rest_settings(fake, **extra)), timeout=TEST_TIMEOUT)


async def test_field_names_and_reason_codes_follow_the_config(fake: FakeRestCrm) -> None:
    fake.account_shape = lambda a: {"data": {"login": a["username"], "mail": a["email"], "fullName": a["display_name"]}}
    fake.lock_shape = lambda s: {"state": {"blocked": s["locked"], "code": s["reason"], "since": s["locked_at"]}}
    fake.lock("ann", "PWD_TOO_MANY", AT, {"ip": "203.0.113.8"})
    crm = backend(
        fake,
        fields={
            "username": "data.login",
            "email": "data.mail",
            "display_name": "data.fullName",
            "locked": "state.blocked",
            "reason": "state.code",
            "locked_at": "state.since",
            "evidence": "state.proof",
        },
        reasons={"PWD_TOO_MANY": "failed_password"},
    )
    try:
        account = await crm.find_account("ann@example.com")
        assert account is not None
        assert (account.username, account.email, account.display_name) == ("ann", "ann@example.com", "Ann Lee")
        status = await crm.lock_status("ann")
        assert (status.locked, status.reason, status.locked_at) == (True, LockReason.FAILED_PASSWORD, AT)
    finally:
        await crm.aclose()


async def test_a_reason_code_nobody_mapped_is_unknown(fake: FakeRestCrm) -> None:
    fake.lock("ann", "SOMETHING_NEW", AT)
    crm = backend(fake)
    try:
        assert (await crm.lock_status("ann")).reason is LockReason.UNKNOWN
    finally:
        await crm.aclose()


async def test_evidence_in_the_documented_shape_is_read_whole(fake: FakeRestCrm) -> None:
    fake.lock(
        "ann",
        "rate_limit",
        AT,
        {
            "operations": 480,
            "window_minutes": 10,
            "lifts_at": (AT + timedelta(hours=1)).isoformat(),
            "flagged_action": {"at": AT.isoformat(), "action": "bulk export", "detail": "12 000 contacts"},
            "licence": {"name": "Sales", "expires_at": None, "seats_total": 5, "seats_used": 5},
        },
    )
    crm = backend(fake)
    try:
        evidence = (await crm.lock_status("ann")).evidence
        assert (evidence.operations, evidence.window_minutes, evidence.lifts_at) == (480, 10, AT + timedelta(hours=1))
        assert evidence.flagged_action is not None
        assert evidence.flagged_action.action == "bulk export"
        assert evidence.licence is not None
        assert evidence.licence.seats_total == 5
    finally:
        await crm.aclose()


async def test_an_answer_in_another_shape_is_a_crm_error(fake: FakeRestCrm) -> None:
    fake.lock("ann", "failed_password", AT, {"failed_attempts": [{"ip": "203.0.113.8"}]})  # no "at"
    crm = backend(fake)
    try:
        with pytest.raises(CrmError, match="shape"):
            await crm.lock_status("ann")
    finally:
        await crm.aclose()


async def test_licences_and_seat_holders_come_from_their_own_paths(fake: FakeRestCrm) -> None:
    fake.add_account("bo", "bo@example.com", "Bo Yu")
    fake.licences["ann"] = fake.licences["bo"] = {"name": "Sales / East", "seats_total": 2, "seats_used": 2}
    fake.last_sign_in["ann"] = AT
    crm = backend(
        fake,
        capabilities=["licence_list", "seat_usage"],
        paths={"licences": "/licences", "inactive_users": "/licences/{licence}/users?order=last_sign_in&limit={limit}"},
    )
    try:
        [licence] = await crm.all_licences()
        assert (licence.name, licence.seats_used, licence.seats_total) == ("Sales / East", 2, 2)
        holders = await crm.inactive_users("Sales / East", limit=5)  # the name is URL-encoded, slash and all
        assert [(h.username, h.display_name, h.last_sign_in_at) for h in holders] == [
            ("bo", "Bo Yu", None),
            ("ann", "Ann Lee", AT),
        ]
        fake.licences["ann"] = {"seats_total": 2}  # no name
        with pytest.raises(CrmError, match="shape"):
            await crm.all_licences()
    finally:
        await crm.aclose()


async def test_a_header_key_is_sent_where_the_config_says(clock: ManualClock) -> None:
    async with serving(FakeRestCrm(clock.now, auth_header="X-Crm-Key")) as fake:
        fake.add_account("ann", "ann@example.com", "Ann Lee")
        crm = backend(fake, auth="header", header_name="X-Crm-Key")
        try:
            assert await crm.find_account("ann") is not None
        finally:
            await crm.aclose()


async def test_wrong_credentials_are_an_error_naming_the_status(fake: FakeRestCrm) -> None:
    crm = backend(fake, token="not-" + TOKEN)
    try:
        with pytest.raises(CrmError, match="401"):
            await crm.lock_status("ann")
    finally:
        await crm.aclose()


async def test_an_unlock_carries_its_idempotency_key(fake: FakeRestCrm) -> None:
    fake.lock("ann", "failed_password", AT)
    crm = backend(fake)
    try:
        await crm.unlock("ann", idempotency_key="request:7:1:unlock")
        assert fake.keys == {"request:7:1:unlock"}
        with pytest.raises(AccountNotFound):
            await crm.unlock("nobody", idempotency_key="request:8:1:unlock")
    finally:
        await crm.aclose()


async def test_capabilities_left_out_of_the_config_are_refused_without_asking(fake: FakeRestCrm) -> None:
    crm = backend(fake, capabilities=["lock_status", "probe"])
    try:
        assert crm.capabilities == {Capability.LOCK_STATUS, Capability.PROBE}
        with pytest.raises(CrmUnsupported):
            await crm.unlock("ann", idempotency_key="k")
        with pytest.raises(CrmUnsupported):
            await crm.system_status()
        assert fake.calls("POST") == 0
    finally:
        await crm.aclose()


def test_settings_check_capabilities_reasons_and_credentials() -> None:
    with pytest.raises(ValueError, match="unknown capabilities teleport"):
        RestCrmSettings(capabilities=("teleport",))
    with pytest.raises(ValueError, match="unknown lock reasons bored"):
        RestCrmSettings(reasons={"X": "bored"})
    with pytest.raises(ValueError, match=r"crm\.rest\.token"):
        Settings.model_validate({"crm": {"backend": "rest", "rest": {"base_url": "https://crm.example"}}})
    Settings.model_validate({"crm": {"backend": "rest", "rest": {"base_url": "https://crm.example", "auth": "none"}}})


DOCS = Path(__file__).parents[2] / "docs"


def test_the_openapi_document_describes_the_default_paths_and_every_reason() -> None:
    document = yaml.safe_load((DOCS / "crm-rest-openapi.yaml").read_text(encoding="utf-8"))
    defaults = {path.split("?")[0] for path in RestPaths().model_dump().values()}
    assert set(document["paths"]) == defaults
    assert document["components"]["schemas"]["LockReason"]["enum"] == [r.value for r in LockReason]


@pytest.mark.parametrize("backend", ["sql", "salesforce", "keycloak", "rest"])
def test_the_documented_configuration_examples_are_valid(backend: str) -> None:
    examples = re.findall(r"```toml\n(.*?)```", (DOCS / "backends.md").read_text(encoding="utf-8"), re.DOTALL)
    chosen = [tomllib.loads(text) for text in examples if f'backend = "{backend}"' in text]
    assert len(chosen) == 1
    settings = Settings.model_validate(chosen[0])
    assert settings.crm.backend == backend
