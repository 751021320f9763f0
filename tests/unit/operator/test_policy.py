"""The operator's own check of the platform policy: the same rules, the same messages.

The pure rules (:mod:`payment_operator.policy`) are checked case by case here; that they give
the API server's verdicts is checked against the real ValidatingAdmissionPolicy in
tests/integration/packaging/test_admission_policies.py.  A reconcile pass applies nothing
when the policy refuses the spec, or when the policy object is missing.
"""

from datetime import UTC, datetime

import pytest
import yaml
from payment_operator import builders, policy, reconcile
from payment_operator.api import parse
from payment_operator.coalesce import Coalescer
from payment_operator.topics import AdminClients

from tests.unit.builders.cases import NAMESPACE, ROOT, minimal_body
from tests.unit.operator.fake_kube import FakeKube

pytestmark = pytest.mark.unit

CLIENT_ID = "0e3f1a2b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"
RULES = policy.PlatformRules.from_spec({
    "images": {"allowedPrefixes": ["ghcr.io/paydeck/"]},
    "ingress": {"hostSuffixes": [".pay.example"], "allowedAnnotations": ["cert-manager.io/"],
                "forbiddenAnnotations": ["cert-manager.io/issuer"]},
    "identity": {"azureClientIds": [CLIENT_ID],
                 "awsRoleArns": ["arn:aws:iam::123456789012:role/pay-.*", "([unclosed"]},
})


def check(**spec) -> list[str]:
    return policy.violations(parse(minimal_body(**spec)), RULES)


def test_defaults_are_the_crds():
    crd = yaml.safe_load((ROOT / "crds" / "paymentservicepolicies.paydeck.dev.yaml").read_text())
    props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    defaults = {f"{section}.{field}": body["default"]
                for section, sbody in props["properties"].items()
                for field, body in sbody["properties"].items()}
    empty = policy.PlatformRules.from_spec({})
    assert empty == policy.PlatformRules()
    assert defaults == {
        "images.allowedPrefixes": list(empty.allowed_image_prefixes),
        "stripe.allowApiBase": empty.allow_stripe_api_base,
        "ingress.hostSuffixes": list(empty.ingress_host_suffixes),
        "ingress.allowedAnnotations": list(empty.ingress_allowed_annotations),
        "ingress.forbiddenAnnotations": list(empty.ingress_forbidden_annotations),
        "service.allowedTypes": list(empty.service_allowed_types),
        "service.allowedAnnotations": list(empty.service_allowed_annotations),
        "identity.azureClientIds": list(empty.azure_client_ids),
        "identity.awsRoleArns": list(empty.aws_role_arns),
        "podDisruptionBudget.minMaxUnavailable": empty.pdb_min_max_unavailable,
    }


def test_a_compliant_spec_passes():
    assert check() == []
    assert check(ingress={"host": "eu.pay.example",
                          "annotations": {"cert-manager.io/cluster-issuer": "x"}},
                 replicas=3, podDisruptionBudget={"minAvailable": 2}) == []


STORE = {"backend": "csi", "objects": [{"name": "DATABASE_URL", "remoteRef": "db"}]}
DB = {"url": {"storeObject": "DATABASE_URL"}}


