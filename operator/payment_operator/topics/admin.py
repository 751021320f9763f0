"""confluent-kafka's AdminClient: describe the topics a PaymentService wants, then carry out the
pure plan (:func:`payment_operator.rollout.topics.plan`): create, add partitions, restore the
owned config keys with an incremental alter.  Topics are deleted only when asked to
(:meth:`AdminClients.delete`, for ``topicDeletionPolicy: Delete``).

The calls are synchronous and run in the reconcile thread (Kopf's thread pool), never on the
event loop.  Every call has a timeout (``PAYDECK_KAFKA_ADMIN_TIMEOUT_SECONDS``): the request
timeout of the admin request, and the wait for its result a second longer.  A cluster that
does not answer ends the reconcile of the topics at its first call, so a pass waits for it
at most once.  A pass that changed something describes the topics again until the change
shows (at most the timeout), so the next pass does not write again; a reconcile of unchanged
topics makes two calls, both reads (DescribeTopics and DescribeConfigs).

One client per bootstrap string lives for the whole process (:class:`AdminClients`), created
on first use, so the number of connections does not grow with the number of passes.  The
clients connect with the operator's own :class:`Security` (its settings, from files mounted
into the operator's pod: the chart's ``kafkaAdmin`` values), never with a PaymentService's
``spec.kafka.security``, whose Secrets only the runtime's pods read.  The SASL user name and
password are read from their files when a client is created, and a client is created again
when any of those files changes (a rotated login or certificate, as a Secret volume update
lands): the next call after a rotation connects with the new files, without a restart.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from payment_operator.rollout import topics
from payment_operator.rollout.topics import LiveTopic, Report, TopicPlan, WantedTopic

log = logging.getLogger("paydeck.topics")

#: How much longer than the request timeout the operator waits for a call's result.
GRACE_SECONDS = 1.0
#: How often a pass that changed topics describes them again until the change shows.
SETTLE_POLL_SECONDS = 0.1

#: Errors that mean the cluster did not answer (rather than refused a request).
_UNREACHABLE = frozenset({
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._RESOLVE,
    KafkaError._DESTROY,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError.NETWORK_EXCEPTION,
    KafkaError.BROKER_NOT_AVAILABLE,
})

Futures = Mapping[Any, "concurrent.futures.Future[Any]"]
Config = dict[str, str | int | float | bool | Callable[[KafkaError], None]]

#: Client errors that keep a client from ever getting an answer (a refused login, a certificate
#: that does not verify): remembered per bootstrap string and named in an unreachable report,
#: which otherwise would only say that a call timed out.
_LOGIN_ERRORS = frozenset({
    KafkaError._AUTHENTICATION,
    KafkaError._SSL,
    KafkaError.SASL_AUTHENTICATION_FAILED,
})


class Admin(Protocol):
    """The AdminClient calls the operator makes (a test can wrap a real client)."""

    def describe_topics(self, topics: TopicCollection, **kwargs: Any) -> Futures: ...
    def describe_configs(self, resources: list[ConfigResource], **kwargs: Any) -> Futures: ...
    def create_topics(self, new_topics: list[NewTopic], **kwargs: Any) -> Futures: ...
    def create_partitions(self, new_partitions: list[NewPartitions], **kwargs: Any) -> Futures: ...
    def incremental_alter_configs(self, resources: list[ConfigResource],
                                  **kwargs: Any) -> Futures: ...
    def delete_topics(self, topics: list[str], **kwargs: Any) -> Futures: ...


class Unreachable(Exception):
    """The cluster did not answer a call in time."""


@dataclass(frozen=True)
class Security:
    """How the admin clients connect: protocol, TLS files, SASL mechanism and login files.

    Only paths are held here; :meth:`config` reads the login files.
    """

    protocol: str = "PLAINTEXT"
    ca_location: str | None = None
    certificate_location: str | None = None
    key_location: str | None = None
    sasl_mechanism: str | None = None
    sasl_username_file: str | None = None
    sasl_password_file: str | None = None

    def files(self) -> list[str]:
        """The files the clients read: TLS (with an SSL protocol) and SASL login files."""
        paths = [self.ca_location, self.certificate_location, self.key_location] if (
            self.protocol.endswith("SSL")) else []
        if self.protocol.startswith("SASL_"):
            paths += [self.sasl_username_file, self.sasl_password_file]
        return [p for p in paths if p is not None]

    def stamp(self) -> tuple[tuple[str, int, int, int] | str, ...]:
        """What identifies the current content of :meth:`files` (path, inode, size, mtime; a
        missing file is its path alone): a new stamp means a rotated login or certificate."""
        out: list[tuple[str, int, int, int] | str] = []
        for path in self.files():
            try:
                st = Path(path).stat()  # follows a Secret volume's ..data symlinks
            except OSError:
                out.append(path)
            else:
                out.append((path, st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(out)

    def config(self) -> Config:
        """librdkafka's security settings, with the SASL login read from its files now."""
        out: Config = {"security.protocol": self.protocol}
        if self.protocol.endswith("SSL"):
            files = {
                "ssl.ca.location": self.ca_location,
                "ssl.certificate.location": self.certificate_location,
                "ssl.key.location": self.key_location,
            }
            out.update({k: v for k, v in files.items() if v is not None})
        if self.protocol.startswith("SASL_"):
            if None in (self.sasl_mechanism, self.sasl_username_file, self.sasl_password_file):
                raise ValueError("a SASL protocol needs a mechanism and the login files")
            assert self.sasl_mechanism is not None
            assert self.sasl_username_file is not None and self.sasl_password_file is not None
            out["sasl.mechanism"] = self.sasl_mechanism
            out["sasl.username"] = _read(self.sasl_username_file)
            out["sasl.password"] = _read(self.sasl_password_file)
        return out


