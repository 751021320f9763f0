"""Every series a real ``payment-runtime serve`` exports carries its revision.

The operator sets ``PAYMENT_REVISION`` from the pod's ``paydeck.dev/revision`` label; the
canary analysis splits ``payment_requests_total`` and the latency histogram by that label.
Checked on the metrics port of a real process after a real payment (stripe-mock, PostgreSQL),
with the text parsed by prometheus_client's own parser.
"""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures import _process
from tests.integration.runtime import processes
from tests.integration.runtime.helpers import headers, payment_body

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_every_series_carries_the_revision_label(dsn, stripe_mock, signer, tmp_path):
    port, metrics_port = _process.free_port(), _process.free_port()
    env = processes.runtime_env(
        dsn,
        stripe_mock.api_base,
        processes.write_jwks(signer, tmp_path),
        port,
        metrics_port=metrics_port,
        revision="5f0c1d2e3a",
    )
    runtime = processes.RuntimeProcess(["serve"], env, tmp_path / "serve.log", port)
    with processes.running(runtime):
        created = httpx.post(
            f"{runtime.url}/api/v1/payments",
            json=payment_body(),
            headers=headers(signer.token("payment_operator")),
            timeout=10,
        )
        assert created.status_code == 201, created.text
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text

    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    assert samples
    unlabelled = [s.name for s in samples if s.labels.get("revision") != "5f0c1d2e3a"]
    assert not unlabelled, unlabelled
    by_key = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in samples}
    revision = ("revision", "5f0c1d2e3a")
    # stripe-mock answers every confirmation "requires_payment_method": declined for us.
    declined = ("payment_requests_total",
                (("operation", "create"), ("outcome", "declined"), revision))
    assert by_key[declined] == 1, text
    # The other outcomes exist from the start, at 0: a window sees the first of each too.
    for outcome in ("success", "rejected", "error"):
        key = ("payment_requests_total", (("operation", "create"), ("outcome", outcome), revision))
        assert by_key[key] == 0
    latency = [
        s for s in samples
        if s.name == "http_request_duration_seconds_count"
        and s.labels["route"] == "/api/v1/payments" and s.labels["method"] == "POST"
    ]
    assert [s.value for s in latency] == [1]


def test_without_a_revision_nothing_is_added(dsn, stripe_mock, signer, tmp_path):
    port = _process.free_port()
    env = processes.runtime_env(
        dsn, stripe_mock.api_base, processes.write_jwks(signer, tmp_path), port
    )
    runtime = processes.RuntimeProcess(["serve"], env, tmp_path / "serve.log", port)
    with processes.running(runtime):
        text = httpx.get(f"{runtime.url}/metrics", timeout=5).text
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    assert samples
    assert all("revision" not in s.labels for s in samples)
