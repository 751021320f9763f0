"""The workload: ServiceAccount, settings ConfigMap, pod template, a Deployment per revision.

The pod template passes the ``restricted`` Pod Security Standard.  Secrets never appear in
it: each secret is an env var with ``valueFrom.secretKeyRef``, pointing either at the
user's Secret (``secretRef``) or at ``<name>-secrets`` (``storeObject``), the Secret the
secret store binding syncs.  The runtime reads them with its ``env`` secret provider.
Schema migrations run in a Job per revision (:mod:`.migrations`), never in the pods.

Kafka security (spec.kafka.security) reaches the runtime's container only, never the
migration Job's: the SASL user name and password as ``secretKeyRef`` env vars, the TLS CA
(and client certificate and key) as a read-only projected volume of the named Secret keys,
files readable by the pod's group only, whose paths the ConfigMap gives librdkafka.

Each revision runs under its own Deployment ``<name>-<revision>``, selected by its revision
label, so promoting a canary only changes replica counts: its pods are never rolled again.

:func:`revision` is the hash of the rendered pod template (without the revision label
itself): it changes exactly when the pods would change -- image, settings, secrets
wiring, resources -- and never with replicas, autoscaling, network or rollout settings.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from payment_operator.api.v1alpha1 import KafkaSecurity, PaymentService, SecretValueRef
from payment_operator.builders import meta

#: Resource requests of the container when the spec sets none.
DEFAULT_REQUESTS = {"cpu": "100m", "memory": "128Mi"}
#: The non-root user, group and fsGroup of the pod.
RUN_AS = 10001
TERMINATION_GRACE_SECONDS = 30
REVISION_HISTORY_LIMIT = 1  # a revision's template never changes
#: Where the Secrets Store CSI volume is mounted (only with backend csi).
CSI_MOUNT_PATH = "/mnt/secrets-store"
CSI_DRIVER = "secrets-store.csi.k8s.io"
#: The container of the migration Job.
MIGRATE_CONTAINER_NAME = "migrate"
#: Where the Kafka TLS files are mounted (only with spec.kafka.security.tls), and as what.
KAFKA_TLS_VOLUME = "kafka-tls"
KAFKA_TLS_MOUNT_PATH = "/etc/paydeck/kafka-tls"
KAFKA_TLS_CA_FILE = "ca.crt"
KAFKA_TLS_CERT_FILE = "tls.crt"
KAFKA_TLS_KEY_FILE = "tls.key"
#: Owner and group may read (the pod's fsGroup owns the files), nobody else.
KAFKA_TLS_MODE = 0o440
#: The user's rate-table ConfigMap key (spec.currencies), read-only, in the runtime's pods.
FX_RATES_VOLUME = "fx-rates"
FX_RATES_MOUNT_PATH = "/etc/paydeck/fx-rates"
FX_RATES_FILE = "rates.json"
FX_RATES_MODE = 0o444

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
ENV_KAFKA_SASL_USERNAME = "PAYMENT_KAFKA_SASL_USERNAME"
ENV_KAFKA_SASL_PASSWORD = "PAYMENT_KAFKA_SASL_PASSWORD"  # noqa: S105
ENV_REDIS_URL = "PAYMENT_REDIS_URL"
SECRET_ENV_NAMES = (
    ENV_STRIPE_SECRET_KEY,
    ENV_STRIPE_WEBHOOK_SECRET,
    ENV_DATABASE_URL,
    ENV_KAFKA_SASL_USERNAME,
    ENV_KAFKA_SASL_PASSWORD,
    ENV_REDIS_URL,
)
#: The runtime's names of the velocity scopes.
VELOCITY_SCOPES = {"customer": "customer", "paymentMethod": "payment_method", "client": "client"}
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
    if spec.currencies is not None and spec.currencies.reporting is not None:
        data["PAYMENT_REPORTING_CURRENCY"] = spec.currencies.reporting
        data["PAYMENT_FX_RATES_FILE"] = f"{FX_RATES_MOUNT_PATH}/{FX_RATES_FILE}"
    if spec.kafka is not None:
        data["PAYMENT_KAFKA_BOOTSTRAP_SERVERS"] = spec.kafka.bootstrap_servers
        data["PAYMENT_RELAY_IN_PROCESS"] = "true"
        if spec.kafka.topics:
            data["PAYMENT_KAFKA_TOPIC"] = spec.kafka.topics[0].name
        if spec.kafka.security is not None:
            data.update(kafka_security_settings(spec.kafka.security))
    if spec.tracing is not None:
        # service.version is PAYMENT_REVISION (downward API), already in every pod.
        data["PAYMENT_TRACING_OTLP_ENDPOINT"] = spec.tracing.otlp_endpoint
        data["PAYMENT_TRACING_SAMPLE_RATIO"] = repr(spec.tracing.sample_ratio)
        data["PAYMENT_TRACING_SERVICE_NAME"] = meta.name(ps)
    data.update(risk_settings(ps))
    return dict(sorted(data.items()))


def risk_settings(ps: PaymentService) -> dict[str, str]:
    """The risk checks' settings: velocity limits (JSON), the rate limit, Redis' failure
    mode, timeout, key prefix (the service's namespace and name) and secret name."""
    spec = ps.spec
    if spec.redis is None:  # the CRD requires it for velocity and rateLimit
        return {}
    data = {
        "PAYMENT_SECRET_NAME_REDIS_URL": ENV_REDIS_URL.removeprefix(_PREFIX),
        "PAYMENT_RISK_FAILURE_MODE": spec.redis.failure_mode,
        "PAYMENT_REDIS_TIMEOUT_SECONDS": str(spec.redis.timeout_milliseconds / 1000),
        "PAYMENT_REDIS_KEY_PREFIX": f"paydeck:{meta.namespace(ps)}:{meta.name(ps)}:",
    }
    if spec.velocity is not None:
        limits: list[dict[str, Any]] = []
        for limit in spec.velocity.limits:
            entry: dict[str, Any] = {
                "scope": VELOCITY_SCOPES[limit.scope],
                "window_seconds": limit.window_seconds,
            }
            if limit.max_attempts is not None:
                entry["max_attempts"] = limit.max_attempts
            if limit.max_amount:
                entry["max_amount"] = dict(sorted(limit.max_amount.items()))
            limits.append(entry)
        data["PAYMENT_VELOCITY_LIMITS"] = json.dumps(limits, separators=(",", ":"))
    if spec.rate_limit is not None:
        data["PAYMENT_RATE_LIMIT_REQUESTS"] = str(spec.rate_limit.requests)
        data["PAYMENT_RATE_LIMIT_WINDOW_SECONDS"] = str(spec.rate_limit.window_seconds)
    return data


def kafka_security_settings(security: KafkaSecurity) -> dict[str, str]:
    """The producer's protocol, TLS file paths, SASL mechanism and secret names."""
    data: dict[str, str] = {"PAYMENT_KAFKA_SECURITY_PROTOCOL": security.protocol}
    if security.tls is not None:
        data["PAYMENT_KAFKA_SSL_CA_LOCATION"] = f"{KAFKA_TLS_MOUNT_PATH}/{KAFKA_TLS_CA_FILE}"
        if security.tls.cert_secret_ref is not None:
            data["PAYMENT_KAFKA_SSL_CERTIFICATE_LOCATION"] = (
                f"{KAFKA_TLS_MOUNT_PATH}/{KAFKA_TLS_CERT_FILE}"
            )
            data["PAYMENT_KAFKA_SSL_KEY_LOCATION"] = f"{KAFKA_TLS_MOUNT_PATH}/{KAFKA_TLS_KEY_FILE}"
    if security.sasl is not None:
        data["PAYMENT_KAFKA_SASL_MECHANISM"] = security.sasl.mechanism
        data["PAYMENT_SECRET_NAME_KAFKA_SASL_USERNAME"] = ENV_KAFKA_SASL_USERNAME.removeprefix(
            _PREFIX
        )
        data["PAYMENT_SECRET_NAME_KAFKA_SASL_PASSWORD"] = ENV_KAFKA_SASL_PASSWORD.removeprefix(
            _PREFIX
        )
    return data


def _kafka_security(ps: PaymentService) -> KafkaSecurity | None:
    return ps.spec.kafka.security if ps.spec.kafka is not None else None


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


def secret_env(ps: PaymentService, *, kafka: bool = True) -> list[dict[str, Any]]:
    """The env vars that carry secrets, each a ``secretKeyRef`` (never a value); the Kafka
    SASL login and the Redis URL only with ``kafka`` (the runtime's container: the
    migration Job talks to neither)."""
    spec = ps.spec
    out = [_secret_env(ps, ENV_STRIPE_SECRET_KEY, spec.stripe.secret_key)]
    if spec.stripe.webhook_secret is not None:
        out.append(_secret_env(ps, ENV_STRIPE_WEBHOOK_SECRET, spec.stripe.webhook_secret))
    out.append(_secret_env(ps, ENV_DATABASE_URL, spec.database.url))
    security = _kafka_security(ps)
    if kafka and security is not None and security.sasl is not None:
        out.append(_secret_env(ps, ENV_KAFKA_SASL_USERNAME, security.sasl.username))
        out.append(_secret_env(ps, ENV_KAFKA_SASL_PASSWORD, security.sasl.password))
    if kafka and spec.redis is not None:
        out.append(_secret_env(ps, ENV_REDIS_URL, spec.redis.url))
    return out


def container_env(ps: PaymentService, *, kafka: bool = True) -> list[dict[str, Any]]:
    """spec.env (minus the runtime's ``PAYMENT_*`` names), the secret env vars (the Kafka
    login only with ``kafka``), then ``PAYMENT_REVISION`` (:func:`revision_env`; Job pods
    carry the revision label too).

    The CRD refuses ``PAYMENT_*`` names in spec.env; this filter holds even for an object
    stored before that rule (validation ratcheting keeps unchanged fields), since an
    ``env`` entry would override the ConfigMap's settings and the secrets wiring.  The
    runtime matches names case-insensitively, and so does the filter.

    An empty value is emitted without ``value``, as the API server returns it.
    """
    out: list[dict[str, Any]] = []
    for var in ps.spec.env or ():
        if var.name.upper().startswith(_PREFIX):
            continue
        out.append({"name": var.name, "value": var.value} if var.value else {"name": var.name})
    return [*out, *secret_env(ps, kafka=kafka), revision_env()]


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


def _uses_kafka_tls(ps: PaymentService) -> bool:
    security = _kafka_security(ps)
    return security is not None and security.tls is not None


def _volume_mounts(ps: PaymentService, *, kafka: bool = True) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]  # noqa: S108
    if _uses_csi(ps):
        mounts.append({"name": "secrets-store", "mountPath": CSI_MOUNT_PATH, "readOnly": True})
    if kafka and _uses_kafka_tls(ps):
        mounts.append(
            {"name": KAFKA_TLS_VOLUME, "mountPath": KAFKA_TLS_MOUNT_PATH, "readOnly": True}
        )
    if kafka and fx_rates_volume(ps) is not None:
        mounts.append({"name": FX_RATES_VOLUME, "mountPath": FX_RATES_MOUNT_PATH, "readOnly": True})
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


