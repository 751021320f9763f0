"""The Secrets a PaymentService's pods need, created by the tests and checked before "Ready".

kwok marks every pod Ready whatever it references, so on its own the suite would never notice
a pod template naming a Secret nobody creates (on a real node that pod would sit in
CreateContainerConfigError).  Tests that expect Ready therefore create the Secrets the spec
names (:func:`create_for`), play External Secrets' part for the synced ones
(:func:`sync_external_secret`), and check with :func:`missing` that every Secret and key
(and ConfigMap, such as the rate table of spec.currencies) the live pod templates reference
exists.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from tests.fixtures.cluster import KubeCluster

#: The value every test Secret key holds (never a real credential).
VALUE = "test-value-not-a-secret"


def spec_refs(obj: Mapping[str, Any]) -> dict[str, set[str]]:
    """Secret name -> keys of every ``secretRef: {name, key}`` in a PaymentService's spec, and
    of every ``<something>SecretRef`` (spec.kafka.security.tls's caSecretRef and the like)."""
    refs: dict[str, set[str]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            for field, ref in node.items():
                if (field == "secretRef" or str(field).endswith("SecretRef")) and isinstance(
                        ref, Mapping) and "name" in ref:
                    refs.setdefault(ref["name"], set()).update(
                        [ref["key"]] if "key" in ref else [])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(obj.get("spec") or {})
    return refs


def _pod_specs(items: list[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for item in items:
        yield ((item.get("spec") or {}).get("template") or {}).get("spec") or {}


def pod_refs(workloads: list[Mapping[str, Any]]) -> dict[str, set[str]]:
    """Secret name -> keys the pod templates of ``workloads`` (Deployments, Jobs) need.

    Optional references (``optional: true``) are left out; a whole-Secret reference
    (``envFrom``, a secret volume) needs the Secret but no particular key.
    """
    refs: dict[str, set[str]] = {}
    for pod in _pod_specs(workloads):
        for container in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
            for env in container.get("env") or []:
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref and not ref.get("optional"):
                    refs.setdefault(ref["name"], set()).add(ref["key"])
            for source in container.get("envFrom") or []:
                ref = source.get("secretRef")
                if ref and not ref.get("optional"):
                    refs.setdefault(ref["name"], set())
        for volume in pod.get("volumes") or []:
            secret = volume.get("secret")
            if secret and not secret.get("optional"):
                refs.setdefault(secret["secretName"], set()).update(
                    item["key"] for item in secret.get("items") or [])
            for source in (volume.get("projected") or {}).get("sources") or []:
                ref = source.get("secret")
                if ref and not ref.get("optional"):
                    refs.setdefault(ref["name"], set()).update(
                        item["key"] for item in ref.get("items") or [])
    return refs


def _secret(name: str, keys: set[str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "type": "Opaque", "stringData": {key: VALUE for key in sorted(keys)}}


def create_for(cluster: KubeCluster, namespace: str, obj: Mapping[str, Any]) -> None:
    """Create (or complete) the Secrets a PaymentService's secretRefs name, as a user would."""
    for name, keys in sorted(spec_refs(obj).items()):
        cluster.kubectl("apply", "--server-side", "--field-manager=tests", "-n", namespace,
                        "-f", "-", input=json.dumps(_secret(name, keys)))


def sync_external_secret(cluster: KubeCluster, namespace: str, item: Mapping[str, Any]) -> None:
    """Write the Secret an ExternalSecret's controller would sync (its target, its keys)."""
    spec = item.get("spec") or {}
    name = (spec.get("target") or {}).get("name") or item["metadata"]["name"]
    keys = {entry["secretKey"] for entry in spec.get("data") or []}
    cluster.kubectl("apply", "--server-side", "--field-manager=tests", "-n", namespace,
                    "-f", "-", input=json.dumps(_secret(name, keys)))


def sync_provider_class(cluster: KubeCluster, namespace: str, item: Mapping[str, Any]) -> None:
    """Write the Secrets a SecretProviderClass syncs (``secretObjects``), as the Secrets Store
    CSI driver does once a pod mounts its volume (kubelet mounts it before it starts the
    containers, so their env can read the synced Secret)."""
    for obj in (item.get("spec") or {}).get("secretObjects") or []:
        keys = {entry["key"] for entry in obj.get("data") or []}
        cluster.kubectl("apply", "--server-side", "--field-manager=tests", "-n", namespace,
                        "-f", "-", input=json.dumps(_secret(obj["secretName"], keys)))


def config_map_refs(workloads: list[Mapping[str, Any]]) -> dict[str, set[str]]:
    """ConfigMap name -> keys the pod templates' ConfigMap volumes and ``envFrom`` need
    (optional ones left out): a kubelet would not start the pod without them."""
    refs: dict[str, set[str]] = {}
    for pod in _pod_specs(workloads):
        for container in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
            for source in container.get("envFrom") or []:
                ref = source.get("configMapRef")
                if ref and not ref.get("optional"):
                    refs.setdefault(ref["name"], set())
        for volume in pod.get("volumes") or []:
            ref = volume.get("configMap")
            if ref and not ref.get("optional"):
                refs.setdefault(ref["name"], set()).update(
                    item["key"] for item in ref.get("items") or [])
    return refs


def _have(cluster: KubeCluster, namespace: str, kind: str) -> dict[str, set[str]]:
    listed = cluster.kubectl("get", kind, "-n", namespace, "-o", "json")
    return {s["metadata"]["name"]: {*(s.get("data") or {})}
            for s in json.loads(listed.stdout)["items"]}


def missing(cluster: KubeCluster, namespace: str) -> list[str]:
    """Every Secret or ConfigMap (or key) the namespace's Deployments and Jobs need that does
    not exist."""
    workloads = []
    for kind in ("deployments", "jobs"):
        listed = cluster.kubectl("get", kind, "-n", namespace, "-o", "json")
        workloads.extend(json.loads(listed.stdout)["items"])
    out = []
    for what, refs in (("secret", pod_refs(workloads)),
                       ("configmap", config_map_refs(workloads))):
        have = _have(cluster, namespace, f"{what}s")
        for name, keys in sorted(refs.items()):
            if name not in have:
                out.append(f"{what} {name}")
            out.extend(f"{what} {name} key {key}" for key in sorted(keys - have.get(name, set())))
    return out

