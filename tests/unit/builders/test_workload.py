"""ServiceAccount, ConfigMap and Deployment: the choices the golden files only show."""

from __future__ import annotations

from typing import Any

import pytest
from payment_operator.api import PaymentService, parse
from payment_operator.builders import meta, migrations, workload

from tests.unit.builders.cases import minimal_body, sample, with_stored_env

pytestmark = pytest.mark.unit


def ps(**spec: Any) -> PaymentService:
    return parse(minimal_body(**spec))


def env_of(p: PaymentService) -> dict[str, dict[str, Any]]:
    container = _deployment(p)["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e for e in container["env"]}


def test_spec_env_never_overrides_a_runtime_setting() -> None:
    # An object stored before the CRD refused PAYMENT_* names in spec.env keeps them
    # (validation ratcheting): the builder drops them, in any case, and keeps the rest.
    auth = {"jwksUrl": "https://idp.test/jwks", "issuer": "https://idp.test/", "audience": "a"}
    stored = with_stored_env(
        ps(auth=auth),
        {
            "PAYMENT_STRIPE_WEBHOOK_TOLERANCE_SECONDS": "0",
            "payment_jwt_leeway_seconds": "999999",
            "Payment_Jwks_Url": "http://evil.test/jwks",
            "PAYMENT_STRIPE_SECRET_KEY": "sk_live_smuggled",
            "LOG_FORMAT": "json",
        },
    )
    pod, job = _pod(stored), _job(stored)["spec"]["template"]["spec"]
    containers = pod["containers"] + pod.get("initContainers", []) + job["containers"]
    for container in containers:
        env = container["env"]
        assert {"name": "LOG_FORMAT", "value": "json"} in env
        # What is left of PAYMENT_* is the operator's own secret wiring, never a value.
        assert all("valueFrom" in e for e in env if e["name"].upper().startswith("PAYMENT_"))
    text = str([_deployment(stored), _job(stored)])
    assert "sk_live_smuggled" not in text and "evil.test" not in text and "999999" not in text


def test_spec_env_with_a_runtime_setting_is_refused_by_the_model() -> None:
    with pytest.raises(ValueError, match=r"(?s)spec.env.0.*name: PAYMENT_\* variables are"):
        ps(env=[{"name": "payment_jwt_leeway_seconds", "value": "999999"}])


def test_service_account_without_cloud_identity_has_no_annotations_nor_token() -> None:
    sa = workload.service_account(ps())
    assert "annotations" not in sa["metadata"]
    assert sa["automountServiceAccountToken"] is False


def test_azure_workload_identity_annotates_the_account_and_labels_the_pods() -> None:
    p = parse(sample("full"))
    sa = workload.service_account(p)
    assert sa["metadata"]["annotations"]["azure.workload.identity/client-id"] == (
        "0e3f1a2b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"
    )
    labels = _deployment(p)["spec"]["template"]["metadata"]["labels"]
    assert labels["azure.workload.identity/use"] == "true"


def test_irsa_annotates_the_account_with_the_role() -> None:
    p = parse(sample("aws"))
    annotations = workload.service_account(p)["metadata"]["annotations"]
    assert annotations == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/payments-us-secrets"
    }
    labels = _deployment(p)["spec"]["template"]["metadata"]["labels"]
    assert "azure.workload.identity/use" not in labels


def test_secret_refs_point_at_the_users_secret_and_store_objects_at_the_synced_one() -> None:
    env = env_of(ps(database={"url": {"storeObject": "DB"}}, secretStore=_store("DB")))
    assert env["PAYMENT_STRIPE_SECRET_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "stripe", "key": "key"}
    }
    assert env["PAYMENT_DATABASE_URL"]["valueFrom"] == {
        "secretKeyRef": {"name": "pay-secrets", "key": "DB"}
    }
    assert "PAYMENT_STRIPE_WEBHOOK_SECRET" not in env


def _store(*names: str, backend: str = "external-secrets") -> dict[str, Any]:
    return {
        "backend": backend,
        "provider": "aws-secrets-manager",
        "aws": {"region": "eu-west-1", "roleArn": "arn:aws:iam::123456789012:role/r"},
        "objects": [{"name": n, "remoteRef": n.lower()} for n in names],
    }


def test_the_runtime_is_told_the_secret_names_the_env_vars_carry() -> None:
    data = workload.config_data(ps())
    for env_name, setting in [
        ("PAYMENT_STRIPE_SECRET_KEY", "PAYMENT_SECRET_NAME_STRIPE_API_KEY"),
        ("PAYMENT_STRIPE_WEBHOOK_SECRET", "PAYMENT_SECRET_NAME_STRIPE_WEBHOOK_SECRET"),
        ("PAYMENT_DATABASE_URL", "PAYMENT_SECRET_NAME_DATABASE_URL"),
    ]:
        assert "PAYMENT_" + data[setting] == env_name
    assert data["PAYMENT_SECRETS_PROVIDER"] == "env"


