"""The metric providers over real HTTP: a local server answers with JSON, NaN, errors, delays.

The server (stdlib ``http.server`` in a thread, on the loopback) plays a JSON endpoint for the
web provider and the shape of Prometheus' instant-query API for the prometheus provider.
Every failure must come back as a ``MetricResult`` with a short, specific error, never as an
exception.
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from payment_operator import providers
from payment_operator.api import v1alpha1 as api
from payment_operator.providers import http as provider_http
from payment_operator.rollout.analysis import MetricResult

pytestmark = pytest.mark.integration

VARIABLES = providers.variables(
    revision="7e6a8d9c0b", stable_revision="6d5f7c8b9a", namespace="payments", name="checkout"
)


def _vector(*values: str) -> dict[str, Any]:
    result = [
        {"metric": {"pod": f"p{i}"}, "value": [1735787045.5, v]}
        for i, v in enumerate(values)
    ]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


PROMETHEUS: dict[str, tuple[int, Any]] = {
    "one": (200, _vector("0.995")),
    "empty": (200, _vector()),
    "two": (200, _vector("1", "2")),
    "nan": (200, _vector("NaN")),
    "inf": (200, _vector("+Inf")),
    "minus-inf": (200, _vector("-Inf")),
    "text": (200, _vector("abc")),
    "scalar": (200, {"status": "success", "data": {"resultType": "scalar", "result": [1, "42"]}}),
    "matrix": (
        200,
        {"status": "success", "data": {"resultType": "matrix", "result": [{"values": []}]}},
    ),
    "bad": (400, {"status": "error", "errorType": "bad_data", "error": "parse error at char 4"}),
    "shape": (200, {"status": "success", "data": {"resultType": "vector", "result": [{"v": 1}]}}),
}


@dataclass
class Server:
    """The test server's address and the requests it received."""

    base: str
    requests: list[dict[str, Any]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.server.record.requests.append(
            {"path": url.path, "query": query, "headers": dict(self.headers.items())}
        )
        route = url.path
        if route == "/prom/api/v1/query":
            status, body = PROMETHEUS.get(query.get("query", ""), (200, _vector("1")))
            return self._send(status, json.dumps(body).encode())
        if route == "/bad-json":
            return self._send(200, b"{not json")
        if route == "/empty":
            return self._send(200, b"")
        if route == "/data":
            body = b'{"data": {"ratio": 0.995, "nan": NaN, "inf": Infinity, "text": "0.97",'
            body += b' "word": "high", "flag": true, "none": null, "list": [1, 2, 3],'
            body += b' "success-rate": 0.5}, "results": [{"value": 7}]}'
            return self._send(200, body)
        if route == "/status/500":
            return self._send(500, b"boom: the database is down")
        if route == "/status/404":
            return self._send(404, b"")
        if route == "/slow":
            time.sleep(float(query.get("seconds", "3")))
            return self._send(200, b'{"value": 1}')
        if route == "/trickle":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "64")
            self.end_headers()
            for _ in range(64):
                try:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                except OSError:
                    return None
                time.sleep(0.1)
            return None
        if route == "/big":
            return self._send(200, b'{"value": "' + b"9" * (provider_http.MAX_BODY + 10) + b'"}')
        if route == "/echo":
            return self._send(200, b'{"value": 1}')
        return self._send(404, b"no such route")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):  # the client gave up (a timeout test)
            self.wfile.write(body)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    record: Server


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
    httpd.record = Server(base=f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.record
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def web(url: str, path: str = "$.value", timeout: int = 5, **extra: Any) -> api.Metric:
    return api.Metric.model_validate(
        {
            "name": "m",
            "web": {"url": url, "jsonPath": path, "timeoutSeconds": timeout, **extra},
            "thresholdRange": {"min": 0.99},
        }
    )


def prometheus(address: str, query: str, timeout: int = 5) -> api.Metric:
    return api.Metric.model_validate(
        {
            "name": "m",
            "prometheus": {"address": address, "query": query, "timeoutSeconds": timeout},
            "thresholdRange": {"min": 0.99},
        }
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- web ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("$.data.ratio", 0.995),
        ("data.ratio", 0.995),
        ("$.data.text", 0.97),
        ("$.results[0].value", 7.0),
        ('$.data."success-rate"', 0.5),
        ("$.data.inf", math.inf),
        ("$.data.none", None),
    ],
)
def test_web_reads_the_value_at_the_json_path(server: Server, path: str, value: Any) -> None:
    assert providers.measure(web(f"{server.base}/data", path), VARIABLES) == MetricResult(
        "m", value
    )


