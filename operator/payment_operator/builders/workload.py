"""The workload: ServiceAccount, ConfigMap of settings, the pod template and the stable Deployment.

The pod template passes the ``restricted`` Pod Security Standard.  Secrets never appear in
it: each secret is an env var with ``valueFrom.secretKeyRef``, pointing either at the
user's Secret (``secretRef``) or at ``<name>-secrets`` (``storeObject``), the Secret the
secret store binding syncs.  The runtime reads them with its ``env`` secret provider.
Unless ``spec.database.migrations.enabled`` is false, an init container runs
``payment-runtime migrate`` with the same image and environment before the runtime starts.

:func:`revision` is the hash of the rendered pod template (without the revision label
itself): it changes exactly when the pods would change -- image, settings, secrets
wiring, resources -- and never with replicas, autoscaling, network or rollout settings.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from payment_operator.api.v1alpha1 import PaymentService, SecretValueRef
from payment_operator.builders import meta

#: Resource requests of the container when the spec sets none.
DEFAULT_REQUESTS = {"cpu": "100m", "memory": "128Mi"}
#: The non-root user, group and fsGroup of the pod.
RUN_AS = 10001
TERMINATION_GRACE_SECONDS = 30
REVISION_HISTORY_LIMIT = 3
#: Where the Secrets Store CSI volume is mounted (only with backend csi).
CSI_MOUNT_PATH = "/mnt/secrets-store"
CSI_DRIVER = "secrets-store.csi.k8s.io"
#: The init container that applies the schema migrations before the runtime starts.
MIGRATE_CONTAINER_NAME = "migrate"

AZURE_CLIENT_ID_ANNOTATION = "azure.workload.identity/client-id"
AZURE_TENANT_ID_ANNOTATION = "azure.workload.identity/tenant-id"
AZURE_USE_LABEL = "azure.workload.identity/use"
AWS_ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"

#: Env vars carrying secrets, and the secret name the runtime asks its provider for.
#: The runtime's env provider reads ``PAYMENT_<secret name>``; the ConfigMap tells it
#: the names (``PAYMENT_SECRET_NAME_*``) so the two never drift apart.
ENV_STRIPE_SECRET_KEY = "PAYMENT_STRIPE_SECRET_KEY"  # noqa: S105 - a name, not a value
ENV_STRIPE_WEBHOOK_SECRET = "PAYMENT_STRIPE_WEBHOOK_SECRET"  # noqa: S105
ENV_DATABASE_URL = "PAYMENT_DATABASE_URL"
SECRET_ENV_NAMES = (ENV_STRIPE_SECRET_KEY, ENV_STRIPE_WEBHOOK_SECRET, ENV_DATABASE_URL)
_PREFIX = "PAYMENT_"


def service_account(ps: PaymentService) -> dict[str, Any]:
    """The pods' ServiceAccount, with the cloud identity of the secret store.

    Azure workload identity and AWS IRSA inject their own projected token, and the CSI
    driver and External Secrets request tokens themselves: the API token is never mounted.
    """
    annotations: dict[str, str] = {}
    store = ps.spec.secret_store
    if store is not None and store.azure is not None:
        annotations[AZURE_CLIENT_ID_ANNOTATION] = store.azure.client_id
        annotations[AZURE_TENANT_ID_ANNOTATION] = store.azure.tenant_id
    if store is not None and store.aws is not None:
        annotations[AWS_ROLE_ANNOTATION] = store.aws.role_arn
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta.object_meta(ps, meta.name(ps), annotations=annotations),
        "automountServiceAccountToken": False,
    }


def config_data(ps: PaymentService) -> dict[str, str]:
    """The runtime's non-secret settings (``PAYMENT_*``), as ConfigMap data."""
    spec = ps.spec
    pool = spec.database.pool_size
    data = {
        "PAYMENT_PORT": str(meta.HTTP_PORT),
        "PAYMENT_METRICS_PORT": str(meta.METRICS_PORT),
        "PAYMENT_SECRETS_PROVIDER": "env",
        "PAYMENT_SECRET_NAME_STRIPE_API_KEY": ENV_STRIPE_SECRET_KEY.removeprefix(_PREFIX),
        "PAYMENT_SECRET_NAME_STRIPE_WEBHOOK_SECRET": ENV_STRIPE_WEBHOOK_SECRET.removeprefix(
            _PREFIX
        ),
        "PAYMENT_SECRET_NAME_DATABASE_URL": ENV_DATABASE_URL.removeprefix(_PREFIX),
        "PAYMENT_DB_POOL_MIN": str(min(2, pool)),
        "PAYMENT_DB_POOL_MAX": str(pool),
        "PAYMENT_GRACEFUL_SHUTDOWN_SECONDS": str(TERMINATION_GRACE_SECONDS - 5),
    }
    if spec.stripe.api_version is not None:
        data["PAYMENT_STRIPE_API_VERSION"] = spec.stripe.api_version
    if spec.stripe.api_base is not None:
        data["PAYMENT_STRIPE_API_BASE"] = spec.stripe.api_base
    if spec.auth is not None:
        # Without these the runtime serves health, metrics and webhooks but refuses every
        # payment call with 503 auth_not_configured.
        data["PAYMENT_JWKS_URL"] = spec.auth.jwks_url
        data["PAYMENT_JWT_ISSUER"] = spec.auth.issuer
        data["PAYMENT_JWT_AUDIENCE"] = spec.auth.audience
    if spec.kafka is not None:
        data["PAYMENT_KAFKA_BOOTSTRAP_SERVERS"] = spec.kafka.bootstrap_servers
        data["PAYMENT_RELAY_IN_PROCESS"] = "true"
        if spec.kafka.topics:
            data["PAYMENT_KAFKA_TOPIC"] = spec.kafka.topics[0].name
    return dict(sorted(data.items()))


