"""Cassandra schema v2 without a Cassandra: what it changes from v1, and that
its migration section brings a v1 table to the v2 record."""
import re

from transforms import cassandra_sink
from transforms.schema import ABANDON_METRICS

KEYSPACE = 'ks'
REPLICATION = "{'class': 'SimpleStrategy', 'replication_factor': 1}"


def statements(version):
  return cassandra_sink.schema_statements(KEYSPACE, REPLICATION, version)


def creates(version):
  return {
      m.group(1): s for s in statements(version)
      for m in [re.match(rf'CREATE TABLE IF NOT EXISTS {KEYSPACE}\.(\w+)', s)]
      if m}


def columns_of(create):
  body = create[create.index('(') + 1:create.rindex('PRIMARY KEY')]
  return [tuple(c.split()) for c in body.split(',') if c.strip()]


def test_v2_changes_only_abandon_metrics():
  v1, v2 = creates(1), creates(2)
  assert set(v1) == set(v2)
  changed = {name for name in v1 if v1[name] != v2[name]}
  assert changed == {'abandon_metrics'}


def test_the_migration_adds_what_v2_adds_to_a_v1_table():
  [alter] = [s for s in statements(2) if s.startswith('ALTER TABLE')]
  assert alter.startswith(
      f'ALTER TABLE {KEYSPACE}.abandon_metrics ADD IF NOT EXISTS (')
  added = [tuple(c.split()) for c in
           alter[alter.index('(') + 1:alter.rindex(')')].split(',')]
  v1 = columns_of(creates(1)['abandon_metrics'])
  v2 = columns_of(creates(2)['abandon_metrics'])
  assert v2 == v1 + added
  record = [(name, cassandra_sink.CQL_TYPES[kind])
            for name, kind in ABANDON_METRICS.columns]
  assert v2 == record


def test_the_version_row_comes_last():
  assert statements(2)[-1].startswith(
      f'INSERT INTO {KEYSPACE}.schema_version (version, description, '
      'applied_at)\nVALUES (2,')