def test_config_map_holds_settings_from_the_spec() -> None:
    data = workload.config_data(
        ps(
            stripe={
                "apiVersion": "2024-06-20",
                "apiBase": "http://stripe-mock:12111",
                "secretKey": {"secretRef": {"name": "s", "key": "k"}},
            },
            database={"url": {"secretRef": {"name": "d", "key": "u"}}, "poolSize": 1},
            kafka={"bootstrapServers": "k:9092", "topics": [{"name": "a"}, {"name": "b"}]},
        )
    )
    assert data["PAYMENT_STRIPE_API_VERSION"] == "2024-06-20"
    assert data["PAYMENT_STRIPE_API_BASE"] == "http://stripe-mock:12111"
    assert (data["PAYMENT_DB_POOL_MIN"], data["PAYMENT_DB_POOL_MAX"]) == ("1", "1")
    assert data["PAYMENT_KAFKA_BOOTSTRAP_SERVERS"] == "k:9092"
    assert data["PAYMENT_KAFKA_TOPIC"] == "a"
    assert "PAYMENT_KAFKA_TOPIC" not in workload.config_data(ps())


AUTH = {
    "jwksUrl": "https://idp.example.com/.well-known/jwks.json",
    "issuer": "https://idp.example.com/",
    "audience": "api://payments",
}


def test_auth_settings_reach_the_config_map_only_when_set() -> None:
    data = workload.config_data(ps(auth=AUTH))
    assert data["PAYMENT_JWKS_URL"] == AUTH["jwksUrl"]
    assert data["PAYMENT_JWT_ISSUER"] == AUTH["issuer"]
    assert data["PAYMENT_JWT_AUDIENCE"] == AUTH["audience"]
    # Without spec.auth the runtime keeps its own defaults and disables the payment API.
    assert not {"PAYMENT_JWKS_URL", "PAYMENT_JWT_ISSUER", "PAYMENT_JWT_AUDIENCE"} & set(
        workload.config_data(ps())
    )


def test_an_auth_change_rolls_the_pods() -> None:
    other = {**AUTH, "audience": "api://payments-2"}
    assert workload.revision(ps(auth=AUTH)) != workload.revision(ps(auth=other))
    assert workload.revision(ps(auth=AUTH)) != workload.revision(ps())


def test_a_config_change_changes_the_template_hash_and_the_revision() -> None:
    a, b = ps(), ps(database={"url": {"secretRef": {"name": "db", "key": "url"}}, "poolSize": 5})
    annotations = [workload.pod_template(p)["metadata"]["annotations"] for p in (a, b)]
    assert annotations[0] != annotations[1]
    assert workload.revision(a) != workload.revision(b)


def test_empty_env_values_are_emitted_as_the_api_server_returns_them() -> None:
    env = env_of(ps(env=[{"name": "EMPTY", "value": ""}, {"name": "SET", "value": "x"}]))
    assert env["EMPTY"] == {"name": "EMPTY"}
    assert env["SET"] == {"name": "SET", "value": "x"}


def test_resources_default_to_small_requests_and_quantities_are_strings() -> None:
    assert workload.resources(ps()) == {"requests": {"cpu": "100m", "memory": "128Mi"}}
    assert workload.resources(ps(resources={"limits": {"cpu": 2}})) == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "2"},
    }


@pytest.mark.parametrize(("surge", "unavailable"), [(0, 1), (1, 0), (3, 0)])
def test_rolling_update_never_sets_both_limits_to_zero(surge: int, unavailable: int) -> None:
    p = ps(rollout={"canary": {"maxSurge": surge, "steps": [{"setWeight": 50}]}})
    strategy = _deployment(p)["spec"]["strategy"]
    assert strategy["rollingUpdate"] == {"maxSurge": surge, "maxUnavailable": unavailable}


