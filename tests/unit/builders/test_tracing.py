"""spec.tracing: the runtime's tracing settings, the egress to the receiver, the model's bounds."""

from __future__ import annotations

from typing import Any

import pytest
from payment_operator.api import PaymentService, parse
from payment_operator.builders import Context, network, workload
from pydantic import ValidationError

from payment_runtime.settings import Settings
from tests.unit.builders.cases import minimal_body

pytestmark = pytest.mark.unit

TRACING = {"otlpEndpoint": "http://otel-collector.observability:4318", "sampleRatio": 0.25}
SETTINGS = {
    "PAYMENT_TRACING_OTLP_ENDPOINT",
    "PAYMENT_TRACING_SAMPLE_RATIO",
    "PAYMENT_TRACING_SERVICE_NAME",
}


def ps(**spec: Any) -> PaymentService:
    return parse(minimal_body(**spec))


def _egress_ports(p: PaymentService) -> list[int]:
    policy = network.network_policy(p, Context())
    assert policy is not None
    return [x["port"] for x in policy["spec"]["egress"][1]["ports"]]


def test_tracing_settings_reach_the_config_map_only_when_set() -> None:
    p = ps(tracing=TRACING)
    data = workload.config_data(p)
    assert data["PAYMENT_TRACING_OTLP_ENDPOINT"] == TRACING["otlpEndpoint"]
    assert data["PAYMENT_TRACING_SAMPLE_RATIO"] == "0.25"
    assert data["PAYMENT_TRACING_SERVICE_NAME"] == p.metadata.name
    assert not SETTINGS & set(workload.config_data(ps()))
    # The runtime reads them back as the same values.
    settings = Settings(**{k.removeprefix("PAYMENT_").lower(): v for k, v in data.items()})
    assert settings.tracing_otlp_endpoint == TRACING["otlpEndpoint"]
    assert settings.tracing_sample_ratio == 0.25
    assert settings.tracing_service_name == p.metadata.name


def test_the_sample_ratio_defaults_to_every_trace() -> None:
    data = workload.config_data(ps(tracing={"otlpEndpoint": TRACING["otlpEndpoint"]}))
    assert data["PAYMENT_TRACING_SAMPLE_RATIO"] == "1.0"


def test_a_tracing_change_rolls_the_pods() -> None:
    other = {**TRACING, "sampleRatio": 0.5}
    assert workload.revision(ps(tracing=TRACING)) != workload.revision(ps(tracing=other))
    assert workload.revision(ps(tracing=TRACING)) != workload.revision(ps())


def test_network_policy_egress_reaches_the_receivers_port() -> None:
    assert _egress_ports(ps()) == [443, 5432]
    assert _egress_ports(ps(tracing=TRACING)) == [443, 4318, 5432]
    https = ps(tracing={"otlpEndpoint": "https://otel.example/otlp"})
    assert _egress_ports(https) == [443, 5432]


@pytest.mark.parametrize(
    ("tracing", "message"),
    [
        ({"otlpEndpoint": "http://user:secret@otel:4318"}, "without credentials"),
        ({"otlpEndpoint": "http://otel:4318/?token=abc"}, "without credentials, query"),
        ({"otlpEndpoint": "otel:4318"}, "String should match pattern"),
        ({"otlpEndpoint": "http://otel:4318", "sampleRatio": 1.5}, "less than or equal to 1"),
        ({"otlpEndpoint": "http://otel:4318", "sampleRatio": -0.1}, "greater than or equal to 0"),
        ({"sampleRatio": 0.5}, "otlpEndpoint"),
    ],
)
def test_the_model_refuses_what_the_runtime_could_not_honour(
    tracing: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        ps(tracing=tracing)