def config_map(ps: PaymentService) -> dict[str, Any]:
    """ConfigMap ``<name>-config``: the settings the container reads with ``envFrom``."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta.object_meta(ps, meta.config_map_name(ps)),
        "data": config_data(ps),
    }


def _secret_env(ps: PaymentService, env_name: str, ref: SecretValueRef) -> dict[str, Any]:
    if ref.secret_ref is not None:
        key_ref = {"name": ref.secret_ref.name, "key": ref.secret_ref.key}
    else:
        assert ref.store_object is not None  # the model guarantees exactly one
        key_ref = {"name": meta.secrets_name(ps), "key": ref.store_object}
    return {"name": env_name, "valueFrom": {"secretKeyRef": key_ref}}


def secret_env(ps: PaymentService) -> list[dict[str, Any]]:
    """The env vars that carry secrets, each a ``secretKeyRef`` (never a value)."""
    spec = ps.spec
    out = [_secret_env(ps, ENV_STRIPE_SECRET_KEY, spec.stripe.secret_key)]
    if spec.stripe.webhook_secret is not None:
        out.append(_secret_env(ps, ENV_STRIPE_WEBHOOK_SECRET, spec.stripe.webhook_secret))
    out.append(_secret_env(ps, ENV_DATABASE_URL, spec.database.url))
    return out


def container_env(ps: PaymentService) -> list[dict[str, Any]]:
    """spec.env (minus names reserved for secrets), then the secret env vars.

    An empty value is emitted without ``value``, as the API server returns it.
    """
    out: list[dict[str, Any]] = []
    for var in ps.spec.env or ():
        if var.name in SECRET_ENV_NAMES:
            continue
        out.append({"name": var.name, "value": var.value} if var.value else {"name": var.name})
    return out + secret_env(ps)


def _quantities(values: dict[str, int | str] | None) -> dict[str, str]:
    return {k: str(v) for k, v in sorted((values or {}).items())}


def resources(ps: PaymentService) -> dict[str, Any]:
    """Requests and limits from the spec; requests default to :data:`DEFAULT_REQUESTS`."""
    spec = ps.spec.resources
    requests = _quantities(spec.requests if spec else None) or dict(DEFAULT_REQUESTS)
    limits = _quantities(spec.limits if spec else None)
    out: dict[str, Any] = {"requests": requests}
    if limits:
        out["limits"] = limits
    return out


def _uses_csi(ps: PaymentService) -> bool:
    store = ps.spec.secret_store
    return store is not None and store.backend == "csi"


def _probe(path: str, *, period: int, failures: int, timeout: int = 2) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": meta.HTTP_PORT_NAME, "scheme": "HTTP"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
        "successThreshold": 1,
    }


def _volume_mounts(ps: PaymentService) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]  # noqa: S108
    if _uses_csi(ps):
        mounts.append({"name": "secrets-store", "mountPath": CSI_MOUNT_PATH, "readOnly": True})
    return mounts


def _security_context() -> dict[str, Any]:
    """Every container's: no privilege, no capabilities, read-only root, non-root."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }


def container(ps: PaymentService) -> dict[str, Any]:
    """The ``payment-runtime`` container: restricted, read-only root, probed."""
    return {
        "name": meta.CONTAINER_NAME,
        "image": ps.spec.image,
        "args": ["serve"],
        "ports": [
            {"name": meta.HTTP_PORT_NAME, "containerPort": meta.HTTP_PORT, "protocol": "TCP"},
            {
                "name": meta.METRICS_PORT_NAME,
                "containerPort": meta.METRICS_PORT,
                "protocol": "TCP",
            },
        ],
        "envFrom": [{"configMapRef": {"name": meta.config_map_name(ps)}}],
        "env": container_env(ps),
        "resources": resources(ps),
        "startupProbe": _probe("/health", period=5, failures=30),
        "livenessProbe": _probe("/health", period=10, failures=3),
        "readinessProbe": _probe("/health/ready", period=5, failures=3),
        "securityContext": _security_context(),
        "volumeMounts": _volume_mounts(ps),
    }


