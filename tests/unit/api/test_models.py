"""The pydantic models: samples, wire format, defaults, parse, and the Python mirror of CEL."""

from __future__ import annotations

import types
from datetime import timedelta
from typing import Any

import pytest
from payment_operator.api import parse
from payment_operator.api import v1alpha1 as api
from pydantic import ValidationError

from tests.unit.api.manifests import INVALID, SAMPLES, load_invalid, load_sample

pytestmark = pytest.mark.unit


def all_rules() -> list[api.Rule]:
    models: list[type[api.ApiModel]] = []
    stack: list[type[Any]] = [api.PaymentService]
    while stack:
        model = stack.pop()
        if model in models:
            continue
        models.append(model)
        for field in model.model_fields.values():
            for arg in _type_args(field.annotation):
                if isinstance(arg, type) and issubclass(arg, api.ApiModel):
                    stack.append(arg)
    return [rule for model in models for rule in model.__rules__]


def _type_args(annotation: Any) -> list[Any]:
    args = getattr(annotation, "__args__", None)
    if not args:
        return [annotation]
    return [a for arg in args for a in _type_args(arg)]


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_every_sample_parses(path) -> None:
    service = parse(load_sample(path))
    assert service.metadata.name
    assert service.spec.image


def test_samples_are_minimal_full_and_aws() -> None:
    assert {p.stem for p in SAMPLES} >= {"minimal", "full", "aws"}


def test_minimal_sample_takes_the_defaults() -> None:
    spec = parse(load_sample(SAMPLES[[p.stem for p in SAMPLES].index("minimal")])).spec
    assert spec.replicas == 2
    assert spec.rollout == api.Rollout(canary=None, progress_deadline_seconds=600)
    assert spec.database.migrations == api.Migrations(
        enabled=True, timeout_seconds=600, backoff_limit=0
    )
    assert spec.service == api.Service(type="ClusterIP", port=80)
    assert spec.kafka is None
    assert spec.secret_store is None


def test_full_sample_is_azure_strimzi_canary_with_prometheus() -> None:
    spec = parse(load_sample(SAMPLES[[p.stem for p in SAMPLES].index("full")])).spec
    assert spec.secret_store is not None
    assert (spec.secret_store.backend, spec.secret_store.provider) == (
        "external-secrets",
        "azure-keyvault",
    )
    assert spec.kafka is not None and spec.kafka.topic_provisioner == "strimzi"
    assert spec.rollout.canary is not None and spec.rollout.canary.analysis is not None
    assert all(m.prometheus.address for m in spec.rollout.canary.analysis.metrics)


def test_aws_sample_is_csi_irsa_admin_topics() -> None:
    spec = parse(load_sample(SAMPLES[[p.stem for p in SAMPLES].index("aws")])).spec
    assert spec.secret_store is not None and spec.secret_store.aws is not None
    assert (spec.secret_store.backend, spec.secret_store.provider) == ("csi", "aws-secrets-manager")
    assert spec.kafka is not None and spec.kafka.topic_provisioner == "admin"
    assert spec.kafka.topic_deletion_policy == "Retain"


def test_wire_format_is_camel_case_and_python_is_snake_case() -> None:
    scaling = api.Autoscaling(max_replicas=4, target_cpu_utilization_percentage=50)
    assert scaling.model_dump(by_alias=True, exclude_none=True) == {
        "minReplicas": 1,
        "maxReplicas": 4,
        "targetCPUUtilizationPercentage": 50,
    }
    assert api.Autoscaling.model_validate({"maxReplicas": 4, "minReplicas": 2}).min_replicas == 2
    assert api.Autoscaling.model_validate({"max_replicas": 4}).max_replicas == 4


def test_models_are_frozen() -> None:
    step = api.CanaryStep(set_weight=10)
    with pytest.raises(ValidationError):
        step.set_weight = 20  # type: ignore[misc]


def test_manifest_round_trips_and_leaves_out_status_and_unset_fields() -> None:
    service = parse(load_sample(SAMPLES[0]))
    with_status = service.model_copy(update={"status": api.PaymentServiceStatus(phase="Healthy")})
    manifest = with_status.manifest()
    assert "status" not in manifest
    assert "autoscaling" not in manifest["spec"] or manifest["spec"]["autoscaling"] is not None
    assert parse(manifest) == service