def revision_env() -> dict[str, Any]:
    """``PAYMENT_REVISION`` from the pod's own revision label (downward API).

    The runtime adds it to every series as ``revision``, so analysis queries can split any
    metric by revision; read from the label, it leaves the revision hash unchanged.
    """
    return {
        "name": "PAYMENT_REVISION",
        "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{meta.LABEL_REVISION}']"}},
    }


def migrate_container(ps: PaymentService) -> dict[str, Any]:
    """``payment-runtime migrate`` with the runtime container's image, environment and mounts.

    It reads the database URL exactly as ``serve`` does (the ConfigMap and the same secret
    env vars), and takes the main container's resources and security context.  It never
    talks to Kafka, so it gets neither the SASL login nor the Kafka TLS files.
    """
    return {
        "name": MIGRATE_CONTAINER_NAME,
        "image": ps.spec.image,
        "args": ["migrate"],
        "envFrom": [{"configMapRef": {"name": meta.config_map_name(ps)}}],
        "env": container_env(ps, kafka=False),
        "resources": resources(ps),
        "securityContext": _security_context(),
        "volumeMounts": _volume_mounts(ps, kafka=False),
    }


def kafka_tls_volume(ps: PaymentService) -> dict[str, Any] | None:
    """The projected volume of the Kafka TLS Secret keys (each may be another Secret)."""
    security = _kafka_security(ps)
    if security is None or security.tls is None:
        return None
    tls = security.tls
    files = [(tls.ca_secret_ref, KAFKA_TLS_CA_FILE)]
    if tls.cert_secret_ref is not None and tls.key_secret_ref is not None:
        files += [
            (tls.cert_secret_ref, KAFKA_TLS_CERT_FILE),
            (tls.key_secret_ref, KAFKA_TLS_KEY_FILE),
        ]
    return {
        "name": KAFKA_TLS_VOLUME,
        "projected": {
            "defaultMode": KAFKA_TLS_MODE,
            "sources": [
                {"secret": {"name": ref.name, "items": [{"key": ref.key, "path": path}]}}
                for ref, path in files
            ],
        },
    }


