"""The platform's policy for PaymentServices, checked again before anything is applied.

The API server enforces the platform policy at admission (the chart's ValidatingAdmissionPolicy
``<release>-platform``, whose params are a cluster-scoped PaymentServicePolicy).  Admission only
sees writes: a PaymentService admitted before the platform tightened its rules, or written while
the policy was not installed, would still be acted on.  So the operator reads the same
PaymentServicePolicy and checks the spec with the same rules before each pass applies
anything; a violation stops the pass with the same message the API server gives, naming the
rule by its PaymentServicePolicy field.

Pure: the PaymentServicePolicy's spec comes in as a mapping (defaults as in its CRD), the
PaymentService as the parsed model.  Patterns are full-match regular expressions, as in the
policy's CEL (``matches('^(?:' + p + ')$')``); one that does not compile matches nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from payment_operator.api.v1alpha1 import PaymentService

API_VERSION = "paydeck.dev/v1alpha1"
KIND = "PaymentServicePolicy"
PLURAL = "paymentservicepolicies"
PREFIX = "platform policy"


@dataclass(frozen=True)
class PlatformRules:
    """A PaymentServicePolicy's spec, with the CRD's defaults (an empty list allows nothing)."""

    allowed_image_prefixes: tuple[str, ...] = ()
    allow_stripe_api_base: bool = False
    ingress_host_suffixes: tuple[str, ...] = ()
    ingress_allowed_annotations: tuple[str, ...] = ()
    ingress_forbidden_annotations: tuple[str, ...] = ()
    service_allowed_types: tuple[str, ...] = ("ClusterIP",)
    service_allowed_annotations: tuple[str, ...] = ()
    azure_client_ids: tuple[str, ...] = ()
    aws_role_arns: tuple[str, ...] = ()
    pdb_min_max_unavailable: int = 1

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> PlatformRules:
        def section(name: str) -> Mapping[str, Any]:
            return spec.get(name) or {}

        def strings(name: str, field: str, default: Sequence[str] = ()) -> tuple[str, ...]:
            value = section(name).get(field)
            return tuple(str(v) for v in (default if value is None else value))

        pdb = section("podDisruptionBudget").get("minMaxUnavailable")
        return cls(
            allowed_image_prefixes=strings("images", "allowedPrefixes"),
            allow_stripe_api_base=bool(section("stripe").get("allowApiBase", False)),
            ingress_host_suffixes=strings("ingress", "hostSuffixes"),
            ingress_allowed_annotations=strings("ingress", "allowedAnnotations"),
            ingress_forbidden_annotations=strings("ingress", "forbiddenAnnotations"),
            service_allowed_types=strings("service", "allowedTypes", ("ClusterIP",)),
            service_allowed_annotations=strings("service", "allowedAnnotations"),
            azure_client_ids=strings("identity", "azureClientIds"),
            aws_role_arns=strings("identity", "awsRoleArns"),
            pdb_min_max_unavailable=1 if pdb is None else int(pdb),
        )


def _key_matches(key: str, entries: Sequence[str]) -> bool:
    """An annotation key matches an entry equal to it, or a prefix entry ending with "/"."""
    return any(key.startswith(e) if e.endswith("/") else key == e for e in entries)


def _host_matches(host: str, entries: Sequence[str]) -> bool:
    """A host matches an entry equal to it, or a suffix entry starting with "."."""
    return any(host.endswith(e) if e.startswith(".") else host == e for e in entries)


def _full_match(value: str, patterns: Sequence[str]) -> bool:
    for pattern in patterns:
        try:
            if re.fullmatch(pattern, value):
                return True
        except re.error:
            continue
    return False


def violations(ps: PaymentService, rules: PlatformRules) -> list[str]:
    """What in the spec breaks the rules, each message naming its rule; empty when none."""
    spec = ps.spec
    out: list[str] = []
    prefixes = rules.allowed_image_prefixes
    if not any(spec.image.startswith(p) for p in prefixes):
        out.append(f"{PREFIX} images.allowedPrefixes: spec.image {spec.image} is not from an"
                   f" allowed registry ({', '.join(prefixes)})")
    api_base = spec.stripe.api_base
    if api_base is not None and not rules.allow_stripe_api_base:
        out.append(f"{PREFIX} stripe.allowApiBase: spec.stripe.apiBase may not be set (the"
                   " Stripe secret key would be sent to it)")
    elif api_base is not None and not api_base.startswith("https://"):
        out.append(f"{PREFIX} stripe.allowApiBase: spec.stripe.apiBase must be an https:// URL")
    ingress = spec.ingress
    if ingress is not None:
        suffixes = rules.ingress_host_suffixes
        if not _host_matches(ingress.host, suffixes):
            allowed = ", ".join(suffixes) if suffixes else "no Ingress is allowed"
            out.append(f"{PREFIX} ingress.hostSuffixes: spec.ingress.host {ingress.host} is"
                       f" not allowed ({allowed})")
        refused = [k for k in sorted(ingress.annotations or {})
                   if not _key_matches(k, rules.ingress_allowed_annotations)
                   or _key_matches(k, rules.ingress_forbidden_annotations)]
        if refused:
            out.append(f"{PREFIX} ingress.allowedAnnotations/forbiddenAnnotations:"
                       f" spec.ingress.annotations {', '.join(refused)} not allowed")
    if spec.service.type not in rules.service_allowed_types:
        out.append(f"{PREFIX} service.allowedTypes: spec.service.type {spec.service.type} is"
                   f" not allowed ({', '.join(rules.service_allowed_types)})")
    refused = [k for k in sorted(spec.service.annotations or {})
               if not _key_matches(k, rules.service_allowed_annotations)]
    if refused:
        out.append(f"{PREFIX} service.allowedAnnotations: spec.service.annotations"
                   f" {', '.join(refused)} not allowed")
    store = spec.secret_store
    if store is not None and store.azure is not None and not _full_match(
            store.azure.client_id, rules.azure_client_ids):
        out.append(f"{PREFIX} identity.azureClientIds: spec.secretStore.azure.clientId"
                   f" {store.azure.client_id} is not an allowed identity")
    if store is not None and store.aws is not None and not _full_match(
            store.aws.role_arn, rules.aws_role_arns):
        out.append(f"{PREFIX} identity.awsRoleArns: spec.secretStore.aws.roleArn"
                   f" {store.aws.role_arn} is not an allowed role")
    pdb = spec.pod_disruption_budget
    if pdb is not None and pdb.max_unavailable is not None and (
            pdb.max_unavailable < rules.pdb_min_max_unavailable):
        out.append(f"{PREFIX} podDisruptionBudget.minMaxUnavailable:"
                   " spec.podDisruptionBudget.maxUnavailable must be at least"
                   f" {rules.pdb_min_max_unavailable} (a lower one blocks node drains)")
    replicas = spec.autoscaling.min_replicas if spec.autoscaling is not None else spec.replicas
    if pdb is not None and pdb.min_available and pdb.min_available >= replicas:
        out.append(f"{PREFIX} podDisruptionBudget: spec.podDisruptionBudget.minAvailable must"
                   f" be below the replicas ({replicas}), or no pod could ever be evicted")
    return out
