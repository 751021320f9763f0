"""The Events of a pass's child writes: one per kind of write, naming every child, within
the API server's message limit."""

import pytest
from payment_operator import events
from payment_operator.kube.apply import ApplyResult

pytestmark = pytest.mark.unit


def test_one_event_per_kind_of_write_names_every_child():
    result = ApplyResult()
    result.created += ["ServiceAccount/pay", "ConfigMap/pay-config", "Service/pay"]
    result.pruned += ["Job/pay-migrate-1"]
    assert events.writes(result) == [
        events.Event("Normal", "Created", "created ServiceAccount/pay, ConfigMap/pay-config,"
                                          " Service/pay"),
        events.Event("Normal", "Pruned", "deleted Job/pay-migrate-1: no longer wanted"),
    ]
    assert events.writes(ApplyResult()) == []


def test_a_rollout_pass_does_not_name_its_replica_moves_but_another_update_it_does():
    result = ApplyResult()
    result.updated += ["Deployment/pay-aaa", "Deployment/pay-bbb", "ConfigMap/pay-config"]
    result.rescaled += ["Deployment/pay-aaa", "Deployment/pay-bbb"]
    assert events.writes(result, rescales=False) == [
        events.Event("Normal", "Updated", "updated ConfigMap/pay-config (drifted or changed)")]
    assert events.writes(result)[0].message == (
        "updated Deployment/pay-aaa, Deployment/pay-bbb, ConfigMap/pay-config"
        " (drifted or changed)")
    result.updated.remove("ConfigMap/pay-config")
    assert events.writes(result, rescales=False) == []


def test_a_long_list_is_shortened_to_fit_the_limit():
    refs = [f"ConfigMap/{'x' * 60}-{i}" for i in range(40)]
    message = events.listing("updated", refs, " (drifted or changed)")
    assert len(message) <= events.MESSAGE_MAX
    assert message.endswith(" more (drifted or changed)") and refs[0] in message
    shown = message.count("ConfigMap/")
    assert f"and {40 - shown} more" in message


def _conds(**statuses: str) -> dict:
    return {"conditions": [{"type": t, "status": s, "message": f"{t} says {s}"}
                           for t, s in statuses.items()]}


def test_a_gate_open_from_the_start_is_not_announced_one_closed_is_and_every_flip_after():
    first = events.gate_changes({}, _conds(TopicsReady="True", SecretsReady="True",
                                           MigrationsApplied="False"))
    assert [(e.type, e.reason, e.message) for e in first] == [
        ("Warning", "GateClosed", "MigrationsApplied: MigrationsApplied says False")]
    before = _conds(TopicsReady="True", SecretsReady="True", MigrationsApplied="False")
    later = events.gate_changes(before, _conds(TopicsReady="False", SecretsReady="True",
                                               MigrationsApplied="True"))
    assert [(e.reason, e.message.split(":")[0]) for e in later] == [
        ("GateClosed", "TopicsReady"), ("GateOpened", "MigrationsApplied")]
    assert events.gate_changes(before, before) == []
    # A gate added to a status that had others (a new gate, say) is new too.
    assert events.gate_changes(_conds(Ready="True"), _conds(Ready="True",
                                                            TopicsReady="True")) == []
