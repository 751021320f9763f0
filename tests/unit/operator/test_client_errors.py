"""The API client: failures classified for conditions (unreachable, forbidden, invalid, server
errors), and a connection pool as large as the threads that share it."""

import socket

import pytest
from kubernetes import client as k8s
from payment_operator.kube import resources
from payment_operator.kube.client import Kube, KubeError
from payment_operator.kube.errors import failure_of

pytestmark = pytest.mark.unit


def test_a_closed_port_is_unreachable_and_retryable():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    configuration = k8s.Configuration(host=f"http://127.0.0.1:{port}")
    configuration.retries = False
    kube = Kube(k8s.ApiClient(configuration))
    with pytest.raises(KubeError) as caught:
        kube.get(resources.PAYMENT_SERVICE, "ns", "x")
    assert caught.value.status == 0 and caught.value.retryable
    assert failure_of(caught.value).reason == "APIUnreachable"


@pytest.mark.parametrize(("status", "reason", "retryable"), [
    (403, "Forbidden", False), (422, "InvalidChild", False), (409, "Conflict", True),
    (429, "Throttled", True), (500, "APIServerError", True), (503, "APIServerError", True),
])
def test_http_failures_are_named(status, reason, retryable):
    failure = failure_of(KubeError(status, "x", "message"))
    assert (failure.reason, failure.retryable) == (reason, retryable)
    assert "message" in failure.message


def test_the_client_keeps_a_connection_per_worker_thread(tmp_path, monkeypatch):
    """A pool smaller than the threads that share it drops connections after each burst, and
    every one dropped costs a TLS handshake later (the default is 5 x the CPUs: 5 on one)."""
    import os

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    kube = Kube.from_environment(str(kubeconfig), connections=24)
    assert kube.api_client.rest_client.pool_manager.connection_pool_kw["maxsize"] == 24
