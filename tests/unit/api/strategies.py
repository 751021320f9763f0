"""Hypothesis strategies for valid PaymentService specs (shared by unit and integration tests).

Every strategy draws only values the CRD accepts, cross-field rules included, so a failure of
the round-trip property is a disagreement between the models and the generated schema.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from payment_operator.api import v1alpha1 as api

dns_label = st.from_regex(r"\A[a-z]([a-z0-9-]{0,10}[a-z0-9])?\Z")
env_name = st.from_regex(r"\A[A-Z_][A-Z0-9_]{0,15}\Z")
duration = st.lists(
    st.tuples(st.integers(0, 999), st.sampled_from(["ms", "s", "m", "h"])), min_size=1, max_size=3
).map(lambda parts: "".join(f"{n}{unit}" for n, unit in parts))
url = st.builds(
    lambda scheme, host, port: f"{scheme}://{host}:{port}",
    st.sampled_from(["http", "https"]),
    dns_label,
    st.integers(1, 65535),
)
plain_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=20)
# Control characters are left out: a server-side apply patch is YAML, which cannot carry them.
query_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40
)
# Queries and URLs with placeholders in them: only the known {{variable}}s are accepted.
placeholder = st.sampled_from(
    ["{{revision}}", "{{ namespace }}", "{{stable_revision}}", "{{name}}", '{job="x"}', "{"]
)
template_text = (
    st.lists(st.one_of(query_text, placeholder), min_size=1, max_size=4)
    .map("".join)
    .filter(api.is_template)
)
header_name = st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,20}\Z").filter(
    lambda n: n.lower() not in api.CREDENTIAL_HEADERS
)
header_value = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)
tag = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}\Z")
digest = st.from_regex(r"\Asha256:[a-f0-9]{64}\Z")
small_map = st.dictionaries(st.from_regex(r"\A[a-z][a-z0-9.-]{0,15}\Z"), plain_text, max_size=3)


def _model(model: type[api.ApiModel], **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Build ``model`` from strategies of its (snake_case) fields.

    ``st.builds`` would read pydantic's alias-based signature and draw the required
    fields a second time under their camelCase names.
    """
    return st.fixed_dictionaries(fields).map(lambda kw: model(**kw))


@st.composite
def images(draw: st.DrawFn) -> str:
    """Image references: optional registry with port, path, tag and/or digest."""
    registry = draw(
        st.one_of(
            st.just(""),
            st.builds(lambda h: f"{h}.example/", dns_label),
            st.builds(lambda h, p: f"{h}:{p}/", dns_label, st.integers(1, 65535)),
        )
    )
    path = "/".join(draw(st.lists(dns_label, min_size=1, max_size=3)))
    suffix = draw(
        st.one_of(
            tag.map(lambda t: f":{t}"),
            digest.map(lambda d: f"@{d}"),
            st.tuples(tag, digest).map(lambda td: f":{td[0]}@{td[1]}"),
        )
    )
    return f"{registry}{path}{suffix}"


def secret_values(store_names: list[str]) -> st.SearchStrategy[api.SecretValueRef]:
    """A secretRef, or a storeObject naming one of ``store_names``."""
    by_secret = st.builds(
        lambda n, k: api.SecretValueRef(secret_ref=api.SecretKeySelector(name=n, key=k)),
        dns_label,
        st.from_regex(r"\A[a-z][-._a-z0-9]{0,10}\Z"),
    )
    if not store_names:
        return by_secret
    by_store = st.sampled_from(store_names).map(lambda n: api.SecretValueRef(store_object=n))
    return st.one_of(by_secret, by_store)