def _read(path: str) -> str:
    """A mounted Secret key's value, without the trailing newline editors add."""
    return Path(path).read_text(encoding="utf-8").rstrip("\r\n")


def client_config(bootstrap: str, timeout: float, security: Security | None = None) -> Config:
    """The AdminClient settings: ``security`` (PLAINTEXT without it) to ``bootstrap``, socket
    timeouts of ``timeout``."""
    millis = max(1000, int(timeout * 1000))
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "PLAINTEXT",
        "client.id": "paydeck-operator",
        "socket.timeout.ms": millis,
        "socket.connection.setup.timeout.ms": millis,
        # librdkafka logs each failed connect to stderr; while a broker is down it tries again
        # with a backoff of up to reconnect.backoff.max.ms (10 s), so the log stays readable.
        "log.connection.close": False,
        **(security.config() if security is not None else {}),
    }


def _default_factory(config: Config) -> Admin:
    return AdminClient(config)  # type: ignore[arg-type]  # the stubs omit callbacks


@dataclass(frozen=True)
class DeleteResult:
    """What deleting topics came to: deleted, already gone, not answered, refused."""

    bootstrap: str
    deleted: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    unreachable: str = ""
    failures: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.unreachable and not self.failures


class AdminClients:
    """One AdminClient per bootstrap string, created on first use; thread-safe.

    ``factory`` builds a client from its settings (confluent-kafka's AdminClient unless a test
    passes its own); ``security`` says how they connect (PLAINTEXT without it).
    """

    def __init__(self, timeout: float,
                 factory: Callable[[Config], Admin] | None = None,
                 security: Security | None = None) -> None:
        self.timeout = timeout
        self.security = security or Security()
        self._factory = factory or _default_factory
        self._clients: dict[str, Admin] = {}
        self._stamps: dict[str, object] = {}
        self._login_errors: dict[str, str] = {}
        self._lock = threading.Lock()

    def bootstraps(self) -> list[str]:
        """The bootstrap strings that have a client."""
        with self._lock:
            return list(self._clients)

    def get(self, bootstrap: str) -> Admin:
        """The client of ``bootstrap``: created now on its first use, or again when the
        security files changed since it was (the old one is closed)."""
        stamp = self.security.stamp()
        retired: Admin | None = None
        with self._lock:
            client = self._clients.get(bootstrap)
            if client is not None and self._stamps.get(bootstrap) != stamp:
                log.info("the Kafka admin login or certificates changed: reconnecting to %s",
                         bootstrap)
                retired, client = self._clients.pop(bootstrap), None
                self._login_errors.pop(bootstrap, None)
            if client is None:
                config = client_config(bootstrap, self.timeout, self.security)
                config["error_cb"] = functools.partial(self._on_error, bootstrap)
                client = self._factory(config)
                self._clients[bootstrap] = client
                self._stamps[bootstrap] = stamp
        if retired is not None:
            _close(retired)
        return client

    def close(self) -> None:
        """Drop every client (confluent-kafka closes a client's connections when it goes)."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
            self._stamps.clear()
        for client in clients:
            _close(client)

    def _on_error(self, bootstrap: str, err: KafkaError) -> None:
        """librdkafka's error callback: remember the last login error of ``bootstrap``."""
        if err.code() in _LOGIN_ERRORS:
            with self._lock:
                self._login_errors[bootstrap] = f"{err.name()}: {err.str()}"

    def _why(self, bootstrap: str, unreachable: str) -> str:
        """``unreachable``, with the last login error of ``bootstrap`` when there is one."""
        with self._lock:
            client = self._clients.get(bootstrap)
        poll = getattr(client, "poll", None)
        if unreachable and poll is not None:
            poll(0)  # serves the error callback (librdkafka queues it until a poll)
        with self._lock:
            login = self._login_errors.pop(bootstrap, "")
        return f"{unreachable} (last client error: {login})" if unreachable and login else (
            unreachable)

    def reconcile(self, bootstrap: str, wanted: Sequence[WantedTopic]) -> Report:
        """Bring the topics of ``bootstrap`` to ``wanted``; report what it came to (never
        raises: even an unexpected error ends up in the report, and so in TopicsReady)."""
        try:
            report = reconcile(self.get(bootstrap), bootstrap, wanted, self.timeout)
        except Exception as err:
            log.exception("reconciling kafka topics on %s failed", bootstrap)
            return Report(bootstrap, None, failures=(_text(err),), wanted=len(wanted))
        return dataclasses.replace(report, unreachable=self._why(bootstrap, report.unreachable))

    def delete(self, bootstrap: str, names: Sequence[str]) -> DeleteResult:
        """Delete the topics ``names`` from ``bootstrap`` (a topic already gone is fine)."""
        try:
            admin = self.get(bootstrap)
        except Exception as err:  # no client (an unreadable login file): nothing was deleted
            log.exception("creating a Kafka admin client for %s failed", bootstrap)
            return DeleteResult(bootstrap, failures=(_text(err),))
        result = delete(admin, bootstrap, names, self.timeout)
        return dataclasses.replace(result, unreachable=self._why(bootstrap, result.unreachable))


