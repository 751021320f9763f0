"""``python -m bench.runtime.tracing_cost``: CPU per request of tracing, off and on.

In one process, without a network, database or Stripe in the way (so the difference is
tracing's alone): a Starlette app with the runtime's tracing middleware and a handler that opens
the spans a payment opens (three database transactions and the Stripe call) and takes the outbox
carrier. Off, then on at sample ratios 1, 0.1 and 0, exporting to the test bed's collector
(``python -m hack.tools build otelcol``) through the batch processor and the OTLP/HTTP exporter;
the export's CPU (the batch thread, protobuf, HTTP) is counted, and the shutdown's flush too.
"""

from __future__ import annotations

import asyncio
import resource
import shutil
import tempfile
from pathlib import Path
from typing import Any

from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hack import tools
from payment_runtime import tracing
from payment_runtime.settings import Settings
from tests.fixtures._process import free_port
from tests.fixtures.otlp import OtlpReceiver

REQUESTS = 3000
SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "POST",
    "scheme": "http",
    "path": "/api/v1/payments",
    "raw_path": b"/api/v1/payments",
    "query_string": b"",
    "root_path": "",
    "headers": [(b"host", b"runtime"), (b"content-type", b"application/json")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8080),
}


async def _handler(request: Request) -> Response:
    for phase in ("begin_key", "create_payment", "finish"):
        with tracing.span(f"transaction {phase}", SpanKind.CLIENT, {"paydeck.phase": phase}):
            pass
    with tracing.span("stripe create_payment_intent", SpanKind.CLIENT):
        pass
    tracing.carrier()
    return JSONResponse({"ok": True}, status_code=201)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"{}", "more_body": False}


async def _send(message: dict[str, Any]) -> None:
    pass


def measure(endpoint: str | None, ratio: float) -> float:
    """CPU milliseconds per request, export and final flush included."""
    tracing.configure(Settings(tracing_otlp_endpoint=endpoint, tracing_sample_ratio=ratio))
    routes = [Route("/api/v1/payments", _handler, methods=["POST"])]
    app = Starlette(routes=routes, middleware=tracing.middleware(routes))

    async def run(n: int) -> None:
        for i in range(n):
            await app(dict(SCOPE), _receive, _send)
            if i % 50 == 0:
                await asyncio.sleep(0.001)  # as a server idles between requests: no drops

    loop = asyncio.new_event_loop()
    loop.run_until_complete(run(300))  # warm up
    started = _cpu()
    loop.run_until_complete(run(REQUESTS))
    tracing.shutdown()
    loop.close()
    return (_cpu() - started) / REQUESTS * 1000


def main() -> int:
    tools.ensure(["otelcol"])
    receiver = OtlpReceiver(free_port(), Path(tempfile.mkdtemp(prefix="paydeck-bench-otel-")))
    try:
        receiver.start(tools.binary("otelcol"))
        off = measure(None, 1.0)
        print(f"tracing off:            {off:.3f} ms CPU per request")
        for ratio in (1.0, 0.1, 0.0):
            on = measure(receiver.endpoint, ratio)
            print(f"tracing on, ratio {ratio:<4}: {on:.3f} ms CPU per request (+{on - off:.3f})")
    finally:
        receiver.stop()
        shutil.rmtree(receiver.workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
