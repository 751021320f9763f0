"""The e2e suite's check that pods have their Secrets finds every kind of reference."""

import pytest

from tests.e2e import secrets

pytestmark = pytest.mark.unit


def _deployment(pod: dict) -> dict:
    return {"kind": "Deployment", "spec": {"template": {"spec": pod}}}


def test_every_kind_of_pod_reference_is_found_and_optional_ones_are_not():
    pod = {
        "initContainers": [{"env": [{"name": "A", "valueFrom": {
            "secretKeyRef": {"name": "init", "key": "k"}}}]}],
        "containers": [{
            "env": [
                {"name": "B", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}},
                {"name": "C", "valueFrom": {"secretKeyRef": {"name": "opt", "key": "x",
                                                              "optional": True}}},
                {"name": "D", "value": "plain"},
            ],
            "envFrom": [{"secretRef": {"name": "whole"}}],
        }],
        "volumes": [
            {"name": "v", "secret": {"secretName": "tls", "items": [{"key": "ca.crt",
                                                                     "path": "ca"}]}},
            {"name": "p", "projected": {"sources": [{"secret": {"name": "proj"}}]}},
        ],
    }
    assert secrets.pod_refs([_deployment(pod)]) == {
        "init": {"k"}, "db": {"url"}, "whole": set(), "tls": {"ca.crt"}, "proj": set()}


def test_the_spec_refs_are_collected_with_their_keys():
    spec = {"spec": {"database": {"url": {"secretRef": {"name": "db", "key": "url"}}},
                     "stripe": {"secretKey": {"secretRef": {"name": "stripe", "key": "sk"}},
                                "webhookSecret": {"secretRef": {"name": "stripe", "key": "wh"}}},
                     "secretStore": {"objects": [{"name": "X", "remoteRef": "y"}]}}}
    assert secrets.spec_refs(spec) == {"db": {"url"}, "stripe": {"sk", "wh"}}
