"""Strimzi's KafkaTopic version comes from discovery: ``kafka.strimzi.io/v1`` where the cluster
serves it (Strimzi 1.x, the real generated CRD), else ``v1beta2`` (older releases).

The v1beta2 cluster's CRD is derived from the generated one by renaming its one version: the
two versions' topic spec (topicName, partitions, replicas, config) is the same.  It runs on a
control plane of its own, since a CRD's stored version cannot be swapped under other tests.
"""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from payment_operator import api, builders
from payment_operator.kube.client import Kube
from payment_operator.kube.discovery import capabilities

from hack import cluster as local_cluster
from hack import crds
from tests.fixtures.cluster import ROOT, KubeCluster

pytestmark = pytest.mark.integration

CRD_NAME = "kafkatopics.kafka.strimzi.io"


def _generated_crd() -> dict:
    (path,) = crds.paths(["strimzi"])
    return yaml.safe_load(path.read_text())


def _v1beta2_crd() -> dict:
    """The generated CRD serving v1beta2 instead of v1 (same schema)."""
    crd = copy.deepcopy(_generated_crd())
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1"
    version["name"] = "v1beta2"
    return crd


def _install(cluster: KubeCluster, crd: dict) -> None:
    cluster.kubectl("apply", "--server-side", "--field-manager=tests", "-f", "-",
                    input=json.dumps(crd))
    local_cluster.wait_established(cluster.kubectl, [CRD_NAME])


def _topics(namespace: str, caps: builders.Capabilities) -> list[dict]:
    body = yaml.safe_load((ROOT / "manifests" / "samples" / "full.yaml").read_text())
    body["metadata"].update(namespace=namespace, uid="0b7c6d8e-1111-4222-8333-944445555666")
    body["spec"]["kafka"]["strimzi"].pop("namespace", None)
    built = builders.build_all(api.parse(body), builders.Context(capabilities=caps))
    return [{**m, "metadata": {**m["metadata"], "ownerReferences": []}}
            for m in built if m["kind"] == "KafkaTopic"]


def _discover(cluster: KubeCluster) -> builders.Capabilities:
    return capabilities(Kube.from_environment(str(cluster.kubeconfig)).has_api)


def _create_strictly(cluster: KubeCluster, topics: list[dict]) -> list[dict]:
    text = "\n---\n".join(json.dumps(t) for t in topics)
    dry = cluster.kubectl("apply", "--server-side", "--dry-run=server", "--validate=strict",
                          "--field-manager=paydeck-operator", "-f", "-", input=text, check=False)
    assert dry.returncode == 0, dry.stderr
    stored = []
    for topic in topics:
        made = cluster.kubectl("create", "--validate=strict", "-o", "json", "-f", "-",
                               input=json.dumps(topic), check=False)
        assert made.returncode == 0, made.stderr
        stored.append(json.loads(made.stdout))
    return stored


def test_the_real_v1_crd_is_discovered_and_takes_v1_topics(cluster, namespace):
    _install(cluster, _generated_crd())
    caps = _discover(cluster)
    assert (caps.strimzi, caps.strimzi_version) == (True, "v1")
    topics = _topics(namespace, caps)
    assert topics and {t["apiVersion"] for t in topics} == {"kafka.strimzi.io/v1"}
    stored = _create_strictly(cluster, topics)
    assert [(o["apiVersion"], o["spec"]) for o in stored] == [
        (t["apiVersion"], t["spec"]) for t in topics]


@pytest.fixture(scope="module")
def v1beta2_cluster() -> Iterator[KubeCluster]:
    from hack import tools

    state = Path(tempfile.mkdtemp(prefix="paydeck-strimzi-v1beta2-"))
    local = local_cluster.Cluster(state)
    try:
        local.up()
        yield KubeCluster(local.kubeconfig, str(tools.binary("kubectl")), local)
    finally:
        local.down()


def test_a_v1beta2_only_strimzi_gets_v1beta2_topics(v1beta2_cluster):
    cluster = v1beta2_cluster
    cluster.kubectl("create", "namespace", "payments")
    assert _discover(cluster).strimzi is False
    _install(cluster, _v1beta2_crd())
    caps = _discover(cluster)
    assert (caps.strimzi, caps.strimzi_version) == (True, "v1beta2")
    topics = _topics("payments", caps)
    assert topics and {t["apiVersion"] for t in topics} == {"kafka.strimzi.io/v1beta2"}
    stored = _create_strictly(cluster, topics)
    assert [(o["apiVersion"], o["spec"]) for o in stored] == [
        (t["apiVersion"], t["spec"]) for t in topics]
    # What a v1 emitter would send is refused here: the version really matters.
    v1 = {**topics[0], "apiVersion": "kafka.strimzi.io/v1",
          "metadata": {**topics[0]["metadata"], "name": "as-v1"}}
    refused = cluster.kubectl("create", "-f", "-", input=json.dumps(v1), check=False)
    assert refused.returncode != 0
