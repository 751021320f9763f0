"""A single-node KRaft Kafka broker from Apache Kafka's jars on Maven Central.

The jars (``org.apache.kafka:kafka_2.13`` plus an SLF4J backend) are resolved once with the
machine's own ``mvn`` and its configured repositories, and cached in
``~/.cache/paydeck/kafka-<version>/libs``; a second ``fetch`` finds them and downloads nothing.
:class:`KafkaBroker` formats a data directory and runs the broker (``process.roles`` =
``broker,controller``) on loopback ports; ``stop()`` and ``start()`` restart it on the same
ports and data so tests can take Kafka away and bring it back.

Besides its PLAINTEXT listener the broker has a SASL_SSL one (``sasl_ssl_bootstrap_servers``):
TLS with a certificate for 127.0.0.1/localhost from a CA made at start (:mod:`hack.certs`,
the ``cryptography`` library, PEM files in ``<workdir>/tls``; the broker reads its key and
certificate as a PEM keystore), SASL mechanisms SCRAM-SHA-512 (the user is created when the
storage is formatted, ``--add-scram``) and PLAIN (a JAAS entry of the listener), both with
:attr:`KafkaBroker.sasl_username` / :attr:`KafkaBroker.sasl_password`, a random password per
broker.  A client certificate (``client.crt``/``client.key``) is accepted but not required
(``ssl.client.auth=requested``).  Usage::

    python -m hack.kafka fetch          # resolve and cache the jars
    python -m hack.kafka run            # run a broker in the foreground until Ctrl-C
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hack import certs
from hack.net import free_port

KAFKA_VERSION = os.environ.get("PAYDECK_KAFKA_VERSION", "3.9.1")
SCALA_VERSION = "2.13"
SLF4J_SIMPLE_VERSION = "1.7.36"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
CACHE = Path(os.environ.get("PAYDECK_CACHE", Path.home() / ".cache" / "paydeck"))
JAVA_HEAP = os.environ.get("PAYDECK_KAFKA_HEAP", "-Xmx512m")

_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 https://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.paydeck.hack</groupId>
  <artifactId>{name}-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{dependencies}
  </dependencies>
</project>
"""
_DEPENDENCY = """    <dependency>
      <groupId>{group}</groupId>
      <artifactId>{artifact}</artifactId>
      <version>{version}</version>
    </dependency>"""


def home(version: str = KAFKA_VERSION) -> Path:
    """The cache directory of one Kafka version."""
    return CACHE / f"kafka-{version}"


def libs(version: str = KAFKA_VERSION) -> Path:
    """The directory holding every jar the broker needs."""
    return home(version) / "libs"


def fetched(version: str = KAFKA_VERSION) -> bool:
    """Whether the jars of ``version`` are cached (the marker is written last)."""
    return (home(version) / ".complete").is_file()


