"""The contract between the operator's builders and the runtime, without running either.

Every ``PAYMENT_*`` name the builders put in the pod is something the runtime reads: a
:class:`~payment_runtime.settings.Settings` field, or the env var the ``env`` secret provider
reads for a secret the settings name.  A rename on either side fails here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from payment_operator import api
from starlette.testclient import TestClient

from payment_runtime import cli, logs, migrations
from payment_runtime.adapters import kafka_relay, secrets
from payment_runtime.adapters.secrets import RuntimeSecrets
from payment_runtime.api.app import ROUTES, MetricsPortDispatch, create_app
from payment_runtime.api.auth import KeySource
from payment_runtime.settings import Settings
from tests.integration.runtime.helpers import Signer, settings_for
from tests.unit.builders.cases import CASE_IDS, CASES, sample
from tests.unit.runtime import operator_env

pytestmark = pytest.mark.unit

FIELD_ENV_NAMES = {operator_env.PREFIX + name.upper() for name in Settings.model_fields}
SECRET_NAME_FIELDS = [name for name in Settings.model_fields if name.startswith("secret_name_")]
#: A value for every secret env var the builders may emit.
TEST_SECRETS = {
    "PAYMENT_DATABASE_URL": "postgresql://u:pw-unit@db:5432/payments",
    "PAYMENT_STRIPE_SECRET_KEY": "sk_test_unit_contract",
    "PAYMENT_STRIPE_WEBHOOK_SECRET": "whsec_unit_contract",
    "PAYMENT_KAFKA_SASL_USERNAME": "kafka-user-unit",
    "PAYMENT_KAFKA_SASL_PASSWORD": "kafka-pw-unit-contract",
    "PAYMENT_REDIS_URL": "redis://:redis-pw-unit@redis:6380/0",
}
#: The secrets only the runtime container gets: the migration Job never talks to Kafka
#: or Redis.
KAFKA_SECRET_ENV = {
    "PAYMENT_KAFKA_SASL_USERNAME",
    "PAYMENT_KAFKA_SASL_PASSWORD",
    "PAYMENT_REDIS_URL",
}


def _built(case: Any) -> list[dict[str, Any]]:
    return operator_env.build_with_job(case.ps, case.ctx)


def _user_env_names(case: Any) -> set[str]:
    return {var.name for var in case.ps.spec.env or ()}


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_every_payment_name_the_builders_emit_is_read_by_the_runtime(case, monkeypatch):
    manifests = _built(case)
    env = operator_env.resolve_env(manifests, TEST_SECRETS)
    settings = operator_env.settings_from(env, monkeypatch)
    secret_env = {operator_env.PREFIX + getattr(settings, f) for f in SECRET_NAME_FIELDS}
    emitted = {n for n in env if n.startswith(operator_env.PREFIX)} - _user_env_names(case)
    assert emitted, "the builders emit no PAYMENT_* settings at all?"
    unknown = emitted - FIELD_ENV_NAMES - secret_env
    assert not unknown, f"the runtime reads none of {sorted(unknown)}"
    # Secrets are never settings fields: they must reach the runtime only as secrets.
    assert not operator_env.secret_env_names(manifests) & FIELD_ENV_NAMES
    assert operator_env.secret_env_names(manifests) <= secret_env


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_the_settings_the_builders_emit_parse_to_what_the_pod_declares(case, monkeypatch):
    manifests = _built(case)
    env = operator_env.resolve_env(manifests, TEST_SECRETS)
    settings = operator_env.settings_from(env, monkeypatch)
    container = operator_env.runtime_container(manifests)
    assert settings.port == operator_env.port(container, "http")
    assert settings.metrics_port == operator_env.port(container, "metrics")
    assert settings.secrets_provider == "env"
    paths = {route.path for route in ROUTES}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "http"
        assert container[probe]["httpGet"]["path"] in paths
    # Every value that names a setting is taken, not silently dropped or defaulted.
    for key, value in env.items():
        field = key.removeprefix(operator_env.PREFIX).lower()
        if field == "velocity_limits":
            parsed = [v.model_dump(exclude_none=True) for v in settings.velocity_limits]
            assert parsed == json.loads(value)
        elif key.startswith(operator_env.PREFIX) and field in Settings.model_fields:
            assert str(getattr(settings, field)).lower() == value.lower(), key


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_the_env_provider_finds_every_secret_the_pod_carries(case, monkeypatch):
    manifests = _built(case)
    env = operator_env.resolve_env(manifests, TEST_SECRETS)
    settings = operator_env.settings_from(env, monkeypatch)
    loaded = secrets.load_runtime_secrets(settings, secrets.EnvProvider(env))
    assert loaded.database_url == TEST_SECRETS["PAYMENT_DATABASE_URL"]
    assert loaded.stripe_api_key == TEST_SECRETS["PAYMENT_STRIPE_SECRET_KEY"]
    if case.ps.spec.stripe.webhook_secret is None:
        assert loaded.stripe_webhook_secret is None
    else:
        assert loaded.stripe_webhook_secret == TEST_SECRETS["PAYMENT_STRIPE_WEBHOOK_SECRET"]
    spec = case.ps.spec
    if spec.redis is None:
        assert not settings.risk_checks_enabled and loaded.redis_url is None
    else:
        assert settings.risk_checks_enabled
        assert loaded.redis_url == TEST_SECRETS["PAYMENT_REDIS_URL"]
        assert settings.risk_failure_mode == spec.redis.failure_mode
        assert len(settings.velocity_limits) == len(spec.velocity.limits if spec.velocity else [])
        if spec.rate_limit is not None:
            assert settings.rate_limit_requests == spec.rate_limit.requests


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_the_migration_job_runs_migrate_on_the_pods_database(case, monkeypatch):
    manifests = _built(case)
    migrate = operator_env.migrate_container(manifests)
    env = operator_env.resolve_env(manifests, TEST_SECRETS, migrate)
    pod_env = operator_env.resolve_env(manifests, TEST_SECRETS)
    assert env == {k: v for k, v in pod_env.items() if k not in KAFKA_SECRET_ENV}
    assert not any("kafka" in m["name"] for m in migrate["volumeMounts"])
    operator_env.settings_from(env, monkeypatch)  # the process environment of the container
    applied_to: list[str] = []
    monkeypatch.setattr(logs, "configure", lambda level: None)  # keep pytest's handlers
    monkeypatch.setattr(migrations, "migrate", lambda dsn: applied_to.append(dsn) or [])
    assert cli.main(migrate["args"]) == 0
    assert applied_to == [TEST_SECRETS["PAYMENT_DATABASE_URL"]]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_the_producer_gets_the_specs_kafka_security(case, monkeypatch):
    manifests = _built(case)
    env = operator_env.resolve_env(manifests, TEST_SECRETS)
    settings = operator_env.settings_from(env, monkeypatch)
    sasl = secrets.load_kafka_sasl(settings, secrets.EnvProvider(env))
    config = kafka_relay.security_config(settings, sasl)
    kafka = case.ps.spec.kafka
    security = kafka.security if kafka is not None else None
    if security is None:
        assert config == {"security.protocol": "PLAINTEXT"}
        return
    assert config["security.protocol"] == security.protocol
    if security.sasl is None:
        assert sasl is None and "sasl.password" not in config
    else:
        assert config["sasl.mechanism"] == security.sasl.mechanism
        assert config["sasl.username"] == TEST_SECRETS["PAYMENT_KAFKA_SASL_USERNAME"]
        assert config["sasl.password"] == TEST_SECRETS["PAYMENT_KAFKA_SASL_PASSWORD"]
    # Every TLS path is a file of the mounted projected volume, from the named Secret key.
    pod = next(m for m in manifests if m["kind"] == "Deployment")["spec"]["template"]["spec"]
    container = operator_env.runtime_container(manifests)
    files = {}
    for volume in pod["volumes"]:
        mount = next(
            (m for m in container["volumeMounts"] if m["name"] == volume["name"]), None
        )
        for source in volume.get("projected", {}).get("sources", ()):
            for item in source["secret"]["items"]:
                assert mount is not None and mount["readOnly"]
                files[f"{mount['mountPath']}/{item['path']}"] = (source["secret"]["name"],
                                                                 item["key"])
    paths = {k: v for k, v in config.items() if k.endswith(".location")}
    tls = security.tls
    if tls is None:
        assert paths == {} and files == {}
        return
    wanted = {"ssl.ca.location": tls.ca_secret_ref}
    if tls.cert_secret_ref is not None and tls.key_secret_ref is not None:
        wanted["ssl.certificate.location"] = tls.cert_secret_ref
        wanted["ssl.key.location"] = tls.key_secret_ref
    assert set(paths) == set(wanted)
    for option, ref in wanted.items():
        assert files[paths[option]] == (ref.name, ref.key), option


def test_the_cases_cover_every_kafka_security_shape():
    shapes = set()
    for case in CASES:
        kafka = case.ps.spec.kafka
        security = kafka.security if kafka is not None else None
        if security is not None:
            mtls = security.tls is not None and security.tls.cert_secret_ref is not None
            shapes.add((security.protocol, mtls))
    assert {("SASL_SSL", False), ("SASL_PLAINTEXT", False), ("SSL", True)} <= shapes


def test_the_samples_cover_webhooks_on_and_off():
    # The integration contract test runs minimal (no webhook secret) and aws (with one).
    no_webhook = operator_env.secret_env_names(operator_env.build_sample("minimal"))
    with_webhook = operator_env.secret_env_names(operator_env.build_sample("aws"))
    assert "PAYMENT_STRIPE_WEBHOOK_SECRET" not in no_webhook
    assert "PAYMENT_STRIPE_WEBHOOK_SECRET" in with_webhook


def test_missing_required_secrets_still_fail_at_start():
    settings = Settings()
    provider = secrets.EnvProvider({"PAYMENT_DATABASE_URL": "postgresql://x"})
    with pytest.raises(secrets.SecretNotFound):
        secrets.load_runtime_secrets(settings, provider)


def _app(webhook_secret: str | None):
    return create_app(
        settings_for("http://127.0.0.1:9"),
        RuntimeSecrets("postgresql://x", "sk_test_x", webhook_secret),
    )


def test_webhooks_are_disabled_cleanly_without_a_webhook_secret():
    client = TestClient(_app(None))  # no lifespan: refusals happen before the database
    r = client.post("/webhooks/stripe", content=b"{}", headers={"Stripe-Signature": "t=1,v1=0"})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "webhooks_disabled"
    assert 'result="disabled"' in client.get("/metrics").text
    # With a secret, the same request reaches signature verification.
    client = TestClient(_app("whsec_x"))
    r = client.post("/webhooks/stripe", content=b"{}", headers={"Stripe-Signature": "t=1,v1=0"})
    assert r.json()["error"]["code"] == "invalid_signature"


PROVIDERS = "/api/v1/payments/providers/NL"


def _sample_app(sample: str, monkeypatch, key_source: KeySource | None = None):
    """The runtime app with exactly the settings the builders give a sample's pod."""
    env = operator_env.resolve_env(operator_env.build_sample(sample), TEST_SECRETS)
    settings = operator_env.settings_from(env, monkeypatch)
    secrets_ = RuntimeSecrets("postgresql://x", "sk_test_x", None)
    return settings, env, TestClient(create_app(settings, secrets_, key_source=key_source))


