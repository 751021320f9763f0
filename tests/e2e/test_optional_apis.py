"""Children on optional APIs: the real upstream CRDs accept every one the builders produce;
they appear once the cluster serves their API, and go when no longer wanted.

The CRDs are the releases' own (``hack/crds.py``; Strimzi's KafkaTopic is generated from its
release's Maven jars): the API server validates each child against the upstream schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from payment_operator.api import parse
from payment_operator.builders import Context, build_all
from payment_operator.kube import drift, resources

from tests.e2e import secrets
from tests.e2e.conftest import condition, get_json, play_sync_controllers, wait_for
from tests.unit.builders.cases import (
    ALL_CAPABILITIES,
    BACKENDS,
    CASES,
    PROVIDERS,
    SAMPLES,
    minimal_body,
    sample,
    store_body,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def _optional_children(body: dict[str, Any], ctx: Context) -> list[dict[str, Any]]:
    return [m for m in build_all(parse(body), ctx) if resources.of(m).capability is not None]


ALL = Context(capabilities=ALL_CAPABILITIES)
#: Every PaymentService the builder tests know (golden cases, samples, each secret-store
#: provider with each backend), built with every optional API served.
SCHEMA_CASES: dict[str, list[dict[str, Any]]] = {
    **{f"golden-{c.name}": _optional_children(c.body, c.ctx) for c in CASES},
    **{f"sample-{p.stem}": _optional_children(sample(p.stem), ALL)
       for p in sorted(SAMPLES.glob("*.yaml"))},
    **{f"store-{provider}-{backend}": _optional_children(store_body(provider, backend), ALL)
       for provider in PROVIDERS for backend in BACKENDS},
    # KafkaTopics in the Strimzi cluster's namespace: owned by labels, no owner reference.
    "kafka-strimzi-namespace": _optional_children(minimal_body(kafka={
        "bootstrapServers": "kafka:9092", "topicProvisioner": "strimzi",
        "topicDeletionPolicy": "Delete", "strimzi": {"clusterName": "main", "namespace": "kafka"},
        "topics": [{"name": "payment.events", "partitions": 6, "replicas": 2,
                    "config": {"retention.ms": "604800000", "cleanup.policy": "compact"}}]}),
        ALL),
    # Units out of order: the PaymentService takes it, the ServiceMonitor schema would not.
    "monitoring-interval-30s1m": _optional_children(
        minimal_body(monitoring={"serviceMonitor": True, "interval": "30s1m"}), ALL),
}


def test_schema_cases_cover_every_optional_kind():
    kinds = {m["kind"] for children in SCHEMA_CASES.values() for m in children}
    assert kinds == {r.kind for r in resources.KNOWN if r.capability is not None}


@pytest.mark.parametrize("case", [k for k, v in SCHEMA_CASES.items() if v])
def test_upstream_crds_accept_every_optional_child(cluster, namespace, third_party_crds, case):
    """Server-side dry run with strict field validation: the upstream schema rejects nothing,
    prunes no field we set (that would be drift forever) and its defaults keep ours."""
    desired = [{**m, "metadata": {**m["metadata"], "namespace": namespace}}
               for m in SCHEMA_CASES[case]]
    result = cluster.kubectl(
        "apply", "--server-side", "--dry-run=server", "--validate=strict",
        "--field-manager=paydeck-operator", "-o", "json", "-f", "-",
        input="\n---\n".join(json.dumps(m) for m in desired), check=False)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    live = out["items"] if out.get("kind") == "List" else [out]
    assert [(o["apiVersion"], o["kind"]) for o in live] == [
        (m["apiVersion"], m["kind"]) for m in desired]
    for have, want in zip(live, desired, strict=True):
        assert not drift.needs_apply(have, want), (
            f"{want['kind']}: the server dropped or changed fields we set:\n"
            f"sent {json.dumps(want['spec'])}\ngot {json.dumps(have.get('spec'))}")


#: Every distinct KafkaTopic spec the cases above build.
KAFKA_TOPICS: list[dict[str, Any]] = list({
    json.dumps(m["spec"], sort_keys=True): m
    for children in SCHEMA_CASES.values() for m in children if m["kind"] == "KafkaTopic"
}.values())


def test_real_kafkatopic_crd_stores_every_kafkatopic(cluster, namespace, third_party_crds):
    """Strimzi's generated schema (not a stand-in) takes each KafkaTopic in a real create with
    strict field validation, and stores the spec unchanged."""
    crd = get_json(cluster, "crd", "kafkatopics.kafka.strimzi.io")
    assert [v["name"] for v in crd["spec"]["versions"] if v["served"]] == ["v1"]
    assert "partitions" in (crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
                            ["properties"]["spec"]["properties"])
    assert KAFKA_TOPICS
    for i, topic in enumerate(KAFKA_TOPICS):
        obj = {**topic, "metadata": {**topic["metadata"], "name": f"schema-{i}",
                                     "namespace": namespace, "ownerReferences": []}}
        result = cluster.kubectl("create", "--validate=strict", "-o", "json", "-f", "-",
                                 input=json.dumps(obj), check=False)
        assert result.returncode == 0, result.stderr
        stored = get_json(cluster, "kafkatopics.kafka.strimzi.io", f"schema-{i}", "-n", namespace)
        assert stored is not None and stored["spec"] == topic["spec"]


def test_real_kafkatopic_crd_refuses_what_strimzi_refuses(cluster, namespace, third_party_crds):
    """The schema is Strimzi's: a field it does not know and a partition count below 1 fail."""
    base = {**KAFKA_TOPICS[0], "metadata": {"name": "bad", "namespace": namespace}}
    for spec in ({**base["spec"], "partitionz": 3}, {**base["spec"], "partitions": 0}):
        result = cluster.kubectl("create", "--dry-run=server", "--validate=strict", "-f", "-",
                                 input=json.dumps({**base, "spec": spec}), check=False)
        assert result.returncode != 0, spec