@st.composite
def secret_stores(draw: st.DrawFn) -> api.SecretStore:
    """A secret store whose provider block matches its provider."""
    provider = draw(st.sampled_from(["azure-keyvault", "aws-secrets-manager", "vault"]))
    blocks: dict[str, Any] = {}
    if provider == "azure-keyvault":
        blocks["azure"] = api.AzureKeyVault(
            vault_name=draw(st.from_regex(r"\Akv-[a-z0-9]{1,10}\Z")),
            tenant_id=str(draw(st.uuids())),
            client_id=str(draw(st.uuids())),
        )
    elif provider == "aws-secrets-manager":
        blocks["aws"] = api.AwsSecretsManager(
            region=draw(st.sampled_from(["us-east-1", "eu-west-2", "ap-southeast-1"])),
            role_arn=f"arn:aws:iam::{draw(st.from_regex(r'[0-9]{12}', fullmatch=True))}:role/"
            + draw(dns_label),
        )
    else:
        blocks["vault"] = api.VaultStore(address=draw(url), role=draw(dns_label))
    names = draw(st.lists(env_name, min_size=1, max_size=4, unique=True))
    objects = [
        api.StoreObject(
            name=n,
            remote_ref=draw(st.from_regex(r"\A[A-Za-z0-9/_+=.@-]{1,20}\Z")),
            version=draw(st.none() | st.from_regex(r"\A[A-Z0-9]{1,8}\Z")),
        )
        for n in names
    ]
    return api.SecretStore(
        backend=draw(st.sampled_from(["external-secrets", "csi"])),
        provider=provider,
        refresh_interval=draw(duration),
        objects=objects,
        **blocks,
    )


@st.composite
def kafkas(draw: st.DrawFn) -> api.Kafka:
    """Kafka settings; a Strimzi block exactly when the provisioner is strimzi, Delete only
    with admin."""
    provisioner = draw(st.sampled_from(["strimzi", "admin", "none"]))
    names = draw(st.lists(st.from_regex(r"\A[a-z][a-z0-9._-]{0,20}\Z"), max_size=4, unique=True))
    topics = [
        api.Topic(
            name=n,
            partitions=draw(st.integers(1, 1000)),
            replicas=draw(st.integers(1, 10)),
            config=draw(st.none() | small_map),
        )
        for n in names
    ]
    hosts = draw(st.lists(st.tuples(dns_label, st.integers(1, 65535)), min_size=1, max_size=3))
    return api.Kafka(
        bootstrap_servers=",".join(f"{h}:{p}" for h, p in hosts),
        topic_provisioner=provisioner,
        strimzi=api.StrimziCluster(
            cluster_name=draw(dns_label), namespace=draw(st.none() | dns_label)
        )
        if provisioner == "strimzi"
        else None,
        topic_deletion_policy=draw(st.sampled_from(["Retain", "Delete"]))
        if provisioner == "admin"
        else "Retain",
        topics=topics if topics else draw(st.sampled_from([None, []])),
    )


@st.composite
def threshold_ranges(draw: st.DrawFn) -> api.ThresholdRange:
    """A range with at least one bound and min <= max."""
    bound = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
    low, high = sorted([draw(bound), draw(bound)])
    which = draw(st.sampled_from(["min", "max", "both"]))
    return api.ThresholdRange(
        min=low if which in ("min", "both") else None,
        max=high if which in ("max", "both") else None,
    )


@st.composite
def providers(draw: st.DrawFn) -> dict[str, Any]:
    """The provider block of a metric: prometheus or web."""
    timeout = draw(st.integers(1, 60))
    if draw(st.booleans()):
        query = draw(template_text)
        return {
            "prometheus": api.PrometheusQuery(
                address=draw(url), query=query, timeout_seconds=timeout
            )
        }
    path = draw(st.sampled_from(["", "/{{namespace}}/{{revision}}", "/success?rev={{revision}}"]))
    names = draw(st.lists(header_name, max_size=3, unique=True))
    return {
        "web": api.WebQuery(
            url=draw(url) + path,
            json_path=draw(st.sampled_from(["$.data.ratio", "ratio", "$.results[0].value"])),
            headers=draw(st.sampled_from([None, []]))
            if not names
            else [api.Header(name=n, value=draw(header_value)) for n in names],
            timeout_seconds=timeout,
        )
    }


