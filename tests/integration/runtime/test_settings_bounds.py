"""Settings that weaken a check are bounded: ``payment-runtime`` refuses to start outside them.

A webhook tolerance of 0 switches the SDK's timestamp check off (any old signed event could
be replayed); an unbounded JWT leeway accepts tokens long expired. Each process here is
configured only through its environment, as a pod is.
"""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pytest

from tests.fixtures import _process
from tests.integration.runtime import processes
from tests.integration.runtime.helpers import signed_event

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _env(dsn, stripe_mock, signer, tmp_path, **settings):
    port = _process.free_port()
    jwks = processes.write_jwks(signer, tmp_path)
    return port, processes.runtime_env(dsn, stripe_mock.api_base, jwks, port, **settings)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("stripe_webhook_tolerance_seconds", "0"),
        ("stripe_webhook_tolerance_seconds", "-300"),
        ("stripe_webhook_tolerance_seconds", "601"),
        ("jwt_leeway_seconds", "-1"),
        ("jwt_leeway_seconds", "121"),
        ("jwt_leeway_seconds", "31536000"),
        # A trace receiver's URL with a login in it would sit in the ConfigMap and every log.
        ("tracing_otlp_endpoint", "http://collector:s3cret-pass@otel:4318"),
        ("tracing_sample_ratio", "1.5"),
    ],
)
def test_serve_refuses_a_setting_out_of_bounds(dsn, stripe_mock, signer, tmp_path, name, value):
    port, env = _env(dsn, stripe_mock, signer, tmp_path, **{name: value})
    process = subprocess.Popen(
        processes.runtime_command("serve"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        out, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        _process.stop_group(process, timeout=5)
        pytest.fail(f"serve started with PAYMENT_{name.upper()}={value}")
    result = subprocess.CompletedProcess(process.args, process.returncode, out, b"")
    output = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 2, output
    assert not _process.port_open(port)
    assert f"PAYMENT_{name.upper()}" in output, output
    assert "Traceback" not in output, output
    assert "s3cret-pass" not in output, output


def test_the_bounds_themselves_are_accepted_and_tolerance_1_still_verifies(
    dsn, stripe_mock, signer, tmp_path
):
    port, env = _env(
        dsn, stripe_mock, signer, tmp_path, stripe_webhook_tolerance_seconds=1, jwt_leeway_seconds=0
    )
    runtime = processes.RuntimeProcess(["serve"], env, tmp_path / "serve.log", port)
    event = {"id": "evt_bounds", "type": "customer.created", "data": {"object": {}}}
    with processes.running(runtime):
        # A first request warms the server up, so the 1 s tolerance is spent on this one only
        # (on a loaded machine a cold server's first answer can take longer than that).
        httpx.get(f"{runtime.url}/health", timeout=10)
        # Stripe's timestamps are whole seconds: an event signed at 12.9 s reads as 12 s, so
        # it is already 0.9 s old. Signing just after a second begins leaves the request the
        # whole second of the tolerance, whatever the fraction of the clock.
        time.sleep(1 - time.time() % 1)
        fresh = signed_event(event)
        ok = httpx.post(
            f"{runtime.url}/webhooks/stripe",
            content=fresh[0],
            headers={"Stripe-Signature": fresh[1]},
            timeout=10,
        )
        assert ok.status_code == 200, (ok.text, runtime.log())
        stale = signed_event({**event, "id": "evt_bounds_2"}, timestamp=int(time.time()) - 5)
        late = httpx.post(
            f"{runtime.url}/webhooks/stripe",
            content=stale[0],
            headers={"Stripe-Signature": stale[1]},
            timeout=10,
        )
        assert late.status_code == 400, late.text
        assert json.loads(late.text)["error"]["code"] == "invalid_signature"
    for name, value in (("stripe_webhook_tolerance_seconds", 600), ("jwt_leeway_seconds", 120)):
        port, env = _env(dsn, stripe_mock, signer, tmp_path, **{name: value})
        with processes.running(
            processes.RuntimeProcess(["serve"], env, tmp_path / f"{name}.log", port)
        ):
            pass  # healthy at the upper bound
