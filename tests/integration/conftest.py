"""Fixtures for tests that talk to the real local stack (scripts/stack.sh up).

These tests never skip: if Kafka, Cassandra or the KafkaIO expansion service is not running,
or the Flink job-server jar cannot be fetched, they fail.
"""
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Kafka bootstrap servers, e.g. "127.0.0.1:9092" (env KAFKA_BOOTSTRAP)."""
    return os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")


@pytest.fixture(scope="session")
def cassandra_hosts() -> list:
    """Cassandra contact points (env CASSANDRA_HOSTS, comma separated)."""
    hosts = os.environ.get("CASSANDRA_HOSTS", "127.0.0.1")
    return [h.strip() for h in hosts.split(",") if h.strip()]


@pytest.fixture(scope="session")
def cassandra_port() -> int:
    """Cassandra native-protocol port (env CASSANDRA_PORT)."""
    return int(os.environ.get("CASSANDRA_PORT", "9042"))


# --- cross-language KafkaIO on the portable FlinkRunner --------------------------------------
REPO = Path(__file__).resolve().parents[2]
RUN_DIR = Path(os.environ.get("RUN_DIR", REPO / ".run"))


def assert_reachable(address: str, what: str, hint: str) -> None:
    """Fail fast, with a hint, when nothing listens on host:port."""
    host, _, port = address.split(",")[0].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise AssertionError(f"{what} not reachable at {address} ({exc}); {hint}") from None


@pytest.fixture(scope="session")
def expansion_service() -> str:
    """Address of the running KafkaIO expansion service (env KAFKA_EXPANSION_SERVICE,
    default 127.0.0.1:8097, started by scripts/stack.sh up / scripts/expansion_service.sh)."""
    address = os.environ.get("KAFKA_EXPANSION_SERVICE", "127.0.0.1:8097")
    assert_reachable(address, "KafkaIO expansion service",
                     "start it with scripts/stack.sh up or scripts/expansion_service.sh start")
    return address


@pytest.fixture(scope="session")
def flink_job_server_jar() -> str:
    """The Beam Flink job-server jar, with KafkaIO inside (for EMBEDDED Java transforms).

    Runs scripts/fetch_flink.sh (idempotent: cached, rebuilds only when scripts/flink_pom.xml
    changed); env FLINK_JOB_SERVER_JAR overrides it.
    """
    jar = os.environ.get("FLINK_JOB_SERVER_JAR")
    if not jar:
        env = dict(os.environ, RUN_DIR=str(RUN_DIR))
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        fetch = subprocess.run([str(REPO / "scripts" / "fetch_flink.sh")], cwd=REPO, env=env,
                               capture_output=True, text=True, timeout=1800)
        assert fetch.returncode == 0, f"scripts/fetch_flink.sh failed:\n{fetch.stderr[-4000:]}"
        env_file = RUN_DIR / "jars" / "flink-job-server" / "flink.env"
        values = dict(line.split("=", 1) for line in env_file.read_text().splitlines()
                      if "=" in line and not line.startswith("#"))
        jar = values["FLINK_JOB_SERVER_JAR"].strip('"')
    assert Path(jar).is_file(), f"Flink job-server jar missing: {jar} (scripts/fetch_flink.sh)"
    with zipfile.ZipFile(jar) as z:
        names = set(z.namelist())
    for cls in ("org/apache/beam/sdk/io/kafka/KafkaIO.class",
                "org/apache/kafka/clients/consumer/KafkaConsumer.class",
                "org/github/jamm/MemoryMeter.class"):
        assert cls in names, (
            f"{jar} lacks {cls}: EMBEDDED KafkaIO cannot run in it; rebuild it with "
            "FORCE=1 scripts/fetch_flink.sh (scripts/flink_pom.xml shades KafkaIO in)")
    return jar
