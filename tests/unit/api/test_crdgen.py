"""The generated CRD: structural, self-describing, up to date, and in step with the models."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from payment_operator.api import crdgen, parse
from payment_operator.api import v1alpha1 as api

from tests.unit.api import schema_tools
from tests.unit.api.manifests import INVALID, SAMPLES, load_invalid, load_sample

pytestmark = pytest.mark.unit

FORBIDDEN_KEYS = {"$ref", "$defs", "title", "oneOf", "allOf", "not", "const", "nullable"}


def nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its dotted path (``[]`` for items, ``{}`` for map values)."""
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from nodes(sub, f"{path}.{name}")
    if "items" in schema:
        yield from nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}{{}}")


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return crdgen.crd()


@pytest.fixture(scope="module")
def schema(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_checked_in_crd_is_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    assert crdgen.main(["--check"]) == 0, capsys.readouterr().out


def test_check_reports_a_stale_file_with_a_diff(tmp_path, capsys) -> None:
    stale = tmp_path / "crd.yaml"
    stale.write_text(crdgen.render().replace("paysvc", "ps"))
    assert crdgen.main(["--check", "--output", str(stale)]) == 1
    out = capsys.readouterr().out
    assert "-    - ps" in out and "+    - paysvc" in out


def test_generate_writes_the_file(tmp_path) -> None:
    target = tmp_path / "out" / "crd.yaml"
    assert crdgen.main(["--output", str(target)]) == 0
    assert yaml.safe_load(target.read_text()) == crdgen.crd()


def test_checked_in_file_is_the_yaml_of_the_crd() -> None:
    assert yaml.safe_load(crdgen.DEFAULT_OUTPUT.read_text()) == crdgen.crd()


def test_identity(crd: dict[str, Any]) -> None:
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "paymentservices.paydeck.dev"
    assert spec["group"] == "paydeck.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "PaymentService"
    assert spec["names"]["shortNames"] == ["paysvc"]
    assert set(spec["names"]["categories"]) >= {"paydeck", "all"}
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)