def fx_rates_volume(ps: PaymentService) -> dict[str, Any] | None:
    """The user's rate-table ConfigMap key as ``rates.json`` (a directory mount, not a
    subPath, so the kubelet's updates reach the runtime, which re-reads the file)."""
    currencies = ps.spec.currencies
    if currencies is None or currencies.rates_config_map is None:
        return None
    ref = currencies.rates_config_map
    return {
        "name": FX_RATES_VOLUME,
        "configMap": {
            "name": ref.name,
            "items": [{"key": ref.key, "path": FX_RATES_FILE}],
            "defaultMode": FX_RATES_MODE,
        },
    }


def volumes(ps: PaymentService, *, kafka: bool = True) -> list[dict[str, Any]]:
    """The pod's volumes: a small /tmp, the CSI secrets volume with backend csi, and the
    Kafka TLS files (with ``kafka`` and spec.kafka.security.tls) and the rate table (with
    ``kafka``, the runtime's pods, and spec.currencies)."""
    out: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    if _uses_csi(ps):
        out.append(
            {
                "name": "secrets-store",
                "csi": {
                    "driver": CSI_DRIVER,
                    "readOnly": True,
                    "volumeAttributes": {"secretProviderClass": meta.name(ps)},
                },
            }
        )
    tls_volume = kafka_tls_volume(ps) if kafka else None
    if tls_volume is not None:
        out.append(tls_volume)
    rates = fx_rates_volume(ps) if kafka else None
    if rates is not None:
        out.append(rates)
    return out


