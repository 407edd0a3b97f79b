"""Renamed flags (options/deprecation.py): the old name still sets the new
option for one release and says so once; the new name says nothing."""

import argparse
import logging

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from options import deprecation
from options.call_metrics_options import CallMetricsOptions
from options.stream_options import EventTimeOptions
from pipelines.contact_center import JOB_OPTIONS
from pipelines.wallboard.config import OPTIONS as WALLBOARD_OPTIONS

NOTICE = '--window_size is deprecated, use --window_seconds'


@pytest.fixture(autouse=True)
def nothing_reported_yet(monkeypatch):
  monkeypatch.setattr(deprecation, '_REPORTED', set())


def notices(caplog) -> list:
  return [r.getMessage() for r in caplog.records if r.name == deprecation.__name__]


def test_old_name_sets_the_new_option_and_says_so_once(caplog):
  caplog.set_level(logging.WARNING)
  options = PipelineOptions(['--window_size=60', '--key_idle_ttl=120'])
  # Every view parses the flags again.
  assert options.view_as(CallMetricsOptions).window_seconds == 60
  assert options.view_as(CallMetricsOptions).window_seconds == 60
  assert options.view_as(EventTimeOptions).key_idle_ttl_seconds == 120
  assert options.get_all_options()['window_seconds'] == 60
  assert sorted(notices(caplog)) == sorted(
    [NOTICE, '--key_idle_ttl is deprecated, use --key_idle_ttl_seconds']
  )


def test_new_name_says_nothing(caplog):
  caplog.set_level(logging.WARNING)
  assert PipelineOptions(['--window_seconds=60']).view_as(CallMetricsOptions).window_seconds == 60
  assert notices(caplog) == []


def test_every_old_name_ends_where_its_new_name_does():
  parser = argparse.ArgumentParser()
  for cls in {*JOB_OPTIONS, *WALLBOARD_OPTIONS}:
    cls._add_argparse_args(parser)  # pylint: disable=protected-access
  renamed = [a for a in parser._actions if isinstance(a, deprecation.RenamedFlag)]
  assert renamed
  for action in renamed:
    new, *old = action.option_strings
    assert old, f'{new}: RenamedFlag without an old name'
    assert new == f'--{action.dest}'
    assert new.endswith('_seconds'), f'{new}: a duration flag names its unit'
