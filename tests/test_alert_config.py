"""The alert rule file (options/alert_config.py): the sample loads, each
mistake is refused with one message naming the rule (or receiver) and the
field, secrets are refused, and the rules' own tests (breach, clear, scope,
business hours) read as documented."""

import datetime
import json
from pathlib import Path
from typing import Any, Dict

import pytest
import yaml
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.utils.timestamp import Duration

from options.alert_config import AlertRule, AlertRulesConfig

SAMPLE = Path(__file__).resolve().parent.parent / 'samples' / 'alert_rules.yaml'


def rule(**fields: Any) -> Dict[str, Any]:
  """A valid raw rule with `fields` replaced (None removes one)."""
  raw = {
    'name': 'abandon-30m',
    'metric': 'abandon_rate',
    'span': '30m',
    'condition': 'above',
    'threshold': 0.1,
    'receivers': ['slack'],
  }
  raw.update(fields)
  return {k: v for k, v in raw.items() if v is not None}


def document(*rules: Dict[str, Any], **receivers: Dict[str, Any]) -> Dict[str, Any]:
  return {
    'receivers': receivers or {'slack': {'kind': 'slack', 'url_env': 'SLACK_URL'}},
    'rules': list(rules),
  }


def load_error(tmp_path: Path, doc: Dict[str, Any], suffix: str = '.yaml') -> str:
  path = tmp_path / f'rules{suffix}'
  path.write_text(json.dumps(doc) if suffix == '.json' else yaml.safe_dump(doc))
  with pytest.raises(ValueError) as e:
    AlertRulesConfig.load(str(path), 'UTC')
  return str(e.value)


def test_the_sample_loads_with_every_receiver_kind():
  config = AlertRulesConfig.load(str(SAMPLE), 'Europe/Berlin')
  assert [r.name for r in config.rules] == [
    'abandon-30m',
    'service-level-today',
    'longest-wait-now',
    'predicted-service-level',
    'dead-letters',
  ]
  assert sorted(r.kind for r in config.receivers) == ['email', 'slack', 'webhook']
  abandon = config.rules[0]
  assert (abandon.threshold, abandon.clear_threshold) == (0.1, 0.08)
  assert abandon.pending_for == Duration(seconds=300)
  assert abandon.repeat_interval == Duration(seconds=1800)
  assert abandon.business_hours[4] == ((8 * 60, 12 * 60 + 30), (13 * 60 + 30, 17 * 60))
  assert abandon.business_hours[5] == ()
  assert config.rules[3].clear_threshold == 0.75  # default: the threshold
  assert config.rules[3].repeat_interval == Duration(0)
  assert config.needed_figures() == {
    ('abandon_rate', '30m'),
    ('service_level', 'today'),
    ('longest_wait_seconds', 'now'),
    ('predicted_service_level', 'interval'),
    ('dead_letters', 'window'),
  }
  assert config.receiver('supervisors-mail').password_env == 'ALERT_SMTP_PASSWORD'


@pytest.mark.parametrize('suffix', ['.yaml', '.json'])
def test_yaml_and_json_files_read_alike(tmp_path, suffix):
  path = tmp_path / f'rules{suffix}'
  doc = document(rule(threshold='12.5%', for_seconds=60))
  path.write_text(json.dumps(doc) if suffix == '.json' else yaml.safe_dump(doc))
  config = AlertRulesConfig.load(str(path), 'UTC')
  assert config.rules[0].threshold == 0.125
  assert config.rules[0].pending_for == Duration(seconds=60)


