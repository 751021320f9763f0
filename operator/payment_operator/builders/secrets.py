"""Secret-store bindings: how the secrets of spec.secretStore reach ``<name>-secrets``.

* backend ``external-secrets`` (needs external-secrets.io/v1, the only version External
  Secrets v1.3 serves): a SecretStore that authenticates as the pods' ServiceAccount
  (workload identity, IRSA or Vault's Kubernetes auth) and an ExternalSecret that syncs
  every store object into ``<name>-secrets``.
* backend ``csi`` (needs secrets-store.csi.x-k8s.io/v1): a SecretProviderClass whose
  ``secretObjects`` sync the mounted objects into ``<name>-secrets``; the pod template
  mounts its volume (see :mod:`.workload`), which is what triggers the sync.

Either way the Secret's key is the store object's name, which is what a ``storeObject``
reference and the container's ``secretKeyRef`` use.  With Vault, each secret holds its
value under the key ``value``.  Nothing here is a secret value: only names and references.
"""

from __future__ import annotations

from typing import Any

from payment_operator.api.v1alpha1 import PaymentService, SecretStore, StoreObject
from payment_operator.builders import meta

#: The group/versions these children are emitted at (and discovery asks for, through
#: :data:`payment_operator.kube.resources.KNOWN`).
ESO_API_VERSION = "external-secrets.io/v1"
CSI_API_VERSION = "secrets-store.csi.x-k8s.io/v1"
#: Key of a Vault KV secret that holds the value.
VAULT_VALUE_KEY = "value"


def _eso_provider(ps: PaymentService, store: SecretStore) -> dict[str, Any]:
    account = {"name": meta.name(ps)}
    if store.azure is not None:
        return {
            "azurekv": {
                "authType": "WorkloadIdentity",
                "vaultUrl": f"https://{store.azure.vault_name}.vault.azure.net",
                "tenantId": store.azure.tenant_id,
                "serviceAccountRef": account,
            }
        }
    if store.aws is not None:
        return {
            "aws": {
                "service": "SecretsManager",
                "region": store.aws.region,
                "auth": {"jwt": {"serviceAccountRef": account}},
            }
        }
    assert store.vault is not None  # the model requires the block of the provider
    return {
        "vault": {
            "server": store.vault.address,
            "path": store.vault.mount_path,
            "version": "v2",
            "auth": {
                "kubernetes": {
                    "mountPath": store.vault.auth_path,
                    "role": store.vault.role,
                    "serviceAccountRef": account,
                }
            },
        }
    }


def _remote_ref(store: SecretStore, obj: StoreObject) -> dict[str, str]:
    ref = {"key": obj.remote_ref}
    if store.vault is not None:
        ref["property"] = VAULT_VALUE_KEY
    if obj.version is not None:
        ref["version"] = obj.version
    return ref


def external_secrets(ps: PaymentService, ctx: meta.Context) -> list[dict[str, Any]]:
    """SecretStore and ExternalSecret ``<name>`` for backend external-secrets."""
    store = ps.spec.secret_store
    if store is None or store.backend != "external-secrets":
        return []
    if not ctx.capabilities.external_secrets:
        return []
    secret_store = {
        "apiVersion": ESO_API_VERSION,
        "kind": "SecretStore",
        "metadata": meta.object_meta(ps, meta.name(ps)),
        "spec": {"provider": _eso_provider(ps, store)},
    }
    external_secret = {
        "apiVersion": ESO_API_VERSION,
        "kind": "ExternalSecret",
        "metadata": meta.object_meta(ps, meta.name(ps)),
        "spec": {
            "refreshInterval": store.refresh_interval,
            "secretStoreRef": {"kind": "SecretStore", "name": meta.name(ps)},
            "target": {"name": meta.secrets_name(ps), "creationPolicy": "Owner"},
            "data": [
                {"secretKey": obj.name, "remoteRef": _remote_ref(store, obj)}
                for obj in store.objects
            ],
        },
    }
    return [secret_store, external_secret]


def _yaml_list(items: list[dict[str, str]]) -> str:
    """A YAML sequence of flat string maps (the providers parse ``objects`` as YAML)."""
    lines: list[str] = []
    for item in items:
        for i, (key, value) in enumerate(item.items()):
            lead = "- " if i == 0 else "  "
            lines.append(f'{lead}{key}: "{value}"')
    return "\n".join(lines) + "\n"


def _csi_parameters(store: SecretStore) -> tuple[str, dict[str, str]]:
    if store.azure is not None:
        entries = [
            {
                "objectName": obj.remote_ref,
                "objectType": "secret",
                "objectAlias": obj.name,
                **({"objectVersion": obj.version} if obj.version is not None else {}),
            }
            for obj in store.objects
        ]
        objects = "array:\n" + "".join(
            "  - |\n" + "".join(f'    {k}: "{v}"\n' for k, v in entry.items()) for entry in entries
        )
        return "azure", {
            "usePodIdentity": "false",
            "clientID": store.azure.client_id,
            "keyvaultName": store.azure.vault_name,
            "tenantId": store.azure.tenant_id,
            "objects": objects,
        }
    if store.aws is not None:
        entries = [
            {
                "objectName": obj.remote_ref,
                "objectType": "secretsmanager",
                "objectAlias": obj.name,
                **({"objectVersion": obj.version} if obj.version is not None else {}),
            }
            for obj in store.objects
        ]
        return "aws", {"region": store.aws.region, "objects": _yaml_list(entries)}
    assert store.vault is not None  # the model requires the block of the provider
    entries = [
        {
            "objectName": obj.name,
            "secretPath": f"{store.vault.mount_path}/data/{obj.remote_ref}",
            "secretKey": VAULT_VALUE_KEY,
        }
        for obj in store.objects
    ]
    return "vault", {
        "vaultAddress": store.vault.address,
        "roleName": store.vault.role,
        "vaultKubernetesMountPath": store.vault.auth_path,
        "objects": _yaml_list(entries),
    }


def secret_provider_class(ps: PaymentService, ctx: meta.Context) -> dict[str, Any] | None:
    """SecretProviderClass ``<name>`` for backend csi, syncing ``<name>-secrets``."""
    store = ps.spec.secret_store
    if store is None or store.backend != "csi" or not ctx.capabilities.secrets_store_csi:
        return None
    provider, parameters = _csi_parameters(store)
    return {
        "apiVersion": CSI_API_VERSION,
        "kind": "SecretProviderClass",
        "metadata": meta.object_meta(ps, meta.name(ps)),
        "spec": {
            "provider": provider,
            "parameters": parameters,
            "secretObjects": [
                {
                    "secretName": meta.secrets_name(ps),
                    "type": "Opaque",
                    "labels": meta.child_labels(ps),
                    "data": [{"objectName": obj.name, "key": obj.name} for obj in store.objects],
                }
            ],
        },
    }


def secret_bindings(ps: PaymentService, ctx: meta.Context) -> list[dict[str, Any]]:
    """Every secret-store child the spec and the cluster call for."""
    spc = secret_provider_class(ps, ctx)
    return external_secrets(ps, ctx) + ([spc] if spc is not None else [])