def _close(client: Admin) -> None:
    """Close a client if it can be (best effort: its connections go with it anyway)."""
    closer = getattr(client, "__exit__", None)
    if closer is not None:
        try:
            closer(None, None, None)
        except Exception:
            log.debug("closing a Kafka admin client failed", exc_info=True)


# ---- the calls ------------------------------------------------------------------------------


def _error(exc: BaseException) -> KafkaError | None:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


def _text(exc: BaseException) -> str:
    err = _error(exc)
    if err is None:
        return f"{type(exc).__name__}: {exc}".rstrip(": ")
    return f"{err.name()}: {err.str()}"


def _unreachable(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError):  # concurrent.futures.TimeoutError too
        return True
    err = _error(exc)
    return err is not None and err.code() in _UNREACHABLE


def _results(futures: Futures, timeout: float) -> dict[Any, Any]:
    """Each future's result or exception; :class:`Unreachable` when the cluster did not answer.

    Every future is waited for with one deadline, ``timeout`` plus :data:`GRACE_SECONDS`.
    """
    out: dict[Any, Any] = {}
    done, pending = concurrent.futures.wait(list(futures.values()),
                                            timeout=timeout + GRACE_SECONDS)
    if pending:
        raise Unreachable(f"no answer within {timeout:g}s")
    for key, future in futures.items():
        assert future in done
        exc = future.exception()
        if exc is not None and _unreachable(exc):
            raise Unreachable(_text(exc))
        out[key] = exc if exc is not None else future.result()
    return out


def _is(exc: object, code: int) -> bool:
    err = _error(exc) if isinstance(exc, BaseException) else None
    return err is not None and err.code() == code


def describe(
    admin: Admin, wanted: Sequence[WantedTopic], timeout: float
) -> tuple[dict[str, LiveTopic | None], list[str]]:
    """The wanted topics as the cluster has them (None: no such topic), and the topics it
    would not describe (``"<topic>: <error>"``)."""
    failures: list[str] = []
    found: dict[str, tuple[int, int]] = {}
    live: dict[str, LiveTopic | None] = {}
    described = _results(admin.describe_topics(TopicCollection([t.name for t in wanted]),
                                                request_timeout=timeout), timeout)
    for name, result in described.items():
        if _is(result, KafkaError.UNKNOWN_TOPIC_OR_PART):
            live[name] = None
        elif isinstance(result, BaseException):
            failures.append(f"{name}: {_text(result)}")
        else:
            partitions = result.partitions
            found[name] = (len(partitions), len(partitions[0].replicas) if partitions else 0)
    if found:
        resources = [ConfigResource(ResourceType.TOPIC, name) for name in found]
        configs = _results(admin.describe_configs(resources, request_timeout=timeout), timeout)
        owned = {t.name: t.config for t in wanted}
        for resource, result in configs.items():
            name = resource.name
            if isinstance(result, BaseException):
                failures.append(f"{name}: {_text(result)}")
                continue
            values = {k: e.value for k, e in result.items() if k in owned[name]}
            live[name] = LiveTopic(name, *found[name], config=values)
    return live, failures


