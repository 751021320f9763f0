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
                     "kafka": {"security": {"tls": {
                         "caSecretRef": {"name": "kafka-ca", "key": "ca.crt"},
                         "certSecretRef": {"name": "kafka-client", "key": "tls.crt"},
                         "keySecretRef": {"name": "kafka-client", "key": "tls.key"}}}},
                     "secretStore": {"objects": [{"name": "X", "remoteRef": "y"}]}}}
    assert secrets.spec_refs(spec) == {"db": {"url"}, "stripe": {"sk", "wh"},
                                       "kafka-ca": {"ca.crt"},
                                       "kafka-client": {"tls.crt", "tls.key"}}


def test_configmap_volumes_and_env_from_are_found_and_optional_ones_are_not():
    pod = {
        "containers": [{"envFrom": [{"configMapRef": {"name": "pay-config"}},
                                    {"configMapRef": {"name": "maybe", "optional": True}}]}],
        "volumes": [
            {"name": "fx", "configMap": {"name": "fx-rates", "items": [{"key": "rates.json",
                                                                       "path": "rates.json"}]}},
            {"name": "o", "configMap": {"name": "opt", "optional": True}},
        ],
    }
    assert secrets.config_map_refs([_deployment(pod)]) == {
        "pay-config": set(), "fx-rates": {"rates.json"}}
