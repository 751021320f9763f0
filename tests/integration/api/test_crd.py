"""The generated CRD in a real API server: samples accepted, mistakes rejected by name.

Every invalid manifest under tests/data/invalid must be refused with all of its ``# expect:``
texts in the error; update cases apply their first document, then fail on the second.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from payment_operator.api import parse
from payment_operator.api import v1alpha1 as api
from payment_operator.rollout import analysis
from payment_operator.rollout.compare import LatencySamples, SuccessCounts

from tests.fixtures.cluster import KubeCluster
from tests.unit.api.manifests import INVALID, SAMPLES, load_invalid, load_sample
from tests.unit.api.strategies import payment_services

pytestmark = pytest.mark.integration


def apply(cluster: KubeCluster, namespace: str, obj: dict[str, Any], check: bool = True) -> Any:
    return cluster.kubectl(
        "apply",
        "--server-side",
        "--field-manager=tests",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(obj),
        check=check,
    )


def get(cluster: KubeCluster, namespace: str, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "paymentservice", name, "-n", namespace, "-o", "json").stdout
    body: dict[str, Any] = json.loads(out)
    return body


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_sample_is_accepted_and_parses_to_the_same_model(
    cluster: KubeCluster, crd: object, module_namespace: str, path
) -> None:
    sample = load_sample(path)
    result = apply(cluster, module_namespace, sample)
    assert "serverside-applied" in result.stdout
    stored = parse(get(cluster, module_namespace, sample["metadata"]["name"]))
    assert stored.spec == parse(sample).spec


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_manifest_is_rejected_naming_the_field(
    cluster: KubeCluster, crd: object, module_namespace: str, path
) -> None:
    case = load_invalid(path)
    manifest = case.manifest
    if case.original is not None:
        name = f"upd-{case.name}"[:40].rstrip("-")
        original = {**case.original, "metadata": {"name": name}}
        manifest = {**manifest, "metadata": {"name": name}}
        apply(cluster, module_namespace, original)
    result = apply(cluster, module_namespace, manifest, check=False)
    assert result.returncode != 0, f"{case.name} was accepted"
    for text in case.expect:
        assert text in result.stderr, f"{case.name}: {text!r} not in:\n{result.stderr}"


def test_explain_describes_every_canary_field(cluster: KubeCluster, crd: object) -> None:
    tree = cluster.kubectl("explain", "paymentservice.spec.rollout.canary", "--recursive").stdout
    assert "Canary strategy. Without it a new revision replaces the stable one" in " ".join(
        tree.split()
    )
    fields = _explain_paths(crd_canary_schema(), "paymentservice.spec.rollout.canary")
    for name in (
        "steps",
        "setWeight",
        "pause",
        "duration",
        "maxSurge",
        "thresholdRange",
        "onNoData",
    ):
        assert re.search(rf"^\s+{name}\s", tree, re.MULTILINE), name
    for field_path, description in fields:
        out = cluster.kubectl("explain", field_path).stdout
        assert " ".join(description.split()) in " ".join(out.split()), field_path


def crd_canary_schema() -> dict[str, Any]:
    from payment_operator.api import crdgen

    spec = crdgen.root_schema()["properties"]["spec"]
    schema: dict[str, Any] = spec["properties"]["rollout"]["properties"]["canary"]
    return schema


def _explain_paths(schema: dict[str, Any], prefix: str) -> Iterator[tuple[str, str]]:
    for name, sub in schema.get("properties", {}).items():
        yield f"{prefix}.{name}", sub["description"]
        child = sub.get("items", sub)
        yield from _explain_paths(child, f"{prefix}.{name}")


STATUS = {
    "observedGeneration": 1,
    "phase": "Progressing",
    "message": "canary at step 2",
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "observedGeneration": 1,
            "lastTransitionTime": "2025-01-02T03:04:05Z",
            "reason": "StableServing",
            "message": "stable revision serves",
        },
        {
            "type": "Progressing",
            "status": "True",
            "observedGeneration": 1,
            "lastTransitionTime": "2025-01-02T03:04:05Z",
            "reason": "CanaryStep",
            "message": "",
        },
    ],
    "replicas": 4,
    "readyReplicas": 3,
    "selector": "app.kubernetes.io/instance=payments",
    "stableRevision": "6d5f7c8b9a",
    "canaryRevision": "7e6a8d9c0b",
    "canary": {
        "stepIndex": 2,
        "weight": 25,
        "actualWeight": 33,
        "stepStartedAt": "2025-01-02T03:04:05Z",
        "analysis": {"phase": "Running", "successes": 2},
    },
    "migration": {
        "revision": "7e6a8d9c0b",
        "job": "payments-migrate-7e6a8d9c0b",
        "phase": "Succeeded",
        "appliedAt": "2025-01-02T03:00:00Z",
    },
    "kopf": {
        "progress": {"reconcile": {"started": "2025-01-02T03:04:05Z", "retries": 1}},
        "last-handled-configuration": '{"spec": {}}',
    },
}


def _with_status(cluster: KubeCluster, namespace: str) -> dict[str, Any]:
    sample = load_sample(SAMPLES[[p.stem for p in SAMPLES].index("minimal")])
    apply(cluster, namespace, sample)
    cluster.kubectl(
        "patch",
        "paymentservice",
        sample["metadata"]["name"],
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": STATUS}),
    )
    return sample


def test_status_subresource_stores_the_status_shape(
    cluster: KubeCluster, crd: object, namespace: str
) -> None:
    sample = _with_status(cluster, namespace)
    stored = parse(get(cluster, namespace, sample["metadata"]["name"]))
    assert stored.status == api.PaymentServiceStatus.model_validate(STATUS)
    assert stored.status is not None and stored.status.kopf == STATUS["kopf"]


def test_status_stores_an_analysis_run_and_a_merge_patch_clears_what_it_left(
    cluster: KubeCluster, crd: object, namespace: str
) -> None:
    sample = _with_status(cluster, namespace)
    name = sample["metadata"]["name"]
    spec = api.Analysis.model_validate(
        {
            "metrics": [
                {
                    "name": n,
                    "prometheus": {"address": "http://p:9090", "query": "up"},
                    "thresholdRange": {"min": 0.99},
                }
                for n in ("success", "latency")
            ]
        }
    )
    start = datetime(2025, 1, 2, 3, 4, 5, 250000, tzinfo=UTC)
    measured = analysis.record(
        analysis.start(start),
        spec,
        api.StepAnalysis(count=3),
        [analysis.MetricResult("success", float("nan")), analysis.MetricResult("latency", None)],
        start + timedelta(seconds=30),
    )
    fresh = analysis.start(start + timedelta(minutes=5))

    def patch(run: analysis.Run) -> analysis.Run | None:
        body = {"status": {"canary": {"analysis": run.to_status()}}}
        cluster.kubectl(
            "patch", "paymentservice", name, "-n", namespace, "--subresource=status",
            "--type=merge", "-p", json.dumps(body),
        )
        stored = get(cluster, namespace, name)["status"]["canary"]["analysis"]
        return analysis.Run.from_status(stored)

    assert patch(measured) == measured
    # The next step's fresh run: lastMeasuredAt (null) and the old metrics must not survive.
    assert patch(fresh) == fresh


def test_status_rejects_an_integer_generation_as_string(
    cluster: KubeCluster, crd: object, namespace: str
) -> None:
    sample = _with_status(cluster, namespace)
    result = cluster.kubectl(
        "patch",
        "paymentservice",
        sample["metadata"]["name"],
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"observedGeneration": "seven"}}),
        check=False,
    )
    assert result.returncode != 0
    assert "status.observedGeneration" in result.stderr


def test_get_shows_the_printer_columns(cluster: KubeCluster, crd: object, namespace: str) -> None:
    sample = _with_status(cluster, namespace)
    out = cluster.kubectl("get", "paysvc", "-n", namespace).stdout
    header, row = out.splitlines()[:2]
    assert header.split() == ["NAME", "PHASE", "READY", "STABLE", "CANARY", "STEP", "WEIGHT", "AGE"]
    assert row.split()[:7] == [
        sample["metadata"]["name"],
        "Progressing",
        "3",
        "6d5f7c8b9a",
        "7e6a8d9c0b",
        "2",
        "33",
    ]
    wide = cluster.kubectl("get", "paysvc", "-n", namespace, "-o", "wide").stdout
    assert wide.splitlines()[0].split()[-2:] == ["IMAGE", "MESSAGE"]
    by_category = cluster.kubectl("get", "paydeck", "-n", namespace).stdout
    assert sample["metadata"]["name"] in by_category


def test_scale_goes_through_the_scale_subresource(
    cluster: KubeCluster, crd: object, namespace: str
) -> None:
    sample = _with_status(cluster, namespace)
    name = sample["metadata"]["name"]
    cluster.kubectl("scale", f"paysvc/{name}", "-n", namespace, "--replicas=5")
    assert parse(get(cluster, namespace, name)).spec.replicas == 5
    scale = json.loads(
        cluster.kubectl(
            "get", f"paysvc/{name}", "-n", namespace, "--subresource=scale", "-o", "json"
        ).stdout
    )
    assert scale["kind"] == "Scale"
    assert scale["spec"]["replicas"] == 5
    assert scale["status"] == {"replicas": 4, "selector": STATUS["selector"]}


_names = count()


@settings(
    max_examples=25,
    deadline=None,
    # Each example costs three kubectl calls: report the failing example without shrinking.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(service=payment_services())
def test_any_valid_model_is_accepted_and_parses_back_equal(
    cluster: KubeCluster, crd: object, namespace: str, service: api.PaymentService
) -> None:
    name = f"roundtrip-{next(_names)}"
    service = service.model_copy(update={"metadata": api.ObjectMeta(name=name)})
    result = apply(cluster, namespace, service.manifest(), check=False)
    assert result.returncode == 0, f"{result.stderr}\n{yaml.safe_dump(service.manifest())}"
    stored = parse(get(cluster, namespace, name))
    assert stored.spec == service.spec
    cluster.kubectl("delete", "paymentservice", name, "-n", namespace, "--wait=false")


def test_status_stores_a_builtin_analysis_comparison(
    cluster: KubeCluster, crd: object, namespace: str
) -> None:
    sample = _with_status(cluster, namespace)
    name = sample["metadata"]["name"]
    spec = api.Analysis.model_validate(
        {"builtin": "paymentSuccess", "prometheusAddress": "http://p:9090"}
    )
    start = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    measured = analysis.record(
        analysis.start(start), spec, api.StepAnalysis(count=3),
        [
            analysis.MetricResult(analysis.SUCCESS_RATIO, None, canary=SuccessCounts(3, 60),
                                  stable=SuccessCounts(120, 120)),
            # Too few intervals: a comparison without a p-value.
            analysis.MetricResult(analysis.P99_LATENCY, None, canary=LatencySamples((0.1,)),
                                  stable=LatencySamples((0.1, 0.2))),
        ],
        start + timedelta(seconds=30),
    )
    body = {"status": {"canary": {"analysis": measured.to_status()}}}
    cluster.kubectl(
        "patch", "paymentservice", name, "-n", namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps(body),
    )
    stored = get(cluster, namespace, name)["status"]["canary"]["analysis"]
    assert stored["metrics"][0]["comparison"]["canarySamples"] == 60
    assert "pValue" not in stored["metrics"][1]["comparison"]
    assert analysis.Run.from_status(stored) == measured


@pytest.mark.parametrize("namespace_", [None, "kafka"])
def test_topic_deletion_policy_delete_is_accepted_with_strimzi(
    cluster: KubeCluster, crd: object, module_namespace: str, namespace_: str | None
) -> None:
    sample = load_sample(next(p for p in SAMPLES if p.stem == "minimal"))
    strimzi = {"clusterName": "main", **({"namespace": namespace_} if namespace_ else {})}
    sample["metadata"]["name"] = f"strimzi-delete-{namespace_ or 'here'}"
    sample["spec"]["kafka"] = {
        "bootstrapServers": "kafka:9092", "topicProvisioner": "strimzi",
        "topicDeletionPolicy": "Delete", "strimzi": strimzi, "topics": [{"name": "t"}]}
    result = apply(cluster, module_namespace, sample, check=False)
    assert result.returncode == 0, result.stderr
    assert parse(get(cluster, module_namespace, sample["metadata"]["name"])).spec == parse(
        sample).spec