def migrate_container(ps: PaymentService) -> dict[str, Any] | None:
    """The ``migrate`` init container, or None when ``spec.database.migrations`` is disabled.

    ``payment-runtime migrate`` with the runtime container's image, environment (the
    ConfigMap and the same secret env vars: it reads the database URL exactly as ``serve``
    does), mounts and security context, so a pod starts only once the schema is at the
    version its readiness requires.  Every pod runs it: the runner holds a
    ``pg_advisory_lock``, so concurrent pods apply each migration once, and as long as the
    migrations only expand the schema the previous revision keeps serving meanwhile.
    (A migration Job gating the rollout is the later design.)  It takes the main container's
    resources: a pod's effective request is the larger of its init and app containers',
    so that costs no scheduling or quota and keeps the pod's QoS class.
    """
    if not ps.spec.database.migrations.enabled:
        return None
    return {
        "name": MIGRATE_CONTAINER_NAME,
        "image": ps.spec.image,
        "args": ["migrate"],
        "envFrom": [{"configMapRef": {"name": meta.config_map_name(ps)}}],
        "env": container_env(ps),
        "resources": resources(ps),
        "securityContext": _security_context(),
        "volumeMounts": _volume_mounts(ps),
    }


def _topology_spread(ps: PaymentService) -> list[dict[str, Any]]:
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": meta.selector_labels(ps)},
        }
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]


def _pod_labels(ps: PaymentService, track: str) -> dict[str, str]:
    labels = {**meta.child_labels(ps), meta.LABEL_TRACK: track}
    store = ps.spec.secret_store
    if store is not None and store.azure is not None:
        labels[AZURE_USE_LABEL] = "true"
    return labels


def _pod_template(ps: PaymentService, track: str) -> dict[str, Any]:
    """The pod template without the revision label (the input of :func:`revision`)."""
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    if _uses_csi(ps):
        volumes.append(
            {
                "name": "secrets-store",
                "csi": {
                    "driver": CSI_DRIVER,
                    "readOnly": True,
                    "volumeAttributes": {"secretProviderClass": meta.name(ps)},
                },
            }
        )
    migrate = migrate_container(ps)
    return {
        "metadata": {
            "labels": _pod_labels(ps, track),
            "annotations": {meta.ANNOTATION_CONFIG_HASH: meta.short_hash(config_data(ps))},
        },
        "spec": {
            "serviceAccountName": meta.name(ps),
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUN_AS,
                "runAsGroup": RUN_AS,
                "fsGroup": RUN_AS,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            **({"initContainers": [migrate]} if migrate is not None else {}),
            "containers": [container(ps)],
            "volumes": volumes,
            "topologySpreadConstraints": _topology_spread(ps),
        },
    }


def revision(ps: PaymentService) -> str:
    """Short stable hash (10 hex chars) of everything that shapes the pods."""
    return meta.short_hash(_pod_template(ps, meta.TRACK_STABLE))


def pod_template(ps: PaymentService, track: str = meta.TRACK_STABLE) -> dict[str, Any]:
    """The pod template of a track, labelled with the revision of the current spec."""
    template = _pod_template(ps, track)
    template["metadata"]["labels"][meta.LABEL_REVISION] = revision(ps)
    return template


def deployment_selector(ps: PaymentService, track: str = meta.TRACK_STABLE) -> dict[str, str]:
    """The (immutable) selector of a track's Deployment: the service's pods of that track."""
    return {**meta.selector_labels(ps), meta.LABEL_TRACK: track}


def rolling_update(ps: PaymentService) -> dict[str, Any]:
    """maxSurge from the canary settings (1 without), maxUnavailable 0.

    With ``maxSurge: 0`` (a fixed replica count) one pod at a time is replaced instead:
    the API server rejects both limits at 0.
    """
    canary = ps.spec.rollout.canary
    surge = canary.max_surge if canary is not None else 1
    return {"maxSurge": surge, "maxUnavailable": 0 if surge > 0 else 1}


def deployment(ps: PaymentService) -> dict[str, Any]:
    """The Deployment of the stable revision, ``<name>``."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta.object_meta(ps, meta.stable_deployment_name(ps)),
        "spec": {
            "replicas": ps.spec.replicas,
            "selector": {"matchLabels": deployment_selector(ps)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": rolling_update(ps)},
            "revisionHistoryLimit": REVISION_HISTORY_LIMIT,
            "progressDeadlineSeconds": ps.spec.rollout.progress_deadline_seconds,
            "template": pod_template(ps),
        },
    }


def url_port(url: str) -> int:
    """The TCP port of an http(s) URL (its default when none is given)."""
    parts = urlsplit(url)
    if parts.port is not None:
        return parts.port
    return 443 if parts.scheme == "https" else 80