def fetch(version: str = KAFKA_VERSION) -> Path:
    """Resolve the broker's jars with ``mvn`` unless cached; return the ``libs`` directory.

    Concurrent callers (two test sessions) serialise on a lock file; the loser finds the cache.
    """
    if fetched(version):
        print(f"kafka {version}: cached in {home(version)}", file=sys.stderr)
        return libs(version)
    home(version).mkdir(parents=True, exist_ok=True)
    with (home(version) / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not fetched(version):
            _fetch_locked(version)
    return libs(version)


def copy_jars(name: str, coordinates: list[str], out: Path, *, transitive: bool = True) -> None:
    """Resolve Maven ``group:artifact:version`` coordinates with the machine's ``mvn`` (its
    configured repositories and local repository) and copy the jars into ``out``, which must
    not exist yet.  ``transitive=False`` copies only the named artifacts."""
    if shutil.which("mvn") is None:
        raise RuntimeError("mvn is not on PATH: install Debian's `maven` package (and Java 17)")
    work = Path(tempfile.mkdtemp(prefix=f"paydeck-{name}-fetch-", dir=out.parent))
    try:
        deps = "\n".join(
            _DEPENDENCY.format(group=g, artifact=a, version=v)
            for g, a, v in (c.split(":") for c in coordinates)
        )
        (work / "pom.xml").write_text(_POM.format(name=name, dependencies=deps))
        subprocess.run(
            [
                "mvn",
                "-Dstyle.color=never",
                "-B",
                "-q",
                "-f",
                str(work / "pom.xml"),
                f"{DEPENDENCY_PLUGIN}:copy-dependencies",
                f"-DoutputDirectory={out}",
                "-DincludeScope=runtime",
                f"-DexcludeTransitive={str(not transitive).lower()}",
            ],
            check=True,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _fetch_locked(version: str) -> None:
    print(f"kafka {version}: resolving jars with mvn (cold)", file=sys.stderr, flush=True)
    staged = home(version) / ".libs-staged"
    shutil.rmtree(staged, ignore_errors=True)
    try:
        copy_jars(
            "kafka-broker",
            [
                f"org.apache.kafka:kafka_{SCALA_VERSION}:{version}",
                f"org.slf4j:slf4j-simple:{SLF4J_SIMPLE_VERSION}",
            ],
            staged,
        )
        if not any(staged.glob(f"kafka_{SCALA_VERSION}-{version}.jar")):
            raise RuntimeError(f"mvn did not produce kafka_{SCALA_VERSION}-{version}.jar")
        if libs(version).exists():
            shutil.rmtree(libs(version))
        staged.rename(libs(version))
        (home(version) / ".complete").write_text(version + "\n")
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


class KafkaBroker:
    """One KRaft broker+controller on loopback ports, with its own data directory.

    ``start()`` formats the storage the first time only, so a ``stop()`` followed by
    ``start()`` brings back the same cluster, topics and committed offsets on the same ports.
    """

    def __init__(self, workdir: Path | None = None, version: str = KAFKA_VERSION) -> None:
        self.version = version
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="paydeck-kafka-"))
        self.port = free_port()
        self.sasl_ssl_port = free_port()
        self.controller_port = free_port()
        self.bootstrap_servers = f"127.0.0.1:{self.port}"
        self.sasl_ssl_bootstrap_servers = f"127.0.0.1:{self.sasl_ssl_port}"
        #: The SASL user of the SASL_SSL listener (SCRAM-SHA-512 and PLAIN).
        self.sasl_username = "paydeck"
        self.sasl_password = secrets.token_hex(16)
        self.tls_dir = self.workdir / "tls"
        #: The CA that signed the broker's certificate (and ``client.crt``).
        self.ca_file = self.tls_dir / "ca.crt"
        self.log_file = self.workdir / "broker.log"
        self.config_file = self.workdir / "server.properties"
        self._process: subprocess.Popen[bytes] | None = None
        self._formatted = False

    # -- configuration -------------------------------------------------------------------------

    def client_security(self, password: str | None = None) -> dict[str, str]:
        """librdkafka settings for the SASL_SSL listener (SCRAM-SHA-512), ``password`` or
        the right one."""
        return {
            "security.protocol": "SASL_SSL",
            "ssl.ca.location": str(self.ca_file),
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password if password is None else password,
        }

    def _write_config(self) -> None:
        if not self.ca_file.is_file():
            certs.generate_kafka(self.tls_dir)
        sasl = "listener.name.sasl_ssl."
        plain_jaas = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{self.sasl_username}="{self.sasl_password}";'
        )
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},SASL_SSL://127.0.0.1:{self.sasl_ssl_port},"
                f"CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},SASL_SSL://127.0.0.1:{self.sasl_ssl_port}"
            ),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": (
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL"
            ),
            "sasl.enabled.mechanisms": "SCRAM-SHA-512,PLAIN",
            f"{sasl}sasl.enabled.mechanisms": "SCRAM-SHA-512,PLAIN",
            f"{sasl}scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            f"{sasl}plain.sasl.jaas.config": plain_jaas,
            f"{sasl}ssl.keystore.type": "PEM",
            f"{sasl}ssl.keystore.location": str(self.tls_dir / "broker.pem"),
            f"{sasl}ssl.truststore.type": "PEM",
            f"{sasl}ssl.truststore.location": str(self.ca_file),
            f"{sasl}ssl.client.auth": "requested",
            "log.dirs": str(self.workdir / "data"),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "5",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "log.flush.interval.messages": "9223372036854775807",
            "controlled.shutdown.enable": "true",
        }
        self.config_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))

    def _java(self, main: str, *args: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise RuntimeError("java is not on PATH: install Debian's `openjdk-17-jre-headless`")
        return [
            java,
            JAVA_HEAP,
            "-Xms128m",
            "-XX:+UseSerialGC",
            "-Xss512k",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
            "-Dorg.slf4j.simpleLogger.log.org.apache.kafka.clients=warn",
            "-cp",
            f"{libs(self.version)}/*",
            main,
            *args,
        ]

    def _format(self) -> None:
        uuid = subprocess.run(
            self._java("kafka.tools.StorageTool", "random-uuid"),
            check=True,
            capture_output=True,
            text=True,
            timeout=180,
        ).stdout.split()[-1]
        result = subprocess.run(
            self._java(
                "kafka.tools.StorageTool", "format", "-t", uuid, "-c", str(self.config_file),
                "--add-scram",
                f"SCRAM-SHA-512=[name={self.sasl_username},password={self.sasl_password}]",
            ),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"kafka storage format failed:\n{result.stdout}\n{result.stderr}")
        self._formatted = True

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The broker's process id (also its process group id) while it runs."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 180.0) -> None:
        """Start the broker (formatting storage on first start) and wait until it serves."""
        if self.running:
            return
        if not fetched(self.version):
            fetch(self.version)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        if not self._formatted:
            self._format()
        with self.log_file.open("ab") as log:
            log.write(f"\n==== starting broker at {time.strftime('%X')} ====\n".encode())
            self._process = subprocess.Popen(
                self._java("kafka.Kafka", str(self.config_file)),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(
                    f"kafka exited with {self._process.returncode} while starting; "
                    f"log tail ({self.log_file}):\n{tail(self.log_file)}"
                )
            if _port_open(self.port) and _port_open(self.sasl_ssl_port) and self._metadata_ok():
                return
            time.sleep(0.5)
        raise TimeoutError(
            f"kafka not ready on {self.bootstrap_servers} after {timeout:.0f}s; "
            f"log tail ({self.log_file}):\n{tail(self.log_file)}"
        )

    def _metadata_ok(self) -> bool:
        """Whether the broker answers a metadata request (falls back to the open port)."""
        try:
            from confluent_kafka.admin import AdminClient
        except ImportError:
            return True
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        try:
            metadata = admin.list_topics(timeout=5)
        except Exception:
            return False
        return len(metadata.brokers) > 0

    def stop(self, timeout: float = 60.0) -> None:
        """Shut the broker down (SIGTERM, then SIGKILL of its process group); keep its data."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        # Anything left in the group (there should be nothing) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)

    def close(self) -> None:
        """Stop the broker and remove its working directory if this object created it."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def create_topic(self, name: str, partitions: int = 1, timeout: float = 60.0) -> None:
        """Create a topic (replication factor 1) and wait until its leaders are known."""
        from confluent_kafka.admin import AdminClient
        from confluent_kafka.cimpl import NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1)],
            operation_timeout=timeout,
            request_timeout=timeout,
        )
        futures[name].result(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            topic = admin.list_topics(name, timeout=10).topics.get(name)
            if (
                topic is not None
                and topic.error is None
                and len(topic.partitions) == partitions
                and all(p.leader >= 0 for p in topic.partitions.values())
            ):
                return
            time.sleep(0.2)
        raise TimeoutError(f"topic {name} has no leaders after {timeout:.0f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hack.kafka")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="resolve and cache Kafka's jars (no-op when cached)")
    sub.add_parser("path", help="print the cached libs directory")
    sub.add_parser("run", help="run a throwaway broker in the foreground until Ctrl-C")
    args = parser.parse_args(argv)
    if args.command == "fetch":
        print(fetch())
    elif args.command == "path":
        print(libs())
    else:
        broker = KafkaBroker()
        try:
            started = time.monotonic()
            broker.start()
            print(
                f"kafka {broker.version} ready on {broker.bootstrap_servers} (PLAINTEXT) and "
                f"{broker.sasl_ssl_bootstrap_servers} (SASL_SSL, CA {broker.ca_file}) "
                f"in {time.monotonic() - started:.1f}s (Ctrl-C to stop)",
                flush=True,
            )
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        except KeyboardInterrupt:
            pass
        finally:
            broker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
