"""payment_operator.topics.admin over the in-memory cluster: which calls a reconcile makes, and
how the cluster's answers (or silence) end up in the report.  The real broker is in
tests/integration/test_topics_admin.py."""

from __future__ import annotations

import time
from concurrent.futures import Future

import pytest
from confluent_kafka import KafkaError, KafkaException
from payment_operator.rollout.topics import WantedTopic
from payment_operator.settings import Settings
from payment_operator.topics import AdminClients, admin
from pydantic import ValidationError

from tests.unit.operator.fake_kafka import FakeKafka

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

BOOT = "kafka:9092"
WANTED = [WantedTopic("a", 3, 1, {"retention.ms": "1000"}), WantedTopic("b", 1, 1)]


def _topic(partitions: int = 3, **config: str) -> dict:
    return {"partitions": partitions, "replicas": 1, "config": dict(config)}


def test_a_first_reconcile_creates_in_one_call_and_the_next_only_reads():
    cluster = FakeKafka()
    report = admin.reconcile(cluster, BOOT, WANTED, 1.0)
    # No config to read before; after the write, one look to see it took.
    assert cluster.calls == ["describe_topics", "create_topics",
                             "describe_topics", "describe_configs"]
    assert report.done == ("created a (3 partitions, replication factor 1)",
                           "created b (1 partitions, replication factor 1)")
    cluster.calls.clear()
    assert admin.reconcile(cluster, BOOT, WANTED, 1.0).done == ()
    assert cluster.calls == ["describe_topics", "describe_configs"]


def test_each_kind_of_change_is_one_call_for_all_topics():
    cluster = FakeKafka(topics={"a": _topic(1, **{"retention.ms": "5"}), "x": _topic(1)})
    wanted = [*WANTED, WantedTopic("c", 2, 1, {"retention.ms": "7"})]
    cluster.topics["c"] = _topic(1, **{"retention.ms": "6"})
    report = admin.reconcile(cluster, BOOT, wanted, 1.0)
    assert cluster.calls == ["describe_topics", "describe_configs", "create_topics",
                             "create_partitions", "incremental_alter_configs",
                             "describe_topics", "describe_configs"]
    assert cluster.topics["a"] == _topic(3, **{"retention.ms": "1000"})
    assert cluster.topics["c"] == _topic(2, **{"retention.ms": "7"})
    assert cluster.topics["x"] == _topic(1)  # not ours
    assert not report.failures and not report.unreachable


def test_a_pass_that_created_topics_waits_until_the_broker_knows_them():
    cluster = FakeKafka(describe_lag=3)
    admin.reconcile(cluster, BOOT, WANTED, 2.0)
    assert cluster.calls.count("describe_topics") == 1 + 4  # before, then until known
    cluster.calls.clear()
    assert admin.reconcile(cluster, BOOT, WANTED, 2.0).done == ()
    assert cluster.writes() == []  # the next pass does not create them again


def test_settling_gives_up_after_the_timeout():
    cluster = FakeKafka(describe_lag=10_000)
    started = time.monotonic()
    report = admin.reconcile(cluster, BOOT, WANTED, 0.3)
    assert 0.3 <= time.monotonic() - started < 1.0
    assert len(report.done) == 2 and not report.failures  # created; it just did not show yet


def test_a_topic_that_exists_but_was_not_described_yet_is_no_change_and_no_failure():
    cluster = FakeKafka(topics={"a": _topic(**{"retention.ms": "1000"})}, lagging={"a"})
    report = admin.reconcile(cluster, BOOT, WANTED[:1], 1.0)
    assert cluster.writes() == ["create_topics"]
    assert report.done == () and report.failures == () and not report.unreachable


def test_a_cluster_that_does_not_answer_ends_the_reconcile_at_the_first_call():
    cluster = FakeKafka(down=True)
    report = admin.reconcile(cluster, BOOT, WANTED, 1.0)
    assert cluster.calls == ["describe_topics"]
    assert report.plan is None and report.unreachable.startswith("_TIMED_OUT")


class Silent(FakeKafka):
    """Accepts the request and never answers (a future that never completes)."""

    def describe_topics(self, topics, **kwargs):
        self.calls.append("describe_topics")
        return {name: Future() for name in topics.topic_names}


def test_no_answer_at_all_is_unreachable_after_the_timeout_plus_the_grace():
    started = time.monotonic()
    report = admin.reconcile(Silent(), BOOT, WANTED, 0.2)
    took = time.monotonic() - started
    assert report.unreachable == "no answer within 0.2s"
    assert 0.2 + admin.GRACE_SECONDS - 0.05 <= took < 0.2 + admin.GRACE_SECONDS + 1


def test_an_unexpected_error_is_reported_not_raised():
    class Broken(FakeKafka):
        def describe_topics(self, topics, **kwargs):
            raise ValueError("odd")

    admins = AdminClients(1.0, factory=lambda config: Broken())
    report = admins.reconcile(BOOT, WANTED)
    assert report.plan is None and report.failures == ("ValueError: odd",)


def test_nothing_wanted_makes_no_call():
    cluster = FakeKafka()
    assert admin.reconcile(cluster, BOOT, [], 1.0).done == ()
    assert cluster.calls == []