def test_parse_reads_an_api_server_body_with_mapping_views_and_extra_metadata() -> None:
    body = load_sample(SAMPLES[0])
    body["metadata"].update(
        namespace="payments",
        uid="0b8f",
        generation=7,
        resourceVersion="123",
        creationTimestamp="2025-01-02T03:04:05Z",
        managedFields=[{"manager": "kubectl"}],
    )
    body["status"] = {
        "observedGeneration": 7,
        "phase": "Progressing",
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "observedGeneration": 7,
                "lastTransitionTime": "2025-01-02T03:04:05Z",
                "reason": "Rollout",
                "message": "canary at 10%",
            }
        ],
        "canary": {"stepIndex": 1, "weight": 10, "actualWeight": 9},
        "kopf": {"progress": {"handler": {"started": "x"}}},
        "fieldFromANewerOperator": True,
    }
    view = types.MappingProxyType(
        {k: types.MappingProxyType(v) if isinstance(v, dict) else v for k, v in body.items()}
    )
    service = parse(view)
    assert service.metadata.generation == 7
    assert service.metadata.resource_version == "123"
    assert service.status is not None
    assert service.status.observed_generation == 7
    ready = service.status.condition("Ready")
    assert ready is not None and ready.status == "False" and ready.observed_generation == 7
    assert service.status.condition("Stalled") is None
    assert service.status.canary == api.CanaryStatus(step_index=1, weight=10, actual_weight=9)
    assert service.status.kopf == {"progress": {"handler": {"started": "x"}}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("2m", timedelta(minutes=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("500ms", timedelta(milliseconds=500)),
        ("1m30s250ms", timedelta(seconds=90.25)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert api.parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "2 minutes", "1d", "-1s", "1.5h", "m"])
def test_bad_durations_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        api.parse_duration(text)
    with pytest.raises(ValidationError):
        api.Pause(duration=text)


@pytest.mark.parametrize(
    "image",
    [
        "payment-runtime:1.4.2",
        "ghcr.io/paydeck/payment-runtime:1.4.2",
        "localhost:5000/payments:dev_1",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/payment-runtime:1.4.2",
        "registry.example/a/b/c@sha256:" + "a" * 64,
        "registry.example/payments:1.4.2@sha256:" + "0" * 64,
        "my_org/pay__ments.run-time:v1",
    ],
)
def test_good_images(image: str) -> None:
    assert api.PaymentServiceSpec.model_validate(_spec(image=image)).image == image


@pytest.mark.parametrize(
    "image",
    [
        "payment-runtime",
        "ghcr.io/paydeck/payment-runtime",
        "ghcr.io/Paydeck/runtime:1",
        "payments:",
        "payments:-bad",
        "payments@sha256:abc",
        "https://ghcr.io/payments:1",
        "payments:1 ",
        "/payments:1",
    ],
)
def test_bad_images(image: str) -> None:
    with pytest.raises(ValidationError, match="image"):
        api.PaymentServiceSpec.model_validate(_spec(image=image))


def _spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "image": "payments:1",
        "stripe": {"secretKey": {"secretRef": {"name": "s", "key": "k"}}},
        "database": {"url": {"secretRef": {"name": "d", "key": "u"}}},
    }
    spec.update(overrides)
    return spec


def test_there_are_at_least_25_invalid_manifests() -> None:
    assert len(INVALID) >= 25


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_manifest_is_annotated(path) -> None:
    case = load_invalid(path)
    assert case.why, "first comment says what is wrong"
    assert case.expect, "at least one '# expect:' line"
    assert case.expect[0].startswith(("spec.", "metadata.")), "first expectation names the field"


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_manifest_is_rejected_by_the_models_too(path) -> None:
    case = load_invalid(path)
    if case.is_update:
        # Transition rules compare with oldSelf: only the API server can check them.
        assert parse(case.manifest)
        assert parse(case.original or {})
        return
    with pytest.raises(ValidationError) as error:
        parse(case.manifest)
    messages = [rule.message for rule in all_rules()]
    for text in case.expect:
        if any(text in message for message in messages):
            assert text in str(error.value)


def test_every_cross_field_rule_has_an_invalid_manifest() -> None:
    expected = {text for path in INVALID for text in load_invalid(path).expect}
    missing = [
        rule.message
        for rule in all_rules()
        if not any(text in rule.message for text in expected if not text.startswith("spec."))
    ]
    assert not missing


def test_transition_rules_are_server_only_and_the_others_have_a_python_mirror() -> None:
    for rule in all_rules():
        assert (rule.check is None) == ("oldSelf" in rule.rule), rule.rule


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (api.CanaryStep, {}),
        (api.CanaryStep, {"setWeight": 10, "analysis": {}}),
        (api.Canary, {"steps": [{"setWeight": 30}, {"setWeight": 30}]}),
        (api.Canary, {"steps": [{"setWeight": 30}, {"pause": {}}, {"setWeight": 20}]}),
        (api.Canary, {"steps": [{"analysis": {}}]}),
        (api.ThresholdRange, {}),
        (api.ThresholdRange, {"min": 2, "max": 1}),
        (api.Autoscaling, {"minReplicas": 3, "maxReplicas": 2}),
        (api.SecretValueRef, {}),
        (api.SecretValueRef, {"secretRef": {"name": "a", "key": "b"}, "storeObject": "X"}),
        (api.PodDisruptionBudget, {}),
        (api.Kafka, {"bootstrapServers": "k:9092", "topicProvisioner": "strimzi"}),
        (api.Kafka, {"bootstrapServers": "k:9092", "strimzi": {"clusterName": "c"}}),
        (api.Kafka, {"bootstrapServers": "k:9092", "topics": [{"name": "a"}, {"name": "a"}]}),
        (
            api.PaymentServiceStatus,
            {
                "conditions": [
                    _c := {
                        "type": "Ready",
                        "status": "True",
                        "lastTransitionTime": "2025-01-01T00:00:00Z",
                        "reason": "Ok",
                        "message": "",
                    },
                    _c,
                ]
            },
        ),
    ],
)
def test_cross_field_rules_reject(model: type[api.ApiModel], data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(data)


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (api.CanaryStep, {"pause": {}}),
        (api.Canary, {"steps": [{"setWeight": 10}, {"pause": {}}, {"setWeight": 100}]}),
        (
            api.Canary,
            {
                "steps": [{"analysis": {}}],
                "analysis": {
                    "metrics": [
                        {
                            "name": "m",
                            "prometheus": {"address": "http://p:9090", "query": "up"},
                            "thresholdRange": {"max": 1},
                        }
                    ]
                },
            },
        ),
        (api.ThresholdRange, {"min": 1, "max": 1}),
        (api.Autoscaling, {"minReplicas": 3, "maxReplicas": 3}),
        (api.SecretValueRef, {"storeObject": "X"}),
        (api.PodDisruptionBudget, {"maxUnavailable": 0}),
        (
            api.Kafka,
            {
                "bootstrapServers": "a:1,b:2",
                "topicProvisioner": "strimzi",
                "strimzi": {"clusterName": "c"},
            },
        ),
    ],
)
def test_cross_field_rules_accept(model: type[api.ApiModel], data: dict[str, Any]) -> None:
    assert model.model_validate(data)


def test_store_object_must_be_synced_by_the_secret_store() -> None:
    store = {
        "backend": "csi",
        "provider": "vault",
        "vault": {"address": "https://vault:8200", "role": "payments"},
        "objects": [{"name": "DATABASE_URL", "remoteRef": "payments/db"}],
    }
    ok = _spec(database={"url": {"storeObject": "DATABASE_URL"}}, secretStore=store)
    assert api.PaymentServiceSpec.model_validate(ok).secret_store is not None
    bad = _spec(database={"url": {"storeObject": "OTHER"}}, secretStore=store)
    with pytest.raises(ValidationError, match=r"database\.url\.storeObject must name"):
        api.PaymentServiceSpec.model_validate(bad)
