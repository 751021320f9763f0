"""Kafka stopped in the middle of a burst of payments, against a real ``payment-runtime serve``
running its outbox relay in-process (``PAYMENT_RELAY_IN_PROCESS=true``).

A third of the burst is made with Kafka up, a third while the broker shuts down, and the
last third only once it is down. Every payment must succeed (Kafka is never on the payment
path) and the runtime must stay alive and healthy throughout. Once Kafka is back, a consumer
must see exactly the outbox's event ids (deduplicated on event id: delivery is at least
once) and every outbox row must end up marked published -- no event lost, and the relay
thread recovered from the outage by itself. On SIGTERM the runtime still exits 0.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.fixtures import _process
from tests.integration.runtime import processes
from tests.integration.runtime.helpers import headers, payment_body

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

BURST = 30
WORKERS = 3
#: Kafka's producer gives up on a message after this long; shorter than the outage, so the
#: relay must also cope with batches that timed out while Kafka was away and produce again.
MESSAGE_TIMEOUT_MS = 4000
DELIVERY_TIMEOUT = 45.0


class HealthWatch:
    """Polls ``/health`` and the process in a thread; records every failure it sees."""

    def __init__(self, runtime: processes.RuntimeProcess) -> None:
        self.runtime = runtime
        self.failures: list[str] = []
        self.checks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                assert self.runtime.process is not None
                if self.runtime.process.poll() is not None:
                    self.failures.append(f"exited with {self.runtime.process.returncode}")
                    return
                try:
                    status = client.get(f"{self.runtime.url}/health").status_code
                    if status != 200:
                        self.failures.append(f"/health answered {status}")
                except httpx.HTTPError as exc:
                    self.failures.append(f"/health failed: {exc!r}")
                self.checks += 1
                self._stop.wait(0.25)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def __exit__(self, *exc: object) -> None:
        self.stop()


def test_kafka_stopped_mid_burst_loses_no_event(dsn, stripe_mock, kafka, signer, tmp_path: Path):
    topic = f"payment.events.outage.{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, partitions=3)
    port = _process.free_port()
    runtime = processes.RuntimeProcess(
        ["serve"],
        processes.runtime_env(
            dsn,
            stripe_mock.api_base,
            processes.write_jwks(signer, tmp_path),
            port,
            relay_in_process="true",
            kafka_bootstrap_servers=kafka.bootstrap_servers,
            kafka_topic=topic,
            kafka_message_timeout_ms=MESSAGE_TIMEOUT_MS,
            relay_poll_interval_seconds=0.2,
        ),
        tmp_path / "serve.log",
        port,
    )
    token = signer.token("payment_operator")
    kafka_stopping = threading.Event()
    kafka_down = threading.Event()
    lock = threading.Lock()
    done = threading.Condition(lock)
    finished = 0
    made_while_down: set[int] = set()

    def pay(i: int) -> tuple[int, str]:
        nonlocal finished
        if i >= BURST // 3:
            # The second third while the broker shuts down, the last once it is gone.
            gate = kafka_stopping if i < 2 * BURST // 3 else kafka_down
            assert gate.wait(90), "kafka did not stop"
        down = kafka_down.is_set()
        response = httpx.post(
            f"{runtime.url}/api/v1/payments",
            json=payment_body(amount=700 + i),
            headers=headers(token),
            timeout=30,
        )
        with done:
            finished += 1
            if down:
                made_while_down.add(i)
            done.notify_all()
        return response.status_code, response.text

    with processes.running(runtime), HealthWatch(runtime) as health:
        try:
            with ThreadPoolExecutor(WORKERS) as pool:
                futures = [pool.submit(pay, i) for i in range(BURST)]
                try:
                    with done:
                        assert done.wait_for(lambda: finished >= BURST // 3, 60), runtime.log()
                    # The relay is at work when Kafka goes: it has published events already.
                    _process.wait_until(
                        lambda: processes.outbox(dsn)[1] < BURST // 3,
                        what="the relay publishing before the outage",
                        timeout=30,
                        process=runtime.process,
                        log=runtime.log_file,
                        interval=0.1,
                    )
                    kafka_stopping.set()
                    kafka.stop()  # blocks until the broker is gone; the burst goes on meanwhile
                finally:
                    kafka_stopping.set()  # (on failure too: never leave the workers waiting)
                    kafka_down.set()
                results = [f.result(timeout=60) for f in futures]

            # Every payment succeeded, although Kafka went away in the middle of the burst.
            failed = [(code, text) for code, text in results if not 200 <= code < 300]
            assert not failed, (failed, runtime.log())
            assert len(made_while_down) >= BURST // 3
            ids = {json.loads(text)["id"] for _, text in results}
            assert len(ids) == BURST
            ids_while_down = {json.loads(results[i][1])["id"] for i in made_while_down}

            expected, unpublished = processes.outbox(dsn)
            assert set(expected.values()) == ids  # one event per payment, all in the outbox
            assert len(expected) == BURST
            # The payments made with the broker gone cannot have been published yet.
            assert unpublished >= len(made_while_down), runtime.log()
            # Keep Kafka away for longer than the producer's message timeout, so batches the
            # relay produced during the outage time out and must be produced again.  (A row
            # whose delivery the broker acknowledged just before it went may still be marked
            # published now, when its batch's flush returns: only rows made while it was down
            # are certain to be unpublished.)
            time.sleep(MESSAGE_TIMEOUT_MS / 1000 + 1)
            assert ids_while_down <= processes.unpublished_payments(dsn), runtime.log()
        finally:
            kafka.start()  # later tests use the session broker

        seen = processes.consume_events(
            kafka.bootstrap_servers, topic, set(expected.values()), DELIVERY_TIMEOUT,
            expected_ids=set(expected),
        )
        missing = expected.keys() - seen.keys()
        assert not missing, (f"{len(missing)} of {len(expected)} events lost", runtime.log())
        assert seen == expected, runtime.log()

        deadline = time.monotonic() + 15
        while processes.outbox(dsn)[1] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert processes.outbox(dsn)[1] == 0, runtime.log()

        health.stop()
        assert health.checks > 0
        assert not health.failures, (health.failures[:5], runtime.log())
        runtime.terminate()
        assert runtime.wait(20) == 0, runtime.log()