def test_deployment_takes_replicas_and_deadline_from_the_spec() -> None:
    spec = _deployment(ps(replicas=5, rollout={"progressDeadlineSeconds": 120}))["spec"]
    assert (spec["replicas"], spec["progressDeadlineSeconds"]) == (5, 120)
    assert _deployment(ps())["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 1


def test_csi_backend_mounts_the_secret_provider_class_volume() -> None:
    p = ps(database={"url": {"storeObject": "DB"}}, secretStore=_store("DB", backend="csi"))
    pod = _deployment(p)["spec"]["template"]["spec"]
    [csi] = [v for v in pod["volumes"] if "csi" in v]
    assert csi["csi"]["volumeAttributes"] == {"secretProviderClass": "pay"}
    mounts = pod["containers"][0]["volumeMounts"]
    assert {"name": csi["name"], "mountPath": "/mnt/secrets-store", "readOnly": True} in mounts
    plain = _deployment(ps())["spec"]["template"]["spec"]
    assert all("csi" not in v for v in plain["volumes"])


def test_probes_ports_and_container_shape() -> None:
    container = workload.container(ps())
    assert container["name"] == meta.CONTAINER_NAME
    assert container["args"] == ["serve"]
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [
        ("http", 8080),
        ("metrics", 9090),
    ]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    assert container["envFrom"] == [{"configMapRef": {"name": "pay-config"}}]


def _deployment(p: PaymentService) -> dict[str, Any]:
    return workload.deployment(p, workload.revision(p), p.spec.replicas)


def _pod(p: PaymentService) -> dict[str, Any]:
    pod: dict[str, Any] = _deployment(p)["spec"]["template"]["spec"]
    return pod


def _job(p: PaymentService) -> dict[str, Any]:
    return migrations.migration_job(p)


def test_migrations_run_in_a_job_per_revision_with_the_runtime_image() -> None:
    p = ps(image="ghcr.io/paydeck/payment-runtime:2.0.0")
    job = _job(p)
    assert job["metadata"]["name"] == f"pay-migrate-{workload.revision(p)}"
    [migrate] = job["spec"]["template"]["spec"]["containers"]
    assert migrate == workload.migrate_container(p)
    assert migrate["name"] == "migrate" != meta.CONTAINER_NAME
    assert migrate["image"] == "ghcr.io/paydeck/payment-runtime:2.0.0"
    assert "command" not in migrate  # the image's entrypoint, payment-runtime
    assert migrate["args"] == ["migrate"]
    # It runs to completion: no ports, no probes.
    assert not {"ports", "startupProbe", "livenessProbe", "readinessProbe"} & set(migrate)
    assert "initContainers" not in _pod(p)
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "pay"
    # The Job's pods are never selected by the Service (or counted by the PDB).
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert not set(meta.selector_labels(p).items()) <= set(labels.items())


def test_job_takes_its_limits_from_the_spec() -> None:
    url = {"secretRef": {"name": "db", "key": "url"}}
    spec = _job(ps(database={"url": url, "migrations": {"timeoutSeconds": 60,
                                                         "backoffLimit": 3}}))["spec"]
    assert spec["backoffLimit"] == 3 and spec["activeDeadlineSeconds"] == 60
    assert spec["ttlSecondsAfterFinished"] == migrations.TTL_SECONDS_AFTER_FINISHED


def test_migration_job_settings_do_not_roll_the_pods() -> None:
    # timeoutSeconds and backoffLimit belong to the migration Job, not to the pods.
    url = {"secretRef": {"name": "db", "key": "url"}}
    tuned = ps(database={"url": url, "migrations": {"timeoutSeconds": 60, "backoffLimit": 3}})
    assert workload.revision(tuned) == workload.revision(ps())


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {
            "env": [{"name": "LOG_LEVEL", "value": "debug"}, {"name": "EMPTY", "value": ""}],
            "stripe": {
                "secretKey": {"storeObject": "STRIPE"},
                "webhookSecret": {"secretRef": {"name": "hook", "key": "secret"}},
            },
            "database": {"url": {"storeObject": "DB"}},
            "secretStore": _store("STRIPE", "DB", backend="csi"),
            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "1Gi"}},
        },
    ],
    ids=["minimal", "store-csi-env-resources"],
)
def test_the_migration_job_gets_the_runtime_containers_environment(spec: dict[str, Any]) -> None:
    p = ps(**spec)
    [migrate] = _job(p)["spec"]["template"]["spec"]["containers"]
    [runtime] = _pod(p)["containers"]
    # The same ConfigMap and the same secretKeyRefs: migrate finds PAYMENT_DATABASE_URL
    # (and everything else) exactly where serve does.
    assert migrate["envFrom"] == runtime["envFrom"]
    assert migrate["env"] == runtime["env"]
    assert "PAYMENT_DATABASE_URL" in {var["name"] for var in migrate["env"]}
    assert migrate["securityContext"] == runtime["securityContext"]
    assert migrate["volumeMounts"] == runtime["volumeMounts"]
    # The runtime's resources: quota fits it whenever it fits one more pod.
    assert migrate["resources"] == runtime["resources"]


def test_pods_learn_their_revision_from_their_own_label() -> None:
    p = ps()
    want = {"name": "PAYMENT_REVISION",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['paydeck.dev/revision']"}}}
    for spec, labels in (
        (_pod(p), workload.pod_template(p)["metadata"]["labels"]),
        (_job(p)["spec"]["template"]["spec"], _job(p)["spec"]["template"]["metadata"]["labels"]),
    ):
        [container] = spec["containers"]
        assert want in container["env"]
        assert labels[meta.LABEL_REVISION] == workload.revision(p)