@pytest.mark.parametrize(
    ("spec", "rule"),
    [
        ({"image": "ghcr.io/paydeckx/runtime:1"}, "images.allowedPrefixes"),
        ({"stripe": {"apiBase": "https://x.example", "secretKey": {"storeObject": "K"}},
          "secretStore": {**STORE, "provider": "vault", "vault": {
              "address": "https://vault.example", "role": "r"},
              "objects": [{"name": "K", "remoteRef": "k"}, {"name": "DATABASE_URL",
                                                            "remoteRef": "db"}]},
          "database": DB}, "stripe.allowApiBase: spec.stripe.apiBase may not be set"),
        ({"ingress": {"host": "pay.example"}}, "ingress.hostSuffixes"),
        ({"ingress": {"host": "a.pay.example", "annotations": {"cert-manager.io/issuer": "x"}}},
         "spec.ingress.annotations cert-manager.io/issuer not allowed"),
        ({"ingress": {"host": "a.pay.example", "annotations": {"other.io/x": "x"}}},
         "spec.ingress.annotations other.io/x not allowed"),
        ({"service": {"type": "LoadBalancer"}}, "service.allowedTypes"),
        ({"service": {"annotations": {"a": "b"}}}, "service.allowedAnnotations"),
        ({"secretStore": {**STORE, "provider": "azure-keyvault", "azure": {
            "vaultName": "kv-pay", "tenantId": CLIENT_ID,
            "clientId": "11111111-2222-4333-8444-555555555555"}}, "database": DB},
         "identity.azureClientIds"),
        ({"secretStore": {**STORE, "provider": "aws-secrets-manager", "aws": {
            "region": "eu-west-1", "roleArn": "arn:aws:iam::123456789012:role/admin"}},
          "database": DB}, "identity.awsRoleArns"),
        ({"podDisruptionBudget": {"maxUnavailable": 0}}, "podDisruptionBudget.minMaxUnavailable"),
        ({"podDisruptionBudget": {"minAvailable": 2}}, "below the replicas (2)"),
        ({"replicas": 9, "autoscaling": {"minReplicas": 3, "maxReplicas": 9},
          "podDisruptionBudget": {"minAvailable": 3}}, "below the replicas (3)"),
    ],
)
def test_each_rule_refuses_naming_itself(spec, rule):
    [message] = check(**spec)
    assert message.startswith("platform policy ") and rule in message


def test_https_only_when_the_api_base_is_allowed():
    rules = policy.PlatformRules(allowed_image_prefixes=("ghcr.io/",), allow_stripe_api_base=True)

    def stripe(url: str) -> list[str]:
        body = minimal_body(stripe={"apiBase": url,
                                    "secretKey": {"secretRef": {"name": "s", "key": "k"}}})
        return policy.violations(parse(body), rules)
    assert stripe("https://stripe-mock.test") == []
    assert stripe("http://stripe-mock.test") == [
        "platform policy stripe.allowApiBase: spec.stripe.apiBase must be an https:// URL"]


# -- in a reconcile pass ------------------------------------------------------------------------

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def _pass(kube: FakeKube) -> reconcile.Outcome:
    return reconcile.reconcile(kube, Coalescer(), NAMESPACE, "pay", builders.Context(),
                               kafka_admins=AdminClients(timeout=1.0), trigger="test",
                               prune_children=True, now=NOW, platform_policy="platform")


def _setup(image: str, with_policy: bool = True) -> FakeKube:
    kube = FakeKube()
    body = minimal_body(image=image)
    body["metadata"].pop("uid")
    kube.add(body)
    if with_policy:
        kube.add({"apiVersion": policy.API_VERSION, "kind": policy.KIND,
                  "metadata": {"name": "platform"},
                  "spec": {"images": {"allowedPrefixes": ["ghcr.io/paydeck/"]}}})
    return kube


def test_a_pass_applies_nothing_the_policy_refuses():
    kube = _setup("elsewhere.example/runtime:1")
    outcome = _pass(kube)
    assert outcome.failure is not None and outcome.failure.reason == "PolicyViolation"
    assert "images.allowedPrefixes" in outcome.failure.message
    assert [w for w in kube.writes() if w[0] != "patch_status"] == []
    status = kube.stored("PaymentService", NAMESPACE, "pay")["status"]
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "PolicyViolation")
    assert "PolicyViolation" in [e.reason for e in outcome.events]


def test_without_the_policy_object_nothing_is_applied():
    kube = _setup("ghcr.io/paydeck/runtime:1", with_policy=False)
    outcome = _pass(kube)
    assert outcome.failure is not None and outcome.failure.reason == "PlatformPolicyMissing"
    assert [w for w in kube.writes() if w[0] != "patch_status"] == []


def test_a_compliant_service_is_applied_as_without_the_check():
    kube = _setup("ghcr.io/paydeck/runtime:1")
    outcome = _pass(kube)
    assert outcome.failure is None
    assert ("get", policy.KIND, "platform") in kube.calls
    assert any(w[0] == "apply" for w in kube.writes())