def test_one_client_per_bootstrap_string_with_plaintext_and_the_timeout():
    made = []
    admins = AdminClients(2.5, factory=lambda config: made.append(config) or FakeKafka())
    for _ in range(3):
        admins.reconcile("a:9092", WANTED)
        admins.reconcile("b:9092,c:9092", WANTED)
    assert [c["bootstrap.servers"] for c in made] == ["a:9092", "b:9092,c:9092"]
    assert all(c["security.protocol"] == "PLAINTEXT" for c in made)
    assert made[0]["socket.timeout.ms"] == 2500
    assert admins.bootstraps() == ["a:9092", "b:9092,c:9092"]


def test_deleting_tells_deleted_from_missing_and_unreachable():
    cluster = FakeKafka(topics={"a": _topic()})
    result = admin.delete(cluster, BOOT, ["a", "b"], 1.0)
    assert (result.ok, result.deleted, result.missing) == (True, ("a",), ("b",))
    down = admin.delete(FakeKafka(down=True), BOOT, ["a"], 1.0)
    assert not down.ok and down.unreachable.startswith("_TIMED_OUT")


ADMIN_PASSWORD = "s3cret-admin"


def _login(tmp_path) -> admin.Security:
    (tmp_path / "username").write_text("operator\n")
    (tmp_path / "password").write_text(ADMIN_PASSWORD + "\n")
    return admin.Security(
        protocol="SASL_SSL",
        ca_location="/etc/paydeck/kafka-admin/tls/ca.crt",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username_file=str(tmp_path / "username"),
        sasl_password_file=str(tmp_path / "password"),
    )


def test_clients_connect_with_the_operators_security_and_read_the_login_files(tmp_path):
    made = []
    admins = AdminClients(2.5, factory=lambda config: made.append(config) or FakeKafka(),
                          security=_login(tmp_path))
    admins.reconcile("a:9093", WANTED)
    (config,) = made
    assert {k: config[k] for k in config if k.startswith(("security.", "ssl.", "sasl."))} == {
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": "/etc/paydeck/kafka-admin/tls/ca.crt",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "operator",
        "sasl.password": ADMIN_PASSWORD,
    }
    assert config["socket.timeout.ms"] == 2500  # the admin timeout still bounds each call


def test_a_rotated_login_file_makes_a_new_client_and_closes_the_old_one(tmp_path):
    class Closable(FakeKafka):
        closed = False

        def __exit__(self, *exc):
            self.closed = True

    made, clients = [], []

    def factory(config):
        made.append(config)
        clients.append(Closable())
        return clients[-1]

    admins = AdminClients(2.5, factory=factory, security=_login(tmp_path))
    first = admins.get("a:9093")
    assert admins.get("a:9093") is first and len(made) == 1  # unchanged files: one client
    password = tmp_path / "password"
    password.unlink()  # as a Secret volume swaps its ..data link: a new file
    password.write_text("rotated-" + ADMIN_PASSWORD)
    second = admins.get("a:9093")
    assert second is not first and first.closed and not second.closed
    assert made[-1]["sasl.password"] == "rotated-" + ADMIN_PASSWORD
    assert admins.get("a:9093") is second and len(made) == 2


def test_an_unreadable_login_file_is_a_failure_in_the_report_not_a_crash(tmp_path):
    security = _login(tmp_path)
    (tmp_path / "password").unlink()
    admins = AdminClients(1.0, factory=lambda config: FakeKafka(), security=security)
    report = admins.reconcile("a:9093", WANTED)
    assert report.failures and "password" in report.failures[0]
    assert not admins.delete("a:9093", ["a"]).ok


def test_a_login_error_names_itself_in_an_unreachable_report():
    class Refused(FakeKafka):
        def describe_topics(self, *args, **kwargs):
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "Timed out"))

    admins = AdminClients(1.0, factory=lambda config: Refused())
    admins.get("a:9093")
    admins._on_error("a:9093", KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error"))
    report = admins.reconcile("a:9093", WANTED)
    assert "_AUTHENTICATION: SASL authentication error" in report.unreachable, report
    # Said once: the next pass reports only what happens then.
    assert "_AUTHENTICATION" not in admins.reconcile("a:9093", WANTED).unreachable


@pytest.mark.parametrize(
    "env",
    [
        {"PAYDECK_KAFKA_ADMIN_SECURITY_PROTOCOL": "SASL_SSL"},
        {"PAYDECK_KAFKA_ADMIN_SASL_MECHANISM": "PLAIN"},
        {"PAYDECK_KAFKA_ADMIN_SSL_CERTIFICATE_LOCATION": "/tls.crt"},
        {"PAYDECK_KAFKA_ADMIN_SECURITY_PROTOCOL": "SASL_SSL",
         "PAYDECK_KAFKA_ADMIN_SASL_MECHANISM": "PLAIN",
         "PAYDECK_KAFKA_ADMIN_SASL_USERNAME_FILE": "/u"},
    ],
)
def test_operator_settings_the_admin_client_could_not_honour_are_refused(env, monkeypatch):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()