@pytest.mark.parametrize(
  'fields, expected',
  [
    (
      {'threshold': 'high'},
      'alert rule "abandon-30m": threshold: expected a number, got "high"',
    ),
    ({'threshold': 1.5}, 'alert rule "abandon-30m": threshold: expected a rate between 0 and 1'),
    ({'metric': 'abandons'}, 'alert rule "abandon-30m": metric: expected one of abandon_rate'),
    ({'span': 'now'}, 'alert rule "abandon-30m": span: abandon_rate has figures over window'),
    ({'span': None}, 'alert rule "abandon-30m": span: required for abandon_rate'),
    ({'condition': '>'}, 'alert rule "abandon-30m": condition: expected above or below'),
    (
      {'clear_threshold': 0.2},
      'alert rule "abandon-30m": clear_threshold: must be at or below the threshold 0.1',
    ),
    (
      {'condition': 'below', 'clear_threshold': 0.05},
      'alert rule "abandon-30m": clear_threshold: must be at or above',
    ),
    ({'for_seconds': -5}, 'alert rule "abandon-30m": for_seconds: expected a whole number >= 0'),
    ({'min_volume': 2.5}, 'alert rule "abandon-30m": min_volume: expected a whole number >= 0'),
    ({'severity': 'page'}, 'alert rule "abandon-30m": severity: expected one of info'),
    ({'receivers': ['pager']}, 'alert rule "abandon-30m": receivers: "pager" is not in the'),
    ({'threshhold': 1}, 'alert rule "abandon-30m": threshhold: unknown field'),
    ({'scope': {'channels': ['fax']}}, 'alert rule "abandon-30m": scope: channels: expected'),
    ({'scope': {'queue': ['Q-1']}}, 'alert rule "abandon-30m": scope: queue: unknown key'),
    (
      {'business_hours': {'monday': ['08:00-18:00']}},
      'alert rule "abandon-30m": business_hours: monday: unknown weekday',
    ),
    (
      {'business_hours': {'mon': ['18:00-08:00']}},
      'alert rule "abandon-30m": business_hours: mon: "18:00-08:00" is not a range',
    ),
    (
      {'business_hours': {'mon': ['8-18']}},
      'alert rule "abandon-30m": business_hours: mon: expected "HH:MM-HH:MM"',
    ),
    ({'name': None}, 'alert rule #1: name: expected a non-empty string'),
    (
      {'metric': 'waiting', 'span': 'today'},
      'alert rule "abandon-30m": span: waiting has figures over now',
    ),
    (
      {'metric': 'dead_letters', 'span': None, 'scope': {'queues': ['Q-1']}},
      'alert rule "abandon-30m": scope: dead_letters counts the whole job',
    ),
  ],
)
def test_each_mistake_names_the_rule_and_the_field(tmp_path, fields, expected):
  message = load_error(tmp_path, document(rule(**fields)))
  assert message.startswith(f'alert rules file {tmp_path / "rules.yaml"}: {expected}'), message


def test_the_json_file_names_the_rule_and_field_too(tmp_path):
  message = load_error(tmp_path, document(rule(), rule(name='sl', threshold=[1])), '.json')
  assert message.endswith('alert rule "sl": threshold: expected a number, got [1]')


def test_rule_names_are_unique(tmp_path):
  message = load_error(tmp_path, document(rule(), rule()))
  assert message.endswith('alert rule "abandon-30m": name: used by more than one rule')


@pytest.mark.parametrize(
  'key, instead', [('url', 'url_env'), ('password', 'password_env'), ('secret', 'secret_env')]
)
def test_secrets_are_refused_without_echoing_them(tmp_path, key, instead):
  receiver = {'kind': 'webhook', 'url_env': 'HOOK_URL', key: 'hunter2-very-secret'}
  message = load_error(tmp_path, document(rule(receivers=[]), hook=receiver))
  assert f'receiver "hook": {key}: secrets are not kept in the rule file' in message
  assert instead in message
  assert 'hunter2' not in message


