"""The bundled broker's SASL/SCRAM: the chart's start script (deploy/helm/loupe/files/kafka/run.sh,
which the StatefulSet mounts and runs) itself, on the cached Kafka jars, with the environment the
chart gives it (templates/kafka.yaml; its listener settings are asserted by
deploy/helm/check.sh), on 127.0.0.1 ports of this test run. Clients go
through loupe_common.kafka, as every Loupe service does."""
from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from kafka.errors import KafkaError

from loupe_common import kafka as lk
from loupe_stack import install

REPO = Path(__file__).resolve().parents[2]
FILES = REPO / "deploy/helm/loupe/files/kafka"
BASE = int(os.environ.get("LOUPE_TEST_BASE_PORT", "23500")) + 90
CLIENT, CONTROLLER, INTERNAL = BASE, BASE + 1, BASE + 2
BOOTSTRAP = f"127.0.0.1:{CLIENT}"
USER = "loupe"


def _broker_env(tmp: Path, password: str) -> dict[str, str]:
    """templates/kafka.yaml's container env, with this test's ports and folders."""
    return {
        "PATH": os.environ["PATH"],
        "CLUSTER_ID": "bG91cGUta2Fma2EtY2x1cw",
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS":
            f"CLIENT://127.0.0.1:{CLIENT},INTERNAL://127.0.0.1:{INTERNAL},CONTROLLER://127.0.0.1:{CONTROLLER}",
        "KAFKA_ADVERTISED_LISTENERS": f"CLIENT://127.0.0.1:{CLIENT},INTERNAL://127.0.0.1:{INTERNAL}",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,CLIENT:SASL_PLAINTEXT",
        "KAFKA_SASL_ENABLED_MECHANISMS": "SCRAM-SHA-512",
        "KAFKA_LISTENER_NAME_CLIENT_SCRAM___SHA___512_SASL_JAAS_CONFIG":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "LOUPE_KAFKA_SCRAM_USERNAME": USER,
        "LOUPE_KAFKA_SCRAM_PASSWORD": password,
        "LOUPE_KAFKA_ADMIN_BOOTSTRAP": f"127.0.0.1:{INTERNAL}",
        "LOUPE_KAFKA_READY_FILE": str(tmp / "ready"),
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": f"1@127.0.0.1:{CONTROLLER}",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "INTERNAL",
        "KAFKA_LOG_DIRS": str(tmp / "data/logs"),
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        "KAFKA_MESSAGE_MAX_BYTES": "16777216",
        "KAFKA_HEAP_OPTS": "-Xms128m -Xmx384m",
        # The pod's paths, here.
        "LOUPE_KAFKA_HOME": str(tmp / "home"),
        "LOUPE_KAFKA_CONFIG_DIR": str(tmp / "config"),
        "LOUPE_KAFKA_LOG4J": str(FILES / "log4j2.properties"),
    }


class Broker:
    """run.sh as the pod's PID 1 would run it; stop() sends it SIGTERM as the kubelet does."""

    def __init__(self, tmp: Path, password: str):
        self.tmp = tmp
        self.log = open(tmp / f"run-{uuid.uuid4().hex[:6]}.log", "w")
        self.proc = subprocess.Popen(["sh", str(FILES / "run.sh")], env=_broker_env(tmp, password),
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while not (self.tmp / "ready").exists():
            assert self.proc.poll() is None, f"run.sh exited {self.proc.returncode}:\n{self.output()}"
            assert time.monotonic() < deadline, f"not ready after {timeout:.0f} s:\n{self.output()}"
            time.sleep(0.5)

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return Path(self.log.name).read_text()[-6000:]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def broker_dir(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "config").mkdir()
    (tmp_path / "home/libs").symlink_to(install.ensure_kafka())
    yield tmp_path


def _sasl(password: str) -> lk.KafkaSecurity:
    return lk.security_from_env({"LOUPE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                                 "LOUPE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                                 "LOUPE_KAFKA_USERNAME": USER, "LOUPE_KAFKA_PASSWORD": password})


def _round_trip(security: lk.KafkaSecurity) -> None:
    topic = f"test-auth-{uuid.uuid4().hex[:8]}"
    lk.ensure_topics(BOOTSTRAP, {topic: 1}, timeout=60, security=security)
    producer = lk.producer(BOOTSTRAP, security)
    try:
        producer.send(topic, b"hello").get(timeout=30)
    finally:
        producer.close()
    consumer = lk.consumer(BOOTSTRAP, topic, f"test-{uuid.uuid4().hex[:8]}", security, consumer_timeout_ms=20000)
    try:
        assert [m.value for m in consumer] == [b"hello"]
    finally:
        consumer.close()


def _refused(security: lk.KafkaSecurity) -> bool:
    try:
        client = lk.admin(BOOTSTRAP, security, bootstrap_timeout_ms=5000, request_timeout_ms=5000)
    except KafkaError:
        return True
    try:
        client.list_topics()
    except KafkaError:
        return True
    finally:
        client.close()
    return False


def test_scram_on_a_volume_formatted_before_auth_and_after_a_password_change(broker_dir):
    # A log directory formatted by the chart before auth (its PLAINTEXT listeners): no
    # credential was added at format time.
    env = _broker_env(broker_dir, "unused")
    (broker_dir / "config/server.properties").write_text("\n".join([
        "process.roles=broker,controller", "node.id=1", "controller.listener.names=CONTROLLER",
        f"controller.quorum.voters=1@127.0.0.1:{CONTROLLER}",
        f"listeners=PLAINTEXT://127.0.0.1:{CLIENT},CONTROLLER://127.0.0.1:{CONTROLLER}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{CLIENT}", "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        f"log.dirs={env['KAFKA_LOG_DIRS']}", ""]))
    fmt = subprocess.run(["java", f"-Dlog4j2.configurationFile={FILES / 'log4j2.properties'}",
                          "-cp", f"{broker_dir / 'home/libs'}/*", "kafka.tools.StorageTool", "format",
                          "--config", str(broker_dir / "config/server.properties"),
                          f"--cluster-id={env['CLUSTER_ID']}"], capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr

    first = Broker(broker_dir, "first-password")
    try:
        first.wait_ready()
        _round_trip(_sasl("first-password"))
        assert _refused(lk.security_from_env({})), "a client without credentials was let in"
        assert _refused(_sasl("wrong-password")), "a wrong password was let in"
    finally:
        status = first.stop()
    # 143: the JVM's status after its shutdown hooks ran on SIGTERM, as with `exec java`.
    assert status in (0, 143), f"run.sh exited {status} on SIGTERM:\n{first.output()}"

    # The Secret's password changed: the next start replaces the credential.
    second = Broker(broker_dir, "second-password")
    try:
        second.wait_ready()
        _round_trip(_sasl("second-password"))
        assert _refused(_sasl("first-password")), "the old password still works"
    finally:
        second.stop()