def pod_security_context() -> dict[str, Any]:
    """Non-root user and group, fsGroup, the runtime's default seccomp profile."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
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


def _pod_labels(ps: PaymentService) -> dict[str, str]:
    labels = dict(meta.child_labels(ps))
    store = ps.spec.secret_store
    if store is not None and store.azure is not None:
        labels[AZURE_USE_LABEL] = "true"
    return labels


def _pod_template(ps: PaymentService) -> dict[str, Any]:
    """The pod template without the revision label (the input of :func:`revision`)."""
    return {
        "metadata": {
            "labels": _pod_labels(ps),
            "annotations": {meta.ANNOTATION_CONFIG_HASH: meta.short_hash(config_data(ps))},
        },
        "spec": {
            "serviceAccountName": meta.name(ps),
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
            "securityContext": pod_security_context(),
            "containers": [container(ps)],
            "volumes": volumes(ps),
            "topologySpreadConstraints": _topology_spread(ps),
        },
    }


def revision(ps: PaymentService) -> str:
    """Short stable hash (10 hex chars) of everything that shapes the pods."""
    return meta.short_hash(_pod_template(ps))


def pod_template(ps: PaymentService) -> dict[str, Any]:
    """The pod template of the current spec, labelled with its revision."""
    template = _pod_template(ps)
    template["metadata"]["labels"][meta.LABEL_REVISION] = revision(ps)
    return template


def deployment_selector(ps: PaymentService, rev: str) -> dict[str, str]:
    """The (immutable) selector of a revision's Deployment: the service's pods of that revision."""
    return {**meta.selector_labels(ps), meta.LABEL_REVISION: rev}


def deployment_name(ps: PaymentService, rev: str) -> str:
    """Name of the Deployment that runs one revision."""
    return f"{meta.name(ps)}-{rev}"


def rolling_update(ps: PaymentService) -> dict[str, Any]:
    """maxSurge from the canary settings (1 without), maxUnavailable 0.

    A revision's pods never change once created, so this only matters if someone edits a
    revision's Deployment by hand. With ``maxSurge: 0`` one pod at a time is replaced
    instead: the API server rejects both limits at 0.
    """
    canary = ps.spec.rollout.canary
    surge = canary.max_surge if canary is not None else 1
    return {"maxSurge": surge, "maxUnavailable": 0 if surge > 0 else 1}


def deployment(
    ps: PaymentService, rev: str, replicas: int, template: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The Deployment ``<name>-<rev>`` with ``replicas`` pods.

    ``template`` is the pod template of an older revision, as its Deployment holds it (the
    spec only describes the newest revision); the newest revision's comes from the spec.
    """
    if template is None:
        template = pod_template(ps)
    labels = {meta.LABEL_REVISION: rev}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta.object_meta(ps, deployment_name(ps, rev), extra_labels=labels),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": deployment_selector(ps, rev)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": rolling_update(ps)},
            "revisionHistoryLimit": REVISION_HISTORY_LIMIT,
            "progressDeadlineSeconds": ps.spec.rollout.progress_deadline_seconds,
            "template": template,
        },
    }


def url_port(url: str) -> int:
    """The TCP port of an http(s) URL (its default when none is given)."""
    parts = urlsplit(url)
    if parts.port is not None:
        return parts.port
    return 443 if parts.scheme == "https" else 80
