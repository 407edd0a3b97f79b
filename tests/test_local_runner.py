"""The local runner's cached DoFn introspection gives Beam's own answer."""
import os

import apache_beam as beam
from apache_beam.internal import pickler
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.pipeline import PipelineVisitor
from apache_beam.transforms import userstate
from apache_beam.transforms.core import CallableWrapperDoFn
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec

from pipelines import local_runner
from pipelines.contact_center import build

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNCACHED = local_runner._uncached_dofn_specs  # pylint: disable=protected-access


def _names(specs):
  state_specs, timer_specs = specs
  return ({s.name for s in state_specs}, {t.name for t in timer_specs})


class _CollectDoFns(PipelineVisitor):
  def __init__(self):
    self.dofns = []

  def visit_transform(self, applied):
    if isinstance(applied.transform, beam.ParDo):
      self.dofns.append((applied.full_label, applied.transform.dofn))


def test_every_dofn_of_the_main_job_gets_beams_specs(tmp_path):
  pipeline = beam.Pipeline(options=PipelineOptions())
  build(
      pipeline,
      PipelineOptions([
          f'--call_events={REPO}/samples/call_events.jsonl',
          f'--data_actions={REPO}/samples/data_actions.jsonl',
          f'--sqlite_path={tmp_path}/out.db',
      ]))
  collector = _CollectDoFns()
  pipeline.visit(collector)
  stateful = set()
  for label, dofn in collector.dofns:
    # Twice, and on the copy the runner makes for every bundle: the second
    # lookups are the cached ones.
    for fn in (dofn, dofn, pickler.roundtrip(dofn)):
      assert _names(local_runner.cached_dofn_specs(fn)) == _names(
          UNCACHED(fn)), label
    if any(_names(UNCACHED(dofn))):
      stateful.add(label)
  # The stateful steps of both flows were looked at (dedupe, windows,
  # join, patterns), so the comparison above covered the cached path.
  assert len(stateful) >= 5, stateful


SEEN = ReadModifyWriteStateSpec('seen', beam.coders.PickleCoder())


class _Holder:
  def stateful(self, element, seen=beam.DoFn.StateParam(SEEN)):
    yield element


def test_an_instance_with_its_own_bound_method_is_not_judged_by_its_class():
  # Map(bound method) puts the method on the DoFn instance: two instances
  # of one class then have different specs.
  plain = CallableWrapperDoFn(lambda element: [element])
  stateful = CallableWrapperDoFn(_Holder().stateful)
  assert _names(local_runner.cached_dofn_specs(plain)) == (set(), set())
  assert _names(local_runner.cached_dofn_specs(stateful)) == ({'seen'}, set())
  assert _names(local_runner.cached_dofn_specs(plain)) == (set(), set())


def test_callers_get_their_own_sets():
  class _Stateful(beam.DoFn):
    def process(self, element, seen=beam.DoFn.StateParam(SEEN)):
      yield element

  first, _ = local_runner.cached_dofn_specs(_Stateful())
  first.clear()
  assert _names(local_runner.cached_dofn_specs(_Stateful())) == (
      {'seen'}, set())


def test_the_local_runner_routes_beams_lookups_through_the_cache():
  local_runner.install_dofn_spec_cache()
  assert userstate.get_dofn_specs is local_runner.cached_dofn_specs
  assert userstate.is_stateful_dofn(
      CallableWrapperDoFn(_Holder().stateful))
