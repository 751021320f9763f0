"""Real ``payment-runtime`` processes for integration tests, and a recording Stripe proxy.

:class:`RuntimeProcess` starts ``payment-runtime serve`` (or ``relay``) as a subprocess in
its own process group, configured only through its environment as a pod would be, and
kills the whole group when the test ends. :class:`StripeProxy` is a small HTTP forwarding
proxy between the runtime and stripe-mock that records every request (method, path,
``Idempotency-Key``) and can act after stripe-mock answered but before the runtime gets
the answer: delay it, or kill the runtime (the crash-between-Stripe-and-commit test).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
from confluent_kafka import Consumer

from tests.fixtures import _process
from tests.integration.runtime.helpers import AUDIENCE, ISSUER, STRIPE_KEY, WEBHOOK_SECRET, Signer

START_TIMEOUT = 30.0
#: Hop-by-hop and length headers the proxy sets itself.
_SKIPPED_HEADERS = {"host", "connection", "keep-alive", "transfer-encoding", "content-length"}


def runtime_command(*args: str) -> list[str]:
    """The ``payment-runtime`` console script of this environment (else ``python -m``)."""
    script = Path(sys.executable).with_name("payment-runtime")
    if script.is_file():
        return [str(script), *args]
    found = shutil.which("payment-runtime")
    if found:
        return [found, *args]
    return [sys.executable, "-m", "payment_runtime.cli", *args]


def base_env(**values: str) -> dict[str, str]:
    """The test process's environment without any ``PAYMENT_*`` variable, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMENT_")}
    env.update(values)
    return env


def migrate(dsn: str, timeout: float = 60.0) -> None:
    """Run ``payment-runtime migrate`` against ``dsn``; fail with its output if it fails."""
    result = subprocess.run(
        runtime_command("migrate"),
        env=base_env(PAYMENT_DATABASE_URL=dsn, PAYMENT_SECRETS_PROVIDER="env"),
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def runtime_env(
    dsn: str, stripe_api_base: str, jwks_file: Path, port: int, **settings: Any
) -> dict[str, str]:
    """Everything ``serve`` needs: secrets from the environment, JWKS from a file."""
    values = {
        "PAYMENT_SECRETS_PROVIDER": "env",
        "PAYMENT_DATABASE_URL": dsn,
        "PAYMENT_STRIPE_API_KEY": STRIPE_KEY,
        "PAYMENT_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "PAYMENT_STRIPE_API_BASE": stripe_api_base,
        "PAYMENT_STRIPE_MAX_NETWORK_RETRIES": "0",
        "PAYMENT_JWKS_URL": f"file://{jwks_file}",
        "PAYMENT_JWT_ISSUER": ISSUER,
        "PAYMENT_JWT_AUDIENCE": AUDIENCE,
        "PAYMENT_HOST": "127.0.0.1",
        "PAYMENT_PORT": str(port),
        "PAYMENT_DB_POOL_MIN": "1",
        "PAYMENT_DB_POOL_MAX": "4",
        "PAYMENT_LOG_LEVEL": "INFO",
    }
    values.update({f"PAYMENT_{k.upper()}": str(v) for k, v in settings.items()})
    return base_env(**values)


def write_jwks(signer: Signer, directory: Path) -> Path:
    """The signer's public keys as a JWKS file, for ``PAYMENT_JWKS_URL=file://...``."""
    path = directory / "jwks.json"
    path.write_text(json.dumps(signer.jwks))
    return path


@dataclass
class RuntimeProcess:
    """One ``payment-runtime`` subprocess, in its own process group."""

    args: list[str]
    env: dict[str, str]
    log_file: Path
    port: int | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        assert self.port is not None
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, wait_healthy: bool = True) -> RuntimeProcess:
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                runtime_command(*self.args),
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        if wait_healthy:
            _process.wait_until(
                lambda: httpx.get(f"{self.url}/health", timeout=2).status_code == 200,
                what=f"payment-runtime {' '.join(self.args)}",
                timeout=START_TIMEOUT,
                process=self.process,
                log=self.log_file,
                interval=0.1,
            )
        return self

    def kill(self) -> None:
        """SIGKILL the whole process group: no cleanup, no graceful anything."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def terminate(self) -> None:
        """SIGTERM the runtime, as the kubelet does when a pod is deleted."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def log(self) -> str:
        return _process.tail(self.log_file, 60)

    def stop(self) -> None:
        _process.stop_group(self.process, timeout=10)


@contextlib.contextmanager
def running(process: RuntimeProcess, wait_healthy: bool = True) -> Iterator[RuntimeProcess]:
    """Start ``process``; whatever happens, its process group is gone afterwards."""
    try:
        yield process.start(wait_healthy)
    finally:
        process.stop()


