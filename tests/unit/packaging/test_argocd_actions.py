"""manifests/argocd: the resource actions, their discovery, and the argocd-cm that embeds them.

Actions must only write ``status.command`` (user commands go through status, never spec), in the
shape of the status model's ``Command``.  Discovery offers each action only when it makes sense.
argocd-cm.yaml must embed the very same Lua as the files the tests run.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from payment_operator.api.v1alpha1.status import Command, PaymentServiceStatus

from tests.unit.packaging import argocd_cm as cm_render
from tests.unit.packaging import lua

pytestmark = pytest.mark.unit

EXPECTED_ACTION = {
    "promote": "promote",
    "promote-full": "promoteFull",
    "abort": "abort",
    "retry": "retry",
}


def payment_service(status: dict[str, Any] | None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "paydeck.dev/v1alpha1",
        "kind": "PaymentService",
        "metadata": {"name": "payments", "namespace": "shop", "generation": 7,
                     "labels": {"team": "payments"}},
        "spec": {"image": "ghcr.io/paydeck/payment-runtime:1.5.0", "replicas": 3,
                 "rollout": {"canary": {"steps": [{"setWeight": 10}, {"pause": {}}]}}},
    }
    if status is not None:
        PaymentServiceStatus.model_validate(status)
        obj["status"] = status
    return obj


CANARY_PAUSED = {
    "observedGeneration": 7,
    "phase": "Paused",
    "stableRevision": "aaaa111",
    "canaryRevision": "bbbb222",
    "canary": {"stepIndex": 1, "weight": 10, "actualWeight": 10, "paused": True},
}
CANARY_ABORTED = {
    "observedGeneration": 7,
    "phase": "Degraded",
    "message": "aborted by user",
    "stableRevision": "aaaa111",
    "canaryRevision": "bbbb222",
    "canary": {"stepIndex": 1, "weight": 0, "actualWeight": 0, "aborted": True},
}
STEADY = {"observedGeneration": 7, "phase": "Healthy", "stableRevision": "aaaa111"}


@pytest.mark.parametrize("name", lua.ACTION_NAMES)
@pytest.mark.parametrize("status", [CANARY_PAUSED, CANARY_ABORTED, None],
                         ids=["paused", "aborted", "no-status"])
def test_action_writes_only_status_command(name: str, status: dict[str, Any] | None) -> None:
    before = payment_service(copy.deepcopy(status))
    # Lua's os.date reads time(), which Linux serves from a coarse clock that may lag the
    # precise one by a tick: just after a second boundary it can still say the second before.
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    after = lua.run(lua.ACTIONS / f"{name}.lua", copy.deepcopy(before))

    command = after["status"]["command"]
    assert set(command) == {"action", "requestedAt", "requestedBy"}
    parsed = Command.model_validate(command)
    assert parsed.action == EXPECTED_ACTION[name]
    assert parsed.requested_by == "argocd"
    assert start <= parsed.requested_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert command["requestedAt"].endswith("Z")
    # Everything but status.command is untouched: spec, metadata, the rest of status.
    rest = {k: v for k, v in after.items() if k != "status"}
    assert rest == {k: v for k, v in before.items() if k != "status"}
    rest_status = {k: v for k, v in after["status"].items() if k != "command"}
    assert rest_status == (status or {})
    PaymentServiceStatus.model_validate(after["status"])


def test_action_replaces_an_older_command() -> None:
    status = {**CANARY_PAUSED, "command": {"action": "abort",
                                           "requestedAt": "2020-01-01T00:00:00Z",
                                           "requestedBy": "alice"}}
    after = lua.run(lua.ACTIONS / "promote.lua", payment_service(status))
    assert after["status"]["command"]["action"] == "promote"
    assert after["status"]["command"]["requestedAt"] > "2020-01-01T00:00:00Z"


def discovered(status: dict[str, Any] | None) -> dict[str, bool]:
    actions = lua.run(lua.ACTIONS / "discovery.lua", payment_service(status))
    return {name: bool(spec["disabled"]) for name, spec in actions.items()}


def test_discovery_lists_every_action() -> None:
    assert set(discovered(STEADY)) == set(lua.ACTION_NAMES)


def test_discovery_during_a_canary() -> None:
    assert discovered(CANARY_PAUSED) == {
        "promote": False, "promote-full": False, "abort": False, "retry": True,
    }


def test_discovery_after_an_abort() -> None:
    assert discovered(CANARY_ABORTED) == {
        "promote": True, "promote-full": True, "abort": True, "retry": False,
    }


@pytest.mark.parametrize("status", [STEADY, None], ids=["steady", "no-status"])
def test_discovery_when_nothing_rolls_out(status: dict[str, Any] | None) -> None:
    assert all(discovered(status).values())


def argocd_cm() -> dict[str, Any]:
    return yaml.safe_load((lua.ARGOCD / "argocd-cm.yaml").read_text())


def test_argocd_cm_embeds_health_lua_verbatim() -> None:
    data = argocd_cm()["data"]
    assert data["resource.customizations.health.paydeck.dev_PaymentService"] == (
        lua.HEALTH.read_text()
    )


def test_argocd_cm_embeds_the_actions_verbatim() -> None:
    data = argocd_cm()["data"]
    actions = yaml.safe_load(data["resource.customizations.actions.paydeck.dev_PaymentService"])
    assert actions["discovery.lua"] == (lua.ACTIONS / "discovery.lua").read_text()
    definitions = {d["name"]: d["action.lua"] for d in actions["definitions"]}
    assert definitions == {
        name: (lua.ACTIONS / f"{name}.lua").read_text() for name in lua.ACTION_NAMES
    }


def test_argocd_cm_is_rendered_from_the_lua_files() -> None:
    assert cm_render.PATH.read_text() == cm_render.render(), (
        "refresh it: .venv/bin/python -m tests.unit.packaging.argocd_cm"
    )


def test_argocd_cm_is_the_argocd_config_map() -> None:
    cm = argocd_cm()
    assert (cm["kind"], cm["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    assert cm["metadata"]["labels"]["app.kubernetes.io/part-of"] == "argocd"


def test_example_applications_are_argo_cd_applications() -> None:
    docs = list(yaml.safe_load_all((lua.ARGOCD / "application.yaml").read_text()))
    assert [d["kind"] for d in docs] == ["Application", "Application"]
    by_name = {d["metadata"]["name"]: d for d in docs}
    operator = by_name["paydeck-operator"]
    assert operator["spec"]["source"]["path"] == "charts/payment-operator"
    payments = by_name["payments"]
    assert "ServerSideApply=true" in payments["spec"]["syncPolicy"]["syncOptions"]