def apply(admin: Admin, plan: TopicPlan, timeout: float) -> tuple[list[str], list[str]]:
    """Carry out ``plan``: what was done, and the changes the cluster refused.

    Raises :class:`Unreachable` at the first call the cluster does not answer (what was done
    before it is lost from the report, not from the cluster: the next pass describes it).
    """
    done: list[str] = []
    failures: list[str] = []
    if plan.create:
        new = [NewTopic(t.name, num_partitions=t.partitions, replication_factor=t.replicas,
                        config=dict(t.config)) for t in plan.create]
        results = _results(admin.create_topics(new, operation_timeout=timeout / 2,
                                               request_timeout=timeout), timeout)
        for topic in plan.create:
            result = results[topic.name]
            if result is None:
                done.append(topic.message)
            elif _is(result, KafkaError.TOPIC_ALREADY_EXISTS):
                # Created meanwhile, or so recently that the broker that described it did not
                # know it yet: not a change of this pass; the next pass describes it.
                continue
            else:
                failures.append(f"creating {topic.name}: {_text(result)}")
    if plan.grow:
        grow = [NewPartitions(g.topic, g.wanted) for g in plan.grow]
        results = _results(admin.create_partitions(grow, operation_timeout=timeout / 2,
                                                   request_timeout=timeout), timeout)
        for growth in plan.grow:
            result = results[growth.topic]
            if result is None:
                done.append(growth.message)
            else:
                failures.append(f"raising partitions of {growth.topic}: {_text(result)}")
    if plan.alter:
        resources = [
            ConfigResource(ResourceType.TOPIC, c.topic, incremental_configs=[
                ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                for k, v in sorted(c.values.items())])
            for c in plan.alter
        ]
        results = _results(admin.incremental_alter_configs(resources, request_timeout=timeout),
                           timeout)
        by_topic = {resource.name: result for resource, result in results.items()}
        for change in plan.alter:
            result = by_topic[change.topic]
            if result is None:
                done.append(change.message)
            else:
                failures.append(f"setting config of {change.topic}: {_text(result)}")
    return done, failures


def settle(admin: Admin, wanted: Sequence[WantedTopic], timeout: float) -> bool:
    """Describe ``wanted`` again until the cluster shows no change left to make, for at most
    ``timeout`` seconds; whether it got there.

    A broker answers from its metadata, which follows the controller a moment after a change:
    a pass right after a write could otherwise see the old topic and write again (create a
    topic that exists, add partitions that were just added).
    """
    deadline = time.monotonic() + timeout
    while True:
        live, _ = describe(admin, wanted, timeout)
        if not topics.plan([t for t in wanted if t.name in live], live).writes:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(SETTLE_POLL_SECONDS)


def reconcile(admin: Admin, bootstrap: str, wanted: Sequence[WantedTopic],
              timeout: float) -> Report:
    """Describe ``wanted`` on ``bootstrap``, plan, carry the plan out; the report says how it
    went (it never raises for Kafka's sake)."""
    if not wanted:
        return Report(bootstrap, TopicPlan())
    try:
        live, failures = describe(admin, wanted, timeout)
    except Unreachable as err:
        return Report(bootstrap, None, unreachable=str(err), wanted=len(wanted))
    except KafkaException as err:
        return Report(bootstrap, None, unreachable=_text(err), wanted=len(wanted))
    described = [t for t in wanted if t.name in live]
    topic_plan = topics.plan(described, live)
    try:
        done, refused = apply(admin, topic_plan, timeout)
        if done:
            settle(admin, described, timeout)
    except Unreachable as err:
        return Report(bootstrap, topic_plan, unreachable=str(err),
                      failures=tuple(failures), wanted=len(wanted))
    except KafkaException as err:
        return Report(bootstrap, topic_plan, unreachable=_text(err),
                      failures=tuple(failures), wanted=len(wanted))
    if done:
        log.info("kafka topics on %s: %s", bootstrap, "; ".join(done))
    return Report(bootstrap, topic_plan, done=tuple(done), failures=(*failures, *refused),
                  wanted=len(wanted))


def delete(admin: Admin, bootstrap: str, names: Sequence[str], timeout: float) -> DeleteResult:
    """Delete ``names``; a topic that does not exist counts as deleted already."""
    if not names:
        return DeleteResult(bootstrap)
    try:
        results = _results(admin.delete_topics(list(names), operation_timeout=timeout / 2,
                                               request_timeout=timeout), timeout)
    except Unreachable as err:
        return DeleteResult(bootstrap, unreachable=str(err))
    except KafkaException as err:
        return DeleteResult(bootstrap, unreachable=_text(err))
    deleted, missing, failures = [], [], []
    for name in names:
        result = results[name]
        if result is None:
            deleted.append(name)
        elif _is(result, KafkaError.UNKNOWN_TOPIC_OR_PART):
            missing.append(name)
        else:
            failures.append(f"{name}: {_text(result)}")
    return DeleteResult(bootstrap, tuple(deleted), tuple(missing), failures=tuple(failures))
