"""spec.redis, spec.velocity and spec.rateLimit: the settings, the secret and the egress."""

from __future__ import annotations

import json
from typing import Any

import pytest
from payment_operator.api import PaymentService, parse
from payment_operator.builders import Context, network, workload

from payment_runtime.domain.velocity import VelocityLimit
from tests.unit.builders.cases import minimal_body

pytestmark = pytest.mark.unit

REDIS = {"url": {"secretRef": {"name": "redis", "key": "url"}}}


def ps(**spec: Any) -> PaymentService:
    return parse(minimal_body(**spec))


def _env(p: PaymentService, *, job: bool = False) -> dict[str, dict[str, Any]]:
    container = workload.migrate_container(p) if job else workload.container(p)
    return {var["name"]: var for var in container["env"]}


def test_without_redis_no_risk_setting_and_no_redis_secret() -> None:
    p = ps()
    assert not {k for k in workload.config_data(p) if "REDIS" in k or "RATE" in k or "VELO" in k}
    assert "PAYMENT_REDIS_URL" not in _env(p)


def test_velocity_limits_reach_the_runtime_as_its_json() -> None:
    p = ps(
        redis=REDIS,
        velocity={
            "limits": [
                {"scope": "paymentMethod", "windowSeconds": 600, "maxAttempts": 3},
                {"scope": "client", "windowSeconds": 86400, "maxAmount": {"USD": 9, "EUR": 7}},
            ]
        },
    )
    data = workload.config_data(p)
    limits = json.loads(data["PAYMENT_VELOCITY_LIMITS"])
    assert limits == [
        {"scope": "payment_method", "window_seconds": 600, "max_attempts": 3},
        {"scope": "client", "window_seconds": 86400, "max_amount": {"EUR": 7, "USD": 9}},
    ]
    # What the runtime's own model reads back.
    assert [VelocityLimit.model_validate(x).scope for x in limits] == ["payment_method", "client"]
    assert data["PAYMENT_RISK_FAILURE_MODE"] == "open"
    assert data["PAYMENT_REDIS_TIMEOUT_SECONDS"] == "0.25"
    assert "PAYMENT_RATE_LIMIT_REQUESTS" not in data


def test_rate_limit_failure_mode_timeout_and_a_prefix_per_service() -> None:
    p = ps(
        redis={**REDIS, "failureMode": "closed", "timeoutMilliseconds": 50},
        rateLimit={"requests": 120, "windowSeconds": 10},
    )
    data = workload.config_data(p)
    assert data["PAYMENT_RATE_LIMIT_REQUESTS"] == "120"
    assert data["PAYMENT_RATE_LIMIT_WINDOW_SECONDS"] == "10"
    assert data["PAYMENT_RISK_FAILURE_MODE"] == "closed"
    assert data["PAYMENT_REDIS_TIMEOUT_SECONDS"] == "0.05"
    assert data["PAYMENT_REDIS_KEY_PREFIX"] == "paydeck:payments:pay:"
    assert "PAYMENT_VELOCITY_LIMITS" not in data


def test_the_redis_url_is_a_secret_of_the_runtime_container_only() -> None:
    for url, ref in (
        (REDIS["url"], {"name": "redis", "key": "url"}),
        ({"storeObject": "REDIS_URL"}, {"name": "pay-secrets", "key": "REDIS_URL"}),
    ):
        store = {
            "backend": "external-secrets",
            "provider": "aws-secrets-manager",
            "aws": {"region": "eu-west-1", "roleArn": "arn:aws:iam::123456789012:role/r"},
            "objects": [{"name": "REDIS_URL", "remoteRef": "redis"}],
        }
        p = ps(redis={"url": url}, rateLimit={"requests": 5}, secretStore=store)
        var = _env(p)["PAYMENT_REDIS_URL"]
        assert var == {"name": "PAYMENT_REDIS_URL", "valueFrom": {"secretKeyRef": ref}}
        assert workload.config_data(p)["PAYMENT_SECRET_NAME_REDIS_URL"] == "REDIS_URL"
        # The migration Job never talks to Redis.
        assert "PAYMENT_REDIS_URL" not in _env(p, job=True)


def test_network_policy_lets_the_pods_reach_the_redis_port() -> None:
    for redis, port in ((REDIS, 6379), ({**REDIS, "port": 16379}, 16379)):
        policy = network.network_policy(ps(redis=redis, rateLimit={"requests": 5}), Context())
        assert policy is not None
        ports = [x["port"] for x in policy["spec"]["egress"][1]["ports"]]
        assert ports == sorted([443, 5432, port])
    plain = network.network_policy(ps(), Context())
    assert plain is not None
    assert [x["port"] for x in plain["spec"]["egress"][1]["ports"]] == [443, 5432]


def test_a_limit_change_rolls_the_pods() -> None:
    one = ps(redis=REDIS, rateLimit={"requests": 5})
    two = ps(redis=REDIS, rateLimit={"requests": 6})
    assert workload.revision(one) != workload.revision(two)
