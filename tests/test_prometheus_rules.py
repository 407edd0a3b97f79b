"""deploy/prometheus/alerts.yml: valid rules (`promtool check rules`) that
pass their unit tests (`promtool test rules alerts_test.yml`), and every
alert is shown firing in those tests; deploy/prometheus/prometheus.yml is
a valid configuration. promtool is Debian's `prometheus`
package (scripts/stack/install_prometheus.sh); without it these tests fail."""

import shutil
import subprocess
from pathlib import Path
from typing import List

import yaml

PROMETHEUS_DIR = Path(__file__).resolve().parent.parent / 'deploy' / 'prometheus'
RULES = PROMETHEUS_DIR / 'alerts.yml'
RULE_TESTS = PROMETHEUS_DIR / 'alerts_test.yml'


def promtool(*args: str) -> subprocess.CompletedProcess:
  """Runs promtool in deploy/prometheus; fails the test when it is missing."""
  tool = shutil.which('promtool')
  assert tool, 'promtool not found: run scripts/stack/install_prometheus.sh'
  return subprocess.run(
    [tool, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=120
  )


def rules() -> List[dict]:
  return [rule for group in yaml.safe_load(RULES.read_text())['groups'] for rule in group['rules']]


def alert_names() -> List[str]:
  return [rule['alert'] for rule in rules() if 'alert' in rule]


def test_rules_are_valid():
  run = promtool('check', 'rules', RULES.name)
  assert run.returncode == 0, run.stdout + run.stderr
  assert f'SUCCESS: {len(rules())} rules found' in run.stdout


def test_rule_unit_tests_pass():
  run = promtool('test', 'rules', RULE_TESTS.name)
  assert run.returncode == 0, run.stdout + run.stderr
  assert 'SUCCESS' in run.stdout


def test_every_alert_is_tested_firing():
  fired = {
    case['alertname']
    for test in yaml.safe_load(RULE_TESTS.read_text())['tests']
    for case in test.get('alert_rule_test', [])
    if case.get('exp_alerts')
  }
  assert set(alert_names()) <= fired, set(alert_names()) - fired


def test_prometheus_config_is_valid():
  # Also checks the rule files it names and its Flink relabelling rules.
  run = promtool('check', 'config', 'prometheus.yml')
  assert run.returncode == 0, run.stdout + run.stderr