@st.composite
def canaries(draw: st.DrawFn) -> api.Canary:
    """Canary steps with strictly increasing weights, and analysis when a step needs it."""
    weights = sorted(draw(st.sets(st.integers(1, 100), max_size=5)))
    extras = draw(st.lists(st.sampled_from(["pause", "timed-pause", "analysis"]), max_size=4))
    kinds: list[Any] = [*weights, *extras]
    order = draw(st.permutations(range(len(kinds)))) if kinds else []
    # Keep weights in increasing order while shuffling the other steps between them.
    steps: list[api.CanaryStep] = []
    weight_iter = iter(weights)
    for index in order:
        kind = kinds[index]
        if isinstance(kind, int):
            steps.append(api.CanaryStep(set_weight=next(weight_iter)))
        elif kind == "pause":
            steps.append(api.CanaryStep(pause=api.Pause()))
        elif kind == "timed-pause":
            steps.append(api.CanaryStep(pause=api.Pause(duration=draw(duration))))
        else:
            steps.append(api.CanaryStep(analysis=api.StepAnalysis(count=draw(st.integers(1, 100)))))
    if not steps:
        steps = [api.CanaryStep(set_weight=draw(st.integers(1, 100)))]
    needs_analysis = any(s.analysis is not None for s in steps)
    analysis = None
    if needs_analysis or draw(st.booleans()):
        metric_names = draw(st.lists(dns_label, min_size=1, max_size=3, unique=True))
        analysis = api.Analysis(
            interval=draw(duration),
            initial_delay=draw(st.none() | duration),
            failure_limit=draw(st.integers(0, 100)),
            inconclusive_limit=draw(st.integers(0, 100)),
            consecutive_error_limit=draw(st.integers(0, 100)),
            on_no_data=draw(st.sampled_from(["inconclusive", "fail", "pass"])),
            metrics=[
                api.Metric(name=n, threshold_range=draw(threshold_ranges()), **draw(providers()))
                for n in metric_names
            ],
        )
    return api.Canary(steps=steps, max_surge=draw(st.integers(0, 100)), analysis=analysis)