def test_the_samples_cover_auth_on_and_off():
    # The integration contract test runs minimal (no spec.auth) and aws (with it).
    assert api.parse(sample("minimal")).spec.auth is None
    assert api.parse(sample("aws")).spec.auth is not None


def test_without_spec_auth_the_payment_api_is_refused_but_the_service_runs(monkeypatch):
    # minimal has no spec.auth: the builders emit no PAYMENT_JWKS_URL.
    settings, env, client = _sample_app("minimal", monkeypatch)
    assert "PAYMENT_JWKS_URL" not in env
    assert settings.jwks_url is None
    r = client.get(PROVIDERS, headers={"Authorization": "Bearer a.b.c"})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "auth_not_configured"
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize("name", ["aws", "full"])
def test_with_spec_auth_the_runtime_verifies_tokens_against_the_spec(name, monkeypatch):
    auth = api.parse(sample(name)).spec.auth
    assert auth is not None
    settings, _, client = _sample_app(name, monkeypatch)
    assert (settings.jwks_url, settings.jwt_issuer, settings.jwt_audience) == (
        auth.jwks_url,
        auth.issuer,
        auth.audience,
    )
    # Auth is configured: no more 503, a call without a token is unauthenticated.
    # (No request here reaches the https JWKS: the token is refused before any key lookup.)
    r = client.get(PROVIDERS)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthenticated"
    r = client.get(PROVIDERS, headers={"Authorization": "Bearer a.b.c"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_token"

    # The same settings with the identity provider's keys injected: a token for the spec's
    # issuer and audience is accepted; one for another issuer or audience is not.
    signer = Signer()
    _, _, client = _sample_app(name, monkeypatch, key_source=KeySource(jwks=signer.jwks))

    def call(**claims: str) -> Any:
        token = signer.token("payment_viewer", **claims)
        return client.get(PROVIDERS, headers={"Authorization": f"Bearer {token}"})

    accepted = call(iss=auth.issuer, aud=auth.audience)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["country"] == "NL"
    for claims in ({"iss": auth.issuer}, {"aud": auth.audience}):  # the test's defaults
        refused = call(**claims)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_token"


def test_the_metrics_port_serves_only_metrics():
    app = _app("whsec_x")
    # TestClient connects to "testserver:80": make 80 the metrics port, then another one.
    on_metrics_port = TestClient(MetricsPortDispatch(app, 80))
    assert on_metrics_port.get("/metrics").status_code == 200
    assert "payment_requests_total" in on_metrics_port.get("/metrics").text
    r = on_metrics_port.get("/health")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    on_main_port = TestClient(MetricsPortDispatch(app, 9090))
    assert on_main_port.get("/health").json() == {"status": "ok"}
    r = on_main_port.get("/metrics")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