def test_web_reads_nan(server: Server) -> None:
    result = providers.measure(web(f"{server.base}/data", "$.data.nan"), VARIABLES)
    assert result.error is None and result.value is not None and math.isnan(result.value)


@pytest.mark.parametrize(
    ("url", "path", "error"),
    [
        ("/data", "$.data.word", "the value at $.data.word is not a number: 'high'"),
        ("/data", "$.data.flag", "the value at $.data.flag is not a number: True"),
        ("/data", "$.data.list", "the value at $.data.list is not a number: [1, 2, 3]"),
        ("/data", "$.data.missing", "jsonPath $.data.missing matched nothing"),
        ("/data", "$.data.list[*]", "jsonPath $.data.list[*] matched 3 values, expected 1"),
        ("/bad-json", "$.value", "response is not JSON: Expecting property name"),
        ("/empty", "$.value", "response is not JSON: Expecting value at line 1 column 1"),
        ("/status/500", "$.value", "HTTP 500: boom: the database is down"),
        ("/status/404", "$.value", "HTTP 404: no body"),
        ("/big", "$.value", "response larger than 1024 KiB"),
    ],
)
def test_web_failures_are_results_with_a_specific_error(
    server: Server, url: str, path: str, error: str
) -> None:
    result = providers.measure(web(f"{server.base}{url}", path), VARIABLES)
    assert result.value is None
    assert result.error is not None and result.error.startswith(error), result.error


def test_web_bad_json_path_is_an_error(server: Server) -> None:
    result = providers.measure(web(f"{server.base}/data", "$.[[["), VARIABLES)
    assert result.error is not None and result.error.startswith("bad jsonPath $.[[[:")


def test_web_renders_the_url_and_sends_the_headers(server: Server) -> None:
    metric = web(
        f"{server.base}/echo?ns={{{{namespace}}}}&rev={{{{revision}}}}"
        "&old={{stable_revision}}",
        headers=[{"name": "X-Scope-OrgID", "value": "tenant-{{namespace}}"}],
    )
    assert providers.measure(metric, {**VARIABLES, "name": "x"}) == MetricResult("m", 1.0)
    request = server.requests[-1]
    assert request["query"] == {"ns": "payments", "rev": "7e6a8d9c0b", "old": "6d5f7c8b9a"}
    # Header values are sent as written: only the query and the URL are templates.
    assert request["headers"]["X-Scope-OrgID"] == "tenant-{{namespace}}"
    assert request["headers"]["Accept"] == "application/json"
    override = web(f"{server.base}/echo", headers=[{"name": "accept", "value": "text/json"}])
    assert providers.measure(override, VARIABLES) == MetricResult("m", 1.0)
    assert [v for k, v in server.requests[-1]["headers"].items() if k.lower() == "accept"] == [
        "text/json"
    ]


def test_a_missing_variable_is_an_error_not_an_empty_string(server: Server) -> None:
    metric = web(f"{server.base}/echo?rev={{{{revision}}}}")
    seen = len(server.requests)
    result = providers.measure(metric, {"namespace": "payments"})
    assert result == MetricResult("m", None, "template: 'revision' is undefined")
    assert len(server.requests) == seen, "nothing is sent"


