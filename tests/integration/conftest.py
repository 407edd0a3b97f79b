"""Fixtures for tests that talk to the real local stack (scripts/stack.sh up).

These tests never skip: if Kafka or Cassandra is not running they fail.
"""
import os

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
