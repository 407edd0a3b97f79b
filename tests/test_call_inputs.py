"""The call-metrics options that need more than a type: --channels,
--genesys_trigger_topic and the --queue_names file, each refused with one
message naming the option and what is wrong."""

import json

import pytest

from options.call_inputs import load_queue_names, parse_channels, trigger_topic_kind


def test_channels():
  assert parse_channels('Voice, chat,,') == frozenset({'voice', 'chat'})
  for bad, message in (('', 'expected a comma-separated list'), ('voice,fax', 'unknown: fax')):
    with pytest.raises(ValueError, match=message):
      parse_channels(bad)


def test_trigger_topic():
  assert trigger_topic_kind(None) is None
  assert trigger_topic_kind('v2.detail.events.conversation.{id}.acd.end') == 'acd.end'
  assert trigger_topic_kind('v2.detail.events.conversation.abc.acd.start') == 'acd.start'
  with pytest.raises(ValueError, match='--genesys_trigger_topic'):
    trigger_topic_kind('v2.detail.events.conversation.{id}.customer.end')


def test_queue_names_from_csv_json_and_a_genesys_export(tmp_path):
  csv_file = tmp_path / 'q.csv'
  csv_file.write_text('queue_id,queue_name\nq-1,"Billing, tier 2"\n\nq-2,Sales\n')
  assert dict(load_queue_names(str(csv_file))) == {'q-1': 'Billing, tier 2', 'q-2': 'Sales'}
  plain = tmp_path / 'q.json'
  plain.write_text(json.dumps({'q-1': 'Billing'}))
  assert dict(load_queue_names(str(plain))) == {'q-1': 'Billing'}
  export = tmp_path / 'export.json'
  export.write_text(json.dumps({'entities': [{'id': 'q-3', 'name': 'Claims'}], 'pageSize': 25}))
  assert dict(load_queue_names(str(export))) == {'q-3': 'Claims'}
  assert dict(load_queue_names(None)) == {}
  with pytest.raises(TypeError):
    load_queue_names(str(plain))['q-9'] = 'read-only'


@pytest.mark.parametrize(
  'name, text, message',
  [
    ('q.csv', 'q-1,Billing,extra\n', 'line 1: expected queue_id,queue_name'),
    ('q.csv', 'q-1,\n', 'line 1: queue id and name must be non-empty'),
    ('q.json', '[1, 2]', 'must hold an object'),
    ('q.json', '{"q-1": 7}', "key 'q-1': queue id and name"),
    ('q.json', '{"entities": [3]}', r'entities\[0\] is not an object'),
    ('q.json', '{oops', 'not JSON'),
    ('q.csv', 'q-1,' + 'n' * 300 + '\n', 'name over 256 characters'),
  ],
)
def test_bad_queue_name_files_are_refused_with_the_place(tmp_path, name, text, message):
  path = tmp_path / name
  path.write_text(text)
  with pytest.raises(ValueError, match=message) as error:
    load_queue_names(str(path))
  assert str(path) in str(error.value)


def test_a_missing_queue_name_file_is_refused(tmp_path):
  with pytest.raises(ValueError, match='cannot read it'):
    load_queue_names(str(tmp_path / 'absent.csv'))
