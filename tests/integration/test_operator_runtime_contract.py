"""The operator's pod, for real: its ``migrate`` init container, then its runtime container, as
subprocesses of the command (the image's entrypoint, ``payment-runtime``, with the container's
args) and environment the builders give each container (ConfigMap + env, secretKeyRefs
replaced by test values), plus PATH and HOME.

The init container runs with exactly that environment: it is what brings the schema to the
version ``/health/ready`` requires. The runtime container's has overrides, each through the
very setting name the builders emit:
- ``PAYMENT_PORT`` / ``PAYMENT_METRICS_PORT``: the builders hard-code 8080 / 9090; the test
  uses free ports instead, so parallel runs cannot collide.
- ``PAYMENT_STRIPE_API_BASE``: stripe-mock (the samples set none).
- ``PAYMENT_KAFKA_BOOTSTRAP_SERVERS``: the test broker, for samples with Kafka (the sample's
  brokers do not exist here; the in-process relay then really connects).
- ``PAYMENT_JWKS_URL``: a ``file://`` JWKS of a test key, for samples with ``spec.auth`` (the
  sample's identity provider is not reachable here). The issuer and audience stay the
  sample's: a token minted for them must be accepted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from payment_operator import api

from tests.fixtures._process import free_port, tail, wait_until
from tests.integration.runtime.helpers import Signer
from tests.unit.builders.cases import sample as sample_body
from tests.unit.runtime import operator_env

pytestmark = pytest.mark.integration

RUNTIME = str(Path(sys.executable).parent / "payment-runtime")
START_TIMEOUT = 60.0
PROVIDERS = "/api/v1/payments/providers/NL"


def _with_password(dsn: str, password: str) -> str:
    # The fixture's server trusts loopback: the password is ignored by the server, but it
    # is a secret the runtime must never log.
    scheme, rest = dsn.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{password}@{host}"


def _run(args: list[str], env: dict[str, str], log: Path, **kwargs: Any) -> Any:
    with log.open("ab") as out:
        return subprocess.run(
            [RUNTIME, *args], env=env, stdout=out, stderr=subprocess.STDOUT, check=False, **kwargs
        )


@pytest.mark.parametrize("sample", ["minimal", "aws"])
def test_the_runtime_serves_with_the_env_the_operator_builds(
    sample, request, postgres, stripe_mock, tmp_path
):
    manifests = operator_env.build_sample(sample)
    init = operator_env.migrate_container(manifests)
    container = operator_env.runtime_container(manifests)
    for c in (init, container):
        assert "command" not in c  # the image's entrypoint, payment-runtime, runs
    assert (init["args"], container["args"]) == (["migrate"], ["serve"])
    assert operator_env.port(container, "metrics") is not None

    token = uuid.uuid4().hex[:12]
    dsn = _with_password(postgres.new_database(prefix="contract"), f"pw-contract-{token}")
    test_secrets = {
        "PAYMENT_DATABASE_URL": dsn,
        "PAYMENT_STRIPE_SECRET_KEY": f"sk_test_contract_{token}",
        "PAYMENT_STRIPE_WEBHOOK_SECRET": f"whsec_contract_{token}",
    }
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    init_env = {**operator_env.resolve_env(manifests, test_secrets, init), **base}
    env = operator_env.resolve_env(manifests, test_secrets)
    http_port, metrics_port = free_port(), free_port()
    assert env["PAYMENT_PORT"] == str(operator_env.port(container, "http"))
    assert env["PAYMENT_METRICS_PORT"] == str(operator_env.port(container, "metrics"))
    env["PAYMENT_PORT"], env["PAYMENT_METRICS_PORT"] = str(http_port), str(metrics_port)
    env.setdefault("PAYMENT_STRIPE_API_BASE", stripe_mock.api_base)
    if "PAYMENT_KAFKA_BOOTSTRAP_SERVERS" in env:
        env["PAYMENT_KAFKA_BOOTSTRAP_SERVERS"] = request.getfixturevalue("kafka").bootstrap_servers
    env.update(base)
    has_webhook_secret = "PAYMENT_STRIPE_WEBHOOK_SECRET" in env
    assert has_webhook_secret == (sample == "aws")
    auth = api.parse(sample_body(sample)).spec.auth
    assert (auth is not None) == (sample == "aws")
    signer = Signer()
    if auth is not None:
        assert env["PAYMENT_JWKS_URL"] == auth.jwks_url
        assert (env["PAYMENT_JWT_ISSUER"], env["PAYMENT_JWT_AUDIENCE"]) == (
            auth.issuer,
            auth.audience,
        )
        jwks = tmp_path / "jwks.json"
        jwks.write_text(json.dumps(signer.jwks))
        env["PAYMENT_JWKS_URL"] = f"file://{jwks}"
    else:
        assert "PAYMENT_JWKS_URL" not in env

    log = tmp_path / "runtime.log"
    # The kubelet starts the runtime container only once the init container exited 0.
    migrate = _run(init["args"], init_env, log, timeout=120)
    assert migrate.returncode == 0, tail(log)

    with log.open("ab") as out:
        serve = subprocess.Popen(
            [RUNTIME, *container["args"]],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    main = f"http://127.0.0.1:{http_port}"
    metrics = f"http://127.0.0.1:{metrics_port}"
    try:
        wait_until(
            lambda: httpx.get(f"{main}/health/ready", timeout=2).status_code == 200,
            what="payment-runtime serve",
            timeout=START_TIMEOUT,
            process=serve,
            log=log,
        )
        assert httpx.get(f"{main}/health").json() == {"status": "ok"}
        ready = httpx.get(f"{main}/health/ready").json()
        assert ready["status"] == "ready"
        assert ready["schema_version"] == ready["expected_version"] > 0

        webhook = httpx.post(
            f"{main}/webhooks/stripe", content=b"{}", headers={"Stripe-Signature": "t=1,v1=00"}
        )
        if has_webhook_secret:
            assert webhook.status_code == 400
            assert webhook.json()["error"]["code"] == "invalid_signature"
        else:
            assert webhook.status_code == 404
            assert webhook.json()["error"]["code"] == "webhooks_disabled"

        if auth is None:
            token = signer.token("payment_viewer")
            refused = httpx.get(f"{main}{PROVIDERS}", headers={"Authorization": f"Bearer {token}"})
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "auth_not_configured"
        else:
            anonymous = httpx.get(f"{main}{PROVIDERS}")
            assert anonymous.status_code == 401
            assert anonymous.json()["error"]["code"] == "unauthenticated"
            good = signer.token("payment_viewer", iss=auth.issuer, aud=auth.audience)
            accepted = httpx.get(f"{main}{PROVIDERS}", headers={"Authorization": f"Bearer {good}"})
            assert accepted.status_code == 200, accepted.text
            assert accepted.json()["country"] == "NL"
            other = signer.token("payment_viewer", iss=auth.issuer, aud="someone-else")
            refused = httpx.get(f"{main}{PROVIDERS}", headers={"Authorization": f"Bearer {other}"})
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "invalid_token"

        scraped = httpx.get(f"{metrics}/metrics", timeout=5)
        assert scraped.status_code == 200
        assert scraped.headers["content-type"].startswith("text/plain")
        assert "payment_requests_total" in scraped.text
        # The webhook call above was counted by the same app the metrics port exposes.
        assert "stripe_webhook_events_total{" in scraped.text
        assert httpx.get(f"{metrics}/health").status_code == 404  # only /metrics there
        assert httpx.get(f"{main}/metrics").status_code == 404  # and not on the app
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGTERM)
        try:
            serve.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait(timeout=10)

    output = log.read_text(errors="replace")
    assert "migrations applied" in output
    assert "Uvicorn running" in output
    if not has_webhook_secret:
        assert "webhooks are disabled" in output
    assert ("the payment API is disabled" in output) == (auth is None)
    secret_values = [*test_secrets.values(), f"pw-contract-{token}"]
    for value in secret_values:
        assert value not in output, "a secret value reached the runtime's log"
