"""The built-in ``paymentSuccess`` analysis against a real Prometheus scraping real runtimes.

Two ``payment-runtime serve`` processes, the stable and the canary revision (each labels its
series with ``PAYMENT_REVISION``, as the operator configures a pod), on PostgreSQL, scraped
every second by a real Prometheus through file-based discovery.  The test sends both bounded
payment traffic for one analysis window, waits until Prometheus has scraped every payment
sent, then measures with the operator's provider and folds the result in with the pure judge.

- A canary whose Stripe base URL refuses connections (every payment a 503, outcome
  ``error``) fails the analysis, and the message names both success ratios and sample sizes.
- A healthy canary (both revisions reach stripe-mock through a proxy that answers as Stripe
  does for a test card) passes.
- No traffic at all is no data: Inconclusive under ``onNoData: inconclusive``, Failed under
  ``fail``.
- A canary whose velocity limits (on a real Redis) refuse about half of its payments passes
  beside a stable one without limits: refusals are not the revision's fault.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from payment_operator import providers
from payment_operator.api import v1alpha1 as api
from payment_operator.rollout import analysis

from tests.fixtures import _process
from tests.fixtures.prometheus import SCRAPE_SECONDS
from tests.integration.runtime import canary_bed, processes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

NAMESPACE = "payments-it"
WINDOW_SECONDS = 24
TUNING = {
    "window": f"{WINDOW_SECONDS}s",
    "latencyInterval": "3s",  # three scrapes per interval: every interval has a p99
    "minPayments": 30,
    "minLatencySamples": 5,
    # Both revisions call the same local stripe-mock: their p99s differ only by noise,
    # which a two-core machine shared with other suites makes large.
    "maxLatencyIncrease": 1.0,
}


def _analysis(prometheus: Any, **overrides: Any) -> api.Analysis:
    return api.Analysis.model_validate({
        "interval": "30s",
        "builtin": "paymentSuccess",
        "prometheusAddress": prometheus.url,
        "paymentSuccess": TUNING,
        "failureLimit": 0,
        "inconclusiveLimit": 0,
        **overrides,
    })


@contextlib.contextmanager
def _revisions(
    dsn: str, signer: Any, tmp_path: Any, prometheus: Any, stable_api: str, canary_api: str,
    canary_env: dict[str, str] | None = None,
) -> Iterator[dict[str, processes.RuntimeProcess]]:
    """The stable and the canary runtime (in that order), keyed by revision."""
    tag = uuid.uuid4().hex[:6]
    bases = {f"stable-{tag}": stable_api, f"canary-{tag}": canary_api}
    extra = {f"canary-{tag}": canary_env or {}}
    with canary_bed.revisions(
        dsn, signer, tmp_path, prometheus, NAMESPACE, bases, extra
    ) as runtimes:
        yield runtimes


def _measure_after_traffic(
    prometheus: Any, runtimes: dict[str, processes.RuntimeProcess], signer: Any,
    spec: api.Analysis,
) -> tuple[analysis.Run, dict[str, int]]:
    token = signer.token("payment_operator")
    with ThreadPoolExecutor(max_workers=len(runtimes)) as pool:
        futures = {rev: pool.submit(canary_bed.traffic, rt, token, WINDOW_SECONDS)
                   for rev, rt in runtimes.items()}
        sent = {rev: f.result() for rev, f in futures.items()}
    # Wait for the scrape that saw the last payment, no longer.
    _process.wait_until(
        lambda: canary_bed.scraped(prometheus, NAMESPACE, runtimes)
        == {r: float(n) for r, n in sent.items()},
        what="prometheus seeing every payment sent", timeout=20, interval=SCRAPE_SECONDS / 4,
    )
    return _round(spec, runtimes), sent


def _round(spec: api.Analysis, runtimes: dict[str, Any]) -> analysis.Run:
    stable, canary = list(runtimes)
    variables = providers.variables(
        revision=canary, stable_revision=stable, namespace=NAMESPACE, name="payments"
    )
    results = providers.measure_all(spec, variables)
    assert all(r.error is None for r in results), results
    now = datetime.now(UTC)
    return analysis.record(analysis.start(now), spec, api.StepAnalysis(count=1), results, now)


def _close(value: int, expected: int) -> bool:
    """A count read through increase(), which extrapolates, is within 10% of the truth."""
    return abs(value - expected) <= max(2, expected // 10)


def test_a_canary_whose_payments_fail_fails_the_analysis(
    dsn, stripe_mock, signer, tmp_path, prometheus
):
    refused = f"http://127.0.0.1:{_process.free_port()}"  # nothing listens: every call fails
    with (
        processes.StripeProxy(stripe_mock.api_base, rewrite=processes.authorizing) as healthy,
        _revisions(dsn, signer, tmp_path, prometheus, healthy.url, refused) as runtimes,
    ):
        run, sent = _measure_after_traffic(prometheus, runtimes, signer, _analysis(prometheus))
    stable, canary = list(runtimes)
    assert run.phase == "Failed", run.message
    found = re.search(
        r"success-ratio=canary 0 vs stable 1 \(payments (\d+) vs (\d+)\), p=\S+ for a drop "
        r"over 0\.01: worse \(failures 1 > limit 0\)",
        run.message,
    )
    assert found, run.message
    assert _close(int(found.group(1)), sent[canary]), (found.group(1), sent)
    assert _close(int(found.group(2)), sent[stable]), (found.group(2), sent)
    [ratio, latency] = run.to_status()["metrics"]
    assert ratio["phase"] == "Failed"
    assert ratio["comparison"]["canaryValue"] == "0"
    assert ratio["comparison"]["stableValue"] == "1"
    assert float(ratio["comparison"]["pValue"]) < 0.05
    assert ratio["comparison"]["canarySamples"] == int(found.group(1))
    # Refused connections are fast: latency is no reason to fail this canary.
    assert latency["phase"] == "Successful", latency


def test_a_healthy_canary_passes(dsn, stripe_mock, signer, tmp_path, prometheus):
    with (
        processes.StripeProxy(stripe_mock.api_base, rewrite=processes.authorizing) as stripe,
        _revisions(dsn, signer, tmp_path, prometheus, stripe.url, stripe.url) as runtimes,
    ):
        run, sent = _measure_after_traffic(prometheus, runtimes, signer, _analysis(prometheus))
    assert run.phase == "Successful", run.message
    [ratio, latency] = run.to_status()["metrics"]
    assert ratio["comparison"]["canaryValue"] == ratio["comparison"]["stableValue"] == "1"
    assert min(sent.values()) >= TUNING["minPayments"]
    assert latency["phase"] == "Successful"
    assert latency["comparison"]["canarySamples"] >= TUNING["minLatencySamples"]
    assert latency["comparison"]["stableSamples"] >= TUNING["minLatencySamples"]


def test_velocity_refusals_do_not_fail_a_canary(
    dsn, stripe_mock, signer, tmp_path, prometheus, redis
):
    # 12 per sliding 6 s of about 4/s: half the canary's payments are refused, evenly spread
    # over the analysis window (a fixed quota would refuse only its end).
    velocity = {
        "PAYMENT_REDIS_URL": redis.url,
        "PAYMENT_VELOCITY_LIMITS": json.dumps(
            [{"scope": "customer", "window_seconds": 6, "max_attempts": 12}]
        ),
        "PAYMENT_RISK_FAILURE_MODE": "closed",
        "PAYMENT_REDIS_TIMEOUT_SECONDS": "5",
    }
    with (
        processes.StripeProxy(stripe_mock.api_base, rewrite=processes.authorizing) as stripe,
        _revisions(
            dsn, signer, tmp_path, prometheus, stripe.url, stripe.url, canary_env=velocity
        ) as runtimes,
    ):
        run, sent = _measure_after_traffic(prometheus, runtimes, signer, _analysis(prometheus))
        _, canary = list(runtimes)
        outcomes = {
            r["metric"]["outcome"]: float(r["value"][1])
            for r in prometheus.query(
                f'sum by (outcome) (payment_requests_total{{namespace="{NAMESPACE}",'
                f'revision="{canary}",operation="create"}})'
            )
        }
    assert outcomes["refused"] >= sent[canary] / 3, (outcomes, sent)
    assert outcomes["success"] + outcomes["refused"] == sent[canary], (outcomes, sent)
    assert run.phase == "Successful", run.message
    [ratio, _] = run.to_status()["metrics"]
    assert ratio["comparison"]["canaryValue"] == ratio["comparison"]["stableValue"] == "1"
    assert ratio["comparison"]["canarySamples"] < sent[canary] - outcomes["refused"] / 2


def test_no_traffic_is_no_data_handled_per_on_no_data(
    dsn, stripe_mock, signer, tmp_path, prometheus
):
    spec = _analysis(prometheus)
    with _revisions(
        dsn, signer, tmp_path, prometheus, stripe_mock.api_base, stripe_mock.api_base
    ) as runtimes:
        run = _round(spec, runtimes)
        failing = _round(spec.model_copy(update={"on_no_data": "fail"}), runtimes)
    assert run.phase == "Inconclusive", run.message
    assert "fewer than 30 payments on a side (canary 0, stable 0)" in run.message
    assert {m.phase for m in run.metrics} == {"Inconclusive"}
    assert failing.phase == "Failed", failing.message
    assert {m.phase for m in failing.metrics} == {"Failed"}


def test_a_stopped_prometheus_is_a_provider_error(tmp_path):
    port = _process.free_port()
    spec = api.Analysis.model_validate({
        "builtin": "paymentSuccess", "prometheusAddress": f"http://127.0.0.1:{port}",
    })
    variables = providers.variables(revision="c", stable_revision="s", namespace="n", name="x")
    results = providers.measure_all(spec, variables)
    assert [r.name for r in results] == list(analysis.BUILTIN_METRICS)
    assert all(r.error and "cannot connect" in r.error for r in results), results