def test_a_slow_server_times_out(server: Server) -> None:
    started = time.monotonic()
    result = providers.measure(web(f"{server.base}/slow?seconds=3", timeout=1), VARIABLES)
    assert result == MetricResult("m", None, "timed out after 1s")
    assert time.monotonic() - started < 2.5


def test_a_trickling_response_is_abandoned_after_the_timeout(server: Server) -> None:
    started = time.monotonic()
    result = providers.measure(web(f"{server.base}/trickle", timeout=1), VARIABLES)
    assert result == MetricResult("m", None, "timed out after 1s")
    assert time.monotonic() - started < 2.5


def test_a_closed_port_is_a_connection_error() -> None:
    result = providers.measure(web(f"http://127.0.0.1:{_closed_port()}/x"), VARIABLES)
    assert result.value is None
    assert result.error is not None and result.error.startswith("cannot connect:"), result.error


# -- prometheus --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "value"),
    [
        ("one", 0.995),
        ("empty", None),
        ("scalar", 42.0),
        ("inf", math.inf),
        ("minus-inf", -math.inf),
    ],
)
def test_prometheus_reads_one_sample_or_a_scalar(server: Server, query: str, value: Any) -> None:
    metric = prometheus(f"{server.base}/prom", query)
    assert providers.measure(metric, VARIABLES) == MetricResult("m", value)


def test_prometheus_nan(server: Server) -> None:
    result = providers.measure(prometheus(f"{server.base}/prom/", "nan"), VARIABLES)
    assert result.error is None and result.value is not None and math.isnan(result.value)


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("two", "query returned 2 series, expected 1"),
        ("matrix", "query returned a matrix, expected a vector or a scalar"),
        ("bad", "HTTP 400: bad_data: parse error at char 4"),
        ("text", "the sample value is not a number: 'abc'"),
        ("shape", "unexpected response: a sample is not [time, value]"),
    ],
)
def test_prometheus_failures_are_results_with_a_specific_error(
    server: Server, query: str, error: str
) -> None:
    metric = prometheus(f"{server.base}/prom", query)
    assert providers.measure(metric, VARIABLES) == MetricResult("m", None, error)


def test_prometheus_query_is_rendered_and_sent_as_a_parameter(server: Server) -> None:
    query = 'sum(rate(payments_total{namespace="{{namespace}}",revision="{{revision}}"}[2m]))'
    assert providers.measure(prometheus(f"{server.base}/prom", query), VARIABLES) == (
        MetricResult("m", 1.0)
    )
    request = server.requests[-1]
    assert request["path"] == "/prom/api/v1/query"
    assert request["query"]["query"] == (
        'sum(rate(payments_total{namespace="payments",revision="7e6a8d9c0b"}[2m]))'
    )


def test_prometheus_not_found_and_unreachable(server: Server) -> None:
    result = providers.measure(prometheus(f"{server.base}/nowhere", "one"), VARIABLES)
    assert result == MetricResult("m", None, "HTTP 404: no such route")
    result = providers.measure(prometheus(f"http://127.0.0.1:{_closed_port()}", "one"), VARIABLES)
    assert result.error is not None and result.error.startswith("cannot connect:")


def test_measure_all_returns_one_result_per_metric_in_order(server: Server) -> None:
    spec = api.Analysis.model_validate(
        {
            "metrics": [
                {**prometheus(f"{server.base}/prom", q).model_dump(by_alias=True), "name": q}
                for q in ("one", "empty", "two")
            ]
            + [{**web(f"{server.base}/data", "$.data.ratio").model_dump(by_alias=True)}]
        }
    )
    assert providers.measure_all(spec, VARIABLES) == [
        MetricResult("one", 0.995),
        MetricResult("empty", None),
        MetricResult("two", None, "query returned 2 series, expected 1"),
        MetricResult("m", 0.995),
    ]