@st.composite
def specs(draw: st.DrawFn) -> api.PaymentServiceSpec:
    """A valid PaymentServiceSpec, exercising optional blocks with and without their content."""
    store = draw(st.none() | secret_stores())
    store_names = [o.name for o in store.objects] if store else []
    low = draw(st.integers(1, 1000))
    autoscaling = draw(
        st.none()
        | st.builds(
            lambda high, cpu, mem: api.Autoscaling(
                min_replicas=low,
                max_replicas=high,
                target_cpu_utilization_percentage=cpu,
                target_memory_utilization_percentage=mem,
            ),
            st.integers(low, 1000),
            st.integers(1, 100),
            st.none() | st.integers(1, 100),
        )
    )
    quantity = st.one_of(st.integers(0, 64), st.from_regex(r"\A[0-9]{1,4}(m|Mi|Gi)?\Z"))
    resources = draw(
        st.none()
        | _model(
            api.Resources,
            requests=st.none() | st.dictionaries(st.sampled_from(["cpu", "memory"]), quantity),
            limits=st.none() | st.dictionaries(st.sampled_from(["cpu", "memory"]), quantity),
        )
    )
    env_names = draw(st.none() | st.lists(env_name, max_size=3, unique=True))
    pdb_limit = st.integers(0, 1000)
    velocity_limit = st.builds(
        lambda scope, window, attempts, amount: api.VelocityLimit(
            scope=scope,
            window_seconds=window,
            max_attempts=attempts if attempts is not None or amount else 1,
            max_amount=amount,
        ),
        st.sampled_from(["customer", "paymentMethod", "client"]),
        st.integers(1, 604_800),
        st.none() | st.integers(1, 1_000_000),
        st.none()
        | st.dictionaries(
            st.from_regex(r"\A[A-Z]{3}\Z"), st.integers(1, 10**15), min_size=1, max_size=3
        ),
    )
    velocity = draw(
        st.none()
        | st.lists(velocity_limit, min_size=1, max_size=3).map(lambda ls: api.Velocity(limits=ls))
    )
    rate_limit = draw(
        st.none()
        | st.builds(
            lambda n, w: api.RateLimit(requests=n, window_seconds=w),
            st.integers(1, 1_000_000),
            st.integers(1, 86_400),
        )
    )
    redis = (
        None
        if velocity is None and rate_limit is None
        else api.Redis(
            url=draw(secret_values(store_names)),
            port=draw(st.integers(1, 65535)),
            failure_mode=draw(st.sampled_from(["open", "closed"])),
            timeout_milliseconds=draw(st.integers(5, 5000)),
        )
    )
    return api.PaymentServiceSpec(
        image=draw(images()),
        replicas=draw(st.integers(0, 1000)),
        autoscaling=autoscaling,
        resources=resources,
        env=None
        if env_names is None
        else [api.EnvVar(name=n, value=draw(plain_text)) for n in env_names],
        stripe=api.Stripe(
            api_version=draw(
                st.none() | st.from_regex(r"\A20[0-9]{2}-[01][0-9]-[0-3][0-9](\.[a-z]{1,8})?\Z")
            ),
            api_base=draw(st.none() | url),
            secret_key=draw(secret_values(store_names)),
            webhook_secret=draw(st.none() | secret_values(store_names)),
        ),
        database=api.Database(
            url=draw(secret_values(store_names)),
            pool_size=draw(st.integers(1, 200)),
            migrations=api.Migrations(
                enabled=draw(st.booleans()),
                timeout_seconds=draw(st.integers(30, 7200)),
                backoff_limit=draw(st.integers(0, 10)),
            ),
        ),
        auth=draw(
            st.none()
            | _model(
                api.Auth,
                jwks_url=url.map(lambda u: "https" + u.removeprefix("http").removeprefix("s")),
                issuer=st.one_of(url, st.from_regex(r"\A[A-Za-z0-9:/._-]{1,30}\Z")),
                audience=st.from_regex(r"\A[A-Za-z0-9:/._-]{1,30}\Z"),
            )
        ),
        kafka=draw(st.none() | kafkas()),
        secret_store=store,
        redis=redis,
        velocity=velocity,
        rate_limit=rate_limit,
        rollout=api.Rollout(
            canary=draw(st.none() | canaries()),
            progress_deadline_seconds=draw(st.integers(30, 86400)),
        ),
        service=api.Service(
            type=draw(st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer"])),
            port=draw(st.integers(1, 65535)),
            annotations=draw(st.none() | small_map),
        ),
        ingress=draw(
            st.none()
            | _model(
                api.Ingress,
                host=st.builds(lambda a, b: f"{a}.{b}", dns_label, dns_label),
                path=st.from_regex(r"\A/[a-z0-9/_-]{0,20}\Z"),
                class_name=st.none() | dns_label,
                tls=st.none() | _model(api.IngressTLS, secret_name=dns_label),
                annotations=st.none() | small_map,
            )
        ),
        network_policy=draw(
            st.none()
            | _model(
                api.NetworkPolicy,
                enabled=st.booleans(),
                allowed_namespaces=st.none() | st.lists(dns_label, max_size=3, unique=True),
            )
        ),
        pod_disruption_budget=draw(
            st.none()
            | pdb_limit.map(lambda n: api.PodDisruptionBudget(min_available=n))
            | pdb_limit.map(lambda n: api.PodDisruptionBudget(max_unavailable=n))
        ),
        monitoring=draw(
            st.none()
            | _model(
                api.Monitoring,
                service_monitor=st.booleans(),
                path=st.from_regex(r"\A/[a-z0-9/_-]{0,20}\Z"),
                interval=duration,
                labels=st.none() | small_map,
            )
        ),
        tracing=draw(
            st.none()
            | _model(
                api.Tracing,
                otlp_endpoint=st.builds(
                    lambda base, path: base + path, url, st.sampled_from(["", "/", "/otlp"])
                ),
                sample_ratio=st.floats(0, 1, allow_nan=False),
            )
        ),
    )


def payment_services(name: str = "roundtrip") -> st.SearchStrategy[api.PaymentService]:
    """Whole PaymentService objects with a fixed name."""
    return specs().map(
        lambda spec: api.PaymentService(metadata=api.ObjectMeta(name=name), spec=spec)
    )