@dataclass(frozen=True, slots=True)
class ProxiedRequest:
    """What the proxy saw of one request to Stripe."""

    method: str
    path: str
    idempotency_key: str | None


def creates_intent(request: ProxiedRequest) -> bool:
    """A request that creates a PaymentIntent (not one acting on an existing one)."""
    return request.method == "POST" and request.path.split("?")[0] == "/v1/payment_intents"


def authorizing(request: ProxiedRequest, body: bytes) -> bytes:
    """A :class:`StripeProxy` rewrite: a PaymentIntent stripe-mock answers with its canned
    ``requires_payment_method`` comes back ``requires_capture``, as Stripe answers a test card
    (``pm_card_visa``) with manual capture; so the runtime counts the payment a success."""
    try:
        answer = json.loads(body)
    except ValueError:
        return body
    if (
        isinstance(answer, dict)
        and answer.get("object") == "payment_intent"
        and answer.get("status") == "requires_payment_method"
    ):
        answer["status"] = "requires_capture"
        return json.dumps(answer).encode()
    return body


class StripeProxy:
    """A forwarding HTTP proxy to ``upstream`` that records requests and can intervene.

    ``after_upstream(request)`` runs once stripe-mock has answered and before the answer
    goes back; it returns True to drop the answer (close the connection without replying).
    ``rewrite(request, body)`` may change the answer's body (see :func:`authorizing`).
    """

    def __init__(
        self,
        upstream: str,
        after_upstream: Callable[[ProxiedRequest], bool] | None = None,
        rewrite: Callable[[ProxiedRequest, bytes], bytes] | None = None,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.after_upstream = after_upstream
        self.rewrite = rewrite
        self.requests: list[ProxiedRequest] = []
        self.seen = threading.Condition()
        self._client = httpx.Client(timeout=10)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output quiet

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = ProxiedRequest(
                    self.command, self.path, self.headers.get("Idempotency-Key")
                )
                with proxy.seen:
                    proxy.requests.append(request)
                    proxy.seen.notify_all()
                upstream = proxy._client.request(
                    self.command,
                    proxy.upstream + self.path,
                    content=body,
                    headers={
                        k: v for k, v in self.headers.items() if k.lower() not in _SKIPPED_HEADERS
                    },
                )
                if proxy.after_upstream is not None and proxy.after_upstream(request):
                    self.close_connection = True
                    return
                content = upstream.content
                if proxy.rewrite is not None:
                    content = proxy.rewrite(request, content)
                self.send_response(upstream.status_code)
                for name, value in upstream.headers.items():
                    if name.lower() not in _SKIPPED_HEADERS | {"content-encoding"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_DELETE = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def wait_for(self, predicate: Callable[[ProxiedRequest], bool], timeout: float) -> None:
        """Block until a recorded request matches ``predicate``."""
        with self.seen:
            if not self.seen.wait_for(lambda: any(map(predicate, self.requests)), timeout):
                raise TimeoutError("the proxy saw no such request")

    def __enter__(self) -> StripeProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()
        self._thread.join(5)


def outbox(dsn: str) -> tuple[dict[str, str], int]:
    """The outbox's event id -> payment id, and how many rows are still unpublished."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT event_id::text, message_key, published_at FROM outbox"
        ).fetchall()
    return {r[0]: r[1] for r in rows}, sum(1 for r in rows if r[2] is None)


def unpublished_payments(dsn: str) -> set[str]:
    """The payment ids (message keys) of the outbox rows not yet published."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT message_key FROM outbox WHERE published_at IS NULL")
        return {r[0] for r in rows.fetchall()}


def consume_events(
    bootstrap: str,
    topic: str,
    payment_ids: set[str],
    timeout: float,
    expected_ids: set[str] | None = None,
) -> dict[str, str]:
    """Event id -> payment id of every message on ``topic`` for ``payment_ids``.

    Reads until every payment (and every id of ``expected_ids``) has been seen or ``timeout``
    passes, then lingers a second so a duplicate or stray event would show up too.  Every
    message must be keyed by its payment id and carry its event id as a header.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"runtime-test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    linger_until: float | None = None
    try:
        while time.monotonic() < (linger_until or deadline):
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                payload = json.loads(msg.value())
                if payload["payment_id"] in payment_ids:
                    assert msg.key().decode() == payload["payment_id"]
                    assert dict(msg.headers())["event_id"].decode() == payload["id"]
                    seen[payload["id"]] = payload["payment_id"]
            complete = set(seen.values()) >= payment_ids and seen.keys() >= (expected_ids or set())
            if linger_until is None and complete:
                linger_until = time.monotonic() + 1.0
    finally:
        consumer.close()
    return seen
