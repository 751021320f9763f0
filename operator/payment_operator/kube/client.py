"""A small synchronous REST client over the official ``kubernetes`` ApiClient.

It speaks the verbs the operator needs (get, list, server-side apply, merge-patch of
status, delete with preconditions, create) on raw dicts, and turns API errors into
:class:`~payment_operator.kube.errors.KubeError` (re-exported here) with the HTTP status
and the server's reason.  Handlers call it from Kopf's thread pool, never from the event loop.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from payment_operator.kube.errors import KubeError
from payment_operator.kube.resources import Resource

__all__ = ["FIELD_MANAGER", "Kube", "KubeError", "Obj"]

FIELD_MANAGER = "paydeck-operator"
Obj = dict[str, Any]


def _error(exc: Exception) -> KubeError:
    if isinstance(exc, ApiException):
        reason, message = exc.reason or "Error", str(exc.body or "")
        try:
            payload = json.loads(exc.body or "{}")
            reason = payload.get("reason") or reason
            message = payload.get("message") or message
        except (TypeError, ValueError):
            pass
        return KubeError(int(exc.status or 0), str(reason), message)
    return KubeError(0, "Unreachable", f"{type(exc).__name__}: {exc}")


class Kube:
    """Raw-dict access to the API server, one field manager for every apply."""

    def __init__(
        self, api_client: k8s.ApiClient, field_manager: str = FIELD_MANAGER,
        timeout: float = 30.0,
    ) -> None:
        self.api_client = api_client
        self.field_manager = field_manager
        self.timeout = timeout

    @classmethod
    def from_environment(
        cls, kubeconfig: str | None = None, timeout: float = 30.0, connections: int = 8,
    ) -> Kube:
        """In-cluster credentials, else the kubeconfig named (or $KUBECONFIG).

        ``connections``: how many threads use the client at once (Kopf's ``thread_workers``).
        """
        configuration = k8s.Configuration()
        if kubeconfig:
            k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        else:
            try:
                k8s_config.load_incluster_config(client_configuration=configuration)
            except k8s_config.ConfigException:
                k8s_config.load_kube_config(client_configuration=configuration)
        # Fail fast and let the caller's back-off decide: urllib3's own retries would hold a
        # worker thread (and the object's lock) for minutes while the API server is down.
        configuration.retries = False
        # Keep one keep-alive connection per worker thread.  The client's default pool is
        # 5 x os.cpu_count() (5 on a 1-CPU node): smaller than the workers, it discards the
        # connections it cannot hold after every burst ("Connection pool is full") and the
        # next burst pays a TLS handshake (~4-5 ms CPU, 5x a request) for each of them.
        configuration.connection_pool_maxsize = max(
            configuration.connection_pool_maxsize or 0, connections)
        return cls(k8s.ApiClient(configuration), timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | tuple[float, float] | None = None,
    ) -> Obj:
        try:
            response = self.api_client.call_api(
                path, method,
                query_params=list((query or {}).items()),
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=timeout if timeout is not None else (5, self.timeout),
            )
        except Exception as exc:  # urllib3 errors, timeouts, ApiException
            raise _error(exc) from exc
        data = response.data
        return json.loads(data) if data else {}

    # ---- verbs ---------------------------------------------------------------------------

    def get(self, resource: Resource, namespace: str | None, name: str) -> Obj | None:
        try:
            return self.request("GET", resource.path(namespace, name))
        except KubeError as err:
            if err.status == 404:
                return None
            raise

    def list_objects(
        self, resource: Resource, namespace: str | None, selector: str = ""
    ) -> list[Obj]:
        query = {"labelSelector": selector} if selector else {}
        try:
            items = self.request("GET", resource.collection(namespace), query=query)
        except KubeError as err:
            if err.status == 404:  # the kind is not installed in this cluster
                return []
            raise
        return list(items.get("items", []))

    def apply(self, manifest: Mapping[str, Any], resource: Resource, *, force: bool) -> Obj:
        """Server-side apply with this operator's field manager.

        ``force`` takes over fields other managers set; without it a conflict is a 409.
        Only force objects already known to be ours: force never asks whose object it is.
        """
        meta = manifest["metadata"]
        query = {"fieldManager": self.field_manager}
        if force:
            query["force"] = "true"
        return self.request(
            "PATCH", resource.path(meta.get("namespace"), meta["name"]),
            query=query, body=manifest, content_type="application/apply-patch+yaml",
        )

    def create(self, resource: Resource, manifest: Mapping[str, Any]) -> Obj:
        """Create an object (a 409 AlreadyExists when its name is taken)."""
        return self.request(
            "POST", resource.collection(manifest["metadata"].get("namespace")), body=manifest,
        )

    def patch_status(self, resource: Resource, namespace: str, name: str, patch: Obj) -> Obj:
        """JSON merge patch of the status subresource (resourceVersion in the patch guards it)."""
        return self.request(
            "PATCH", resource.path(namespace, name) + "/status",
            body=patch, content_type="application/merge-patch+json",
        )

    def json_patch(
        self, resource: Resource, namespace: str | None, name: str, ops: list[Obj]
    ) -> Obj:
        return self.request(
            "PATCH", resource.path(namespace, name),
            query={"fieldManager": self.field_manager},
            body=ops, content_type="application/json-patch+json",
        )

    def delete(self, resource: Resource, namespace: str | None, name: str, uid: str) -> None:
        body = {"kind": "DeleteOptions", "apiVersion": "v1",
                "preconditions": {"uid": uid}, "propagationPolicy": "Background"}
        try:
            self.request("DELETE", resource.path(namespace, name), body=body)
        except KubeError as err:
            if err.status not in (404, 409):
                raise

    def has_api(self, api_version: str) -> bool:
        """Whether the cluster serves a group/version (e.g. monitoring.coreos.com/v1)."""
        path = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        try:
            self.request("GET", path, timeout=10)
        except KubeError as err:
            if err.status == 404:
                return False
            raise
        return True