def _owned_by(obj: dict, name: str) -> bool:
    return [(o["kind"], o["name"]) for o in obj["metadata"]["ownerReferences"]] == [
        ("PaymentService", name)]


OPTIONAL_KINDS = ("servicemonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com",
                  "externalsecrets.external-secrets.io", "secretstores.external-secrets.io")


def test_optional_children_are_created_and_pruned(cluster, namespace, operator, third_party_crds):
    ps = yaml.safe_load((ROOT / "manifests" / "samples" / "full.yaml").read_text())
    name = ps["metadata"]["name"]
    cluster.kubectl("apply", "--server-side", "--field-manager=gitops", "-n", namespace, "-f", "-",
                    input=json.dumps(ps))
    secrets.create_for(cluster, namespace, ps)  # the Kafka CA Secret the user keeps here
    # Not Ready: no External Secrets controller syncs the ExternalSecret here, and the
    # sample's KafkaTopics live in Strimzi's namespace; the children are applied regardless.
    for kind in OPTIONAL_KINDS:
        obj = wait_for(lambda kind=kind: get_json(cluster, kind, name, "-n", namespace),
                       60, kind, operator)
        assert _owned_by(obj, name), kind
    external = get_json(cluster, "externalsecrets.external-secrets.io", name, "-n", namespace)
    remote = sorted(d["remoteRef"]["key"] for d in external["spec"]["data"])
    assert remote == ["payment-database-url", "payments-kafka-password", "payments-kafka-username",
                      "payments-redis-url", "stripe-secret-key", "stripe-webhook-secret"]
    assert condition(get_json(cluster, "paysvc", name, "-n", namespace),
                     "Degraded").get("status") != "True", operator.tail()

    # The ExternalSecret and KafkaTopics turning Ready (as their controllers would make them)
    # open the gates: the first revision rolls out.
    play_sync_controllers(cluster, namespace)
    wait_for(lambda: (get_json(cluster, "paysvc", name, "-n", namespace)["status"]
                      .get("phase") == "Healthy"), 60, "Healthy once the gates open", operator)
    assert not secrets.missing(cluster, namespace)  # the synced Secret is what the pods read
    # Optional children are watched too: the deletion of a ServiceMonitor is an event of its
    # own (not only the drift timer, 300 s here, or another child's event), and it is back.
    seen = operator.child_events("ServiceMonitor")
    kind = "servicemonitors.monitoring.coreos.com"
    uid = get_json(cluster, kind, name, "-n", namespace)["metadata"]["uid"]
    cluster.kubectl("delete", kind, name, "-n", namespace, "--wait=false")
    wait_for(lambda: (o := get_json(cluster, kind, name, "-n", namespace))
             and o["metadata"]["uid"] != uid, 8, "the ServiceMonitor recreated", operator)
    assert operator.child_events("ServiceMonitor") > seen

    # Switch monitoring and the ingress off: their children are pruned, nothing else is.
    ps["spec"]["monitoring"]["serviceMonitor"] = False
    del ps["spec"]["ingress"]
    cluster.kubectl("apply", "--server-side", "--field-manager=gitops", "-n", namespace, "-f", "-",
                    input=json.dumps(ps))
    for kind in ("servicemonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com",
                 "ingress"):
        wait_for(lambda kind=kind: get_json(cluster, kind, name, "-n", namespace) is None,
                 30, f"{kind} pruned", operator)
    assert get_json(cluster, "externalsecrets.external-secrets.io", name, "-n", namespace)
    assert get_json(cluster, "service", name, "-n", namespace)
    events = cluster.kubectl("get", "events", "-n", namespace,
                             f"--field-selector=involvedObject.name={name},reason=Pruned",
                             "-o", "jsonpath={.items[*].message}").stdout
    assert "ServiceMonitor" in events and "Ingress" in events


def test_csi_secret_binding(cluster, namespace, operator, third_party_crds):
    ps = yaml.safe_load((ROOT / "manifests" / "samples" / "aws.yaml").read_text())
    ps["spec"]["kafka"]["topicProvisioner"] = "none"  # its MSK brokers do not exist here
    name = ps["metadata"]["name"]
    cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", "-", input=json.dumps(ps))
    spc = wait_for(lambda: get_json(cluster, "secretproviderclasses.secrets-store.csi.x-k8s.io",
                                    name, "-n", namespace), 60, "SecretProviderClass", operator)
    assert _owned_by(spc, name)
    assert spc["spec"]["provider"] == "aws"
    # The SecretProviderClass opens the SecretsReady gate: the revision's Deployment follows.
    deployments = wait_for(
        lambda: get_json(cluster, "deployments", "-n", namespace,
                         "-l", f"app.kubernetes.io/instance={name}")["items"],
        60, "the revision's Deployment", operator)
    pod_spec = deployments[0]["spec"]["template"]["spec"]
    assert any(v.get("csi", {}).get("driver") == "secrets-store.csi.k8s.io"
               for v in pod_spec.get("volumes", []))