@pytest.mark.parametrize(
  'receiver, expected',
  [
    ({'kind': 'pager'}, 'receiver "r": kind: expected one of webhook, slack, email'),
    ({'kind': 'slack'}, 'receiver "r": url_env: required for a slack receiver'),
    (
      {'kind': 'slack', 'url_env': 'X', 'smtp_host': 'h'},
      'receiver "r": smtp_host: not a setting of a slack receiver',
    ),
    ({'kind': 'webhook', 'url_env': 'has space'}, 'receiver "r": url_env: expected the name of'),
    (
      {'kind': 'email', 'smtp_host': 'h', 'sender': 's@x', 'recipients': []},
      'receiver "r": recipients: expected at least one address',
    ),
    (
      {'kind': 'email', 'smtp_host': 'h', 'sender': 's@x', 'recipients': ['a@x'], 'smtp_port': 0},
      'receiver "r": smtp_port: expected a port 1..65535',
    ),
    (
      {
        'kind': 'email',
        'smtp_host': 'h',
        'sender': 's@x',
        'recipients': ['a@x'],
        'username_env': 'U',
      },
      'receiver "r": username_env, password_env: give both or neither',
    ),
  ],
)
def test_receiver_mistakes_name_the_receiver_and_field(tmp_path, receiver, expected):
  message = load_error(tmp_path, document(rule(receivers=[]), r=receiver))
  assert message.endswith(expected) or expected in message, message


def test_an_unknown_section_and_unreadable_files(tmp_path):
  assert 'rule: unknown section (known: rules, receivers)' in load_error(tmp_path, {'rule': []})
  with pytest.raises(ValueError, match='cannot read it'):
    AlertRulesConfig.load(str(tmp_path / 'missing.yaml'), 'UTC')
  # A YAML error names the place, never the line: it may hold a secret.
  (tmp_path / 'bad.yaml').write_text(
    'receivers:\n  s:\n    kind: slack\n    url: "https://hooks.example/T0/s3cr3t\n'
  )
  with pytest.raises(ValueError, match='not valid YAML: .* at line') as e:
    AlertRulesConfig.load(str(tmp_path / 'bad.yaml'), 'UTC')
  assert 's3cr3t' not in str(e.value)


def test_a_secret_in_the_wrong_place_is_refused_without_echoing_it(tmp_path):
  receiver = {'kind': 'slack', 'url_env': 'https://hooks.example/T0/s3cr3t'}
  message = load_error(tmp_path, document(rule(receivers=[]), s=receiver))
  assert 'receiver "s": url_env: expected the name of an environment variable' in message
  assert 's3cr3t' not in message
  message = load_error(tmp_path, document(rule(receivers=[]), s='https://hooks.example/s3cr3t'))
  assert message.endswith('receiver "s": expected a mapping of its settings, got a string')


def test_from_options_reads_the_file_and_checks_the_timezone(tmp_path):
  empty = AlertRulesConfig.from_options(PipelineOptions(['--timezone', 'Europe/Berlin']))
  assert empty == AlertRulesConfig(timezone='Europe/Berlin')
  assert empty.rules == ()
  config = AlertRulesConfig.from_options(
    PipelineOptions(['--alert_rules', str(SAMPLE), '--timezone', 'America/New_York'])
  )
  assert config.timezone == 'America/New_York' and len(config.rules) == 5
  with pytest.raises(ValueError, match='--timezone: expected an IANA time zone name'):
    AlertRulesConfig.from_options(PipelineOptions(['--timezone', 'Mars/Olympus']))


def test_breach_clear_scope_and_hours_as_documented():
  above = AlertRule(
    name='a',
    metric='abandon_rate',
    span='window',
    condition='above',
    threshold=0.1,
    clear_threshold=0.08,
    queues=('sales-*', 'Q-1'),
    channels=('voice',),
    business_hours=(((480, 1080),),) + ((),) * 6,
  )
  assert above.breaches(0.11) and not above.breaches(0.1)
  assert above.clears(0.08) and not above.clears(0.09)
  assert above.in_scope('sales-east', 'voice') and above.in_scope('Q-1', 'voice')
  assert not above.in_scope('Q-10', 'voice') and not above.in_scope('Q-1', 'chat')
  monday = datetime.datetime(2026, 11, 2, 8, 0)
  assert monday.weekday() == 0
  assert above.open_at(monday) and above.open_at(monday.replace(hour=17, minute=59))
  assert not above.open_at(monday.replace(hour=18)) and not above.open_at(monday.replace(day=3))
  below = AlertRule(
    name='b', metric='waiting', span='now', condition='below', threshold=2, clear_threshold=3
  )
  assert below.breaches(1) and not below.breaches(2) and below.clears(3) and not below.clears(2)
  assert below.in_scope('anything', 'chat') and below.open_at(monday)