def test_subresources(crd: dict[str, Any]) -> None:
    subresources = crd["spec"]["versions"][0]["subresources"]
    assert subresources["status"] == {}
    assert subresources["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }


def test_printer_columns(crd: dict[str, Any]) -> None:
    columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    default = [(c["name"], c["jsonPath"]) for c in columns if not c.get("priority")]
    assert default == [
        ("Phase", ".status.phase"),
        ("Ready", ".status.readyReplicas"),
        ("Stable", ".status.stableRevision"),
        ("Canary", ".status.canaryRevision"),
        ("Step", ".status.canary.stepIndex"),
        ("Weight", ".status.canary.actualWeight"),
        ("Age", ".metadata.creationTimestamp"),
    ]


def test_printer_column_paths_exist_in_the_schema(crd, schema) -> None:
    paths = {path for path, _ in nodes(schema)}
    for column in crd["spec"]["versions"][0]["additionalPrinterColumns"]:
        if column["jsonPath"].startswith(".metadata"):
            continue
        assert column["jsonPath"] in paths


def test_schema_is_structural(schema: dict[str, Any]) -> None:
    for path, node in nodes(schema):
        assert not FORBIDDEN_KEYS & node.keys(), path
        if node.get("x-kubernetes-int-or-string"):
            assert "type" not in node and "anyOf" not in node, path
        else:
            assert node.get("type") in {"object", "array", "string", "integer", "number", "boolean"}
            assert "anyOf" not in node, path
        assert node.get("additionalProperties") is not False, path
        if "properties" in node:
            assert "additionalProperties" not in node, path
        assert "default" not in node or node["default"] is not None, path


def test_every_field_has_a_description(schema: dict[str, Any]) -> None:
    undescribed = [
        path
        for path, node in nodes(schema)
        if path.startswith((".spec", ".status"))
        and not path.endswith(("[]", "{}"))
        and not node.get("description")
    ]
    assert not undescribed


def test_lists_and_strings_are_bounded_for_cel_cost(schema: dict[str, Any]) -> None:
    for path, node in nodes(schema["properties"]["spec"], ".spec"):
        if node.get("type") == "array":
            assert "maxItems" in node, path
        if node.get("type") == "object" and "additionalProperties" in node:
            assert "maxProperties" in node, path
        if node.get("type") == "string":
            assert "maxLength" in node or "enum" in node, path


def test_spec_defaults_are_in_the_schema(schema: dict[str, Any]) -> None:
    spec = schema["properties"]["spec"]["properties"]
    assert spec["replicas"]["default"] == 2
    assert spec["rollout"]["default"] == {}
    assert spec["service"]["default"] == {}
    canary = spec["rollout"]["properties"]["canary"]["properties"]
    assert canary["maxSurge"]["default"] == 1
    analysis = canary["analysis"]["properties"]
    assert analysis["onNoData"] == {
        "description": analysis["onNoData"]["description"],
        "type": "string",
        "default": "inconclusive",
        "enum": ["inconclusive", "fail", "pass"],
    }
    assert set(schema["properties"]["spec"]["required"]) == {"image", "stripe", "database"}


def test_durations_and_images_have_patterns(schema: dict[str, Any]) -> None:
    spec = schema["properties"]["spec"]
    assert spec["properties"]["image"]["pattern"] == api.IMAGE_PATTERN
    durations = [p for p, n in nodes(spec, ".spec") if n.get("pattern") == api.DURATION_PATTERN]
    assert ".spec.rollout.canary.steps[].pause.duration" in durations
    assert ".spec.rollout.canary.analysis.interval" in durations


def test_cel_rules_are_emitted_where_the_models_declare_them(schema: dict[str, Any]) -> None:
    by_path = {
        path: [rule["message"] for rule in node.get("x-kubernetes-validations", [])]
        for path, node in nodes(schema)
    }
    assert any("strictly increase" in m for m in by_path[".spec.rollout.canary"])
    assert any("exactly one of setWeight" in m for m in by_path[".spec.rollout.canary.steps[]"])
    assert any(
        "min must not exceed" in m
        for m in by_path[".spec.rollout.canary.analysis.metrics[].thresholdRange"]
    )
    assert any("minReplicas" in m for m in by_path[".spec.autoscaling"])
    assert any("strimzi" in m for m in by_path[".spec.kafka"])
    assert any("partitions cannot be decreased" in m for m in by_path[".spec.kafka.topics[]"])
    assert any("azure" in m for m in by_path[".spec.secretStore"])
    assert any("exactly one of secretRef" in m for m in by_path[".spec.database.url"])
    assert dict(nodes(schema))[".metadata.name"]["maxLength"] == 40
    for path, node in nodes(schema):
        for rule in node.get("x-kubernetes-validations", []):
            assert set(rule) <= {"rule", "message", "fieldPath", "reason"}, path
            assert rule["rule"] and rule["message"], path
            field_path = rule.get("fieldPath", "")
            assert not field_path or f"{path}{field_path}".replace("[]", "") in {
                p.replace("[]", "") for p, _ in nodes(schema)
            }, (path, field_path)


def test_list_maps(schema: dict[str, Any]) -> None:
    keyed = {
        path: node["x-kubernetes-list-map-keys"]
        for path, node in nodes(schema)
        if node.get("x-kubernetes-list-type") == "map"
    }
    assert keyed == {
        ".spec.env": ["name"],
        ".spec.kafka.topics": ["name"],
        ".spec.secretStore.objects": ["name"],
        ".spec.rollout.canary.analysis.metrics": ["name"],
        ".spec.rollout.canary.analysis.metrics[].web.headers": ["name"],
        ".status.conditions": ["type"],
        ".status.canary.analysis.metrics": ["name"],
    }
    for path, keys in keyed.items():
        items = dict(nodes(schema))[f"{path}[]"]
        assert set(keys) <= set(items.get("required", [])), path


def test_status_shape(schema: dict[str, Any]) -> None:
    status = schema["properties"]["status"]["properties"]
    assert status["kopf"]["type"] == "object"
    assert status["kopf"]["x-kubernetes-preserve-unknown-fields"] is True
    assert status["observedGeneration"]["format"] == "int64"
    assert status["replicas"]["type"] == "integer"
    assert status["selector"]["type"] == "string"
    condition = status["conditions"]["items"]
    assert set(condition["properties"]) == {
        "type",
        "status",
        "observedGeneration",
        "lastTransitionTime",
        "reason",
        "message",
    }
    assert set(condition["required"]) == {
        "type",
        "status",
        "lastTransitionTime",
        "reason",
        "message",
    }
    assert condition["properties"]["observedGeneration"]["format"] == "int64"
    assert condition["properties"]["lastTransitionTime"]["format"] == "date-time"
    assert condition["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert status["phase"]["enum"] == ["Pending", "Progressing", "Healthy", "Paused", "Degraded"]


def test_model_defaults_match_schema_defaults() -> None:
    """Server-side defaulting of a sparse object gives what the models default to."""
    for path in SAMPLES:
        sample = load_sample(path)
        assert parse(schema_tools.apply_defaults(sample)) == parse(sample), path.stem


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_samples_pass_the_openapi_schema(path) -> None:
    sample = schema_tools.apply_defaults(load_sample(path))
    errors = list(schema_tools.validator().iter_errors(sample))
    assert not errors


def test_schema_level_invalid_manifests_fail_the_openapi_schema() -> None:
    failing = [
        p.stem
        for p in INVALID
        if not load_invalid(p).is_update
        and list(schema_tools.validator().iter_errors(load_invalid(p).manifest))
    ]
    # Pattern, bound, enum and required mistakes are caught without CEL.
    assert {
        "image-missing",
        "image-without-tag",
        "replicas-negative",
        "canary-weight-over-100",
        "kafka-unknown-provisioner",
        "analysis-metric-without-threshold",
        "canary-pause-bad-duration",
        "resources-bad-quantity",
    } <= set(failing)
