"""The local runner's cached DoFn introspection gives Beam's own answer, its
DoFn copies are reused per thread only, and its cheaper bookkeeping keeps
Beam's behaviour."""

import copy
import gc
import logging
import os
import threading

import apache_beam
import apache_beam as beam
import pytest
from apache_beam.internal import pickler
from apache_beam.metrics.execution import MetricsContainer
from apache_beam.metrics.metric import Metrics
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.pipeline import PipelineVisitor
from apache_beam.runners.direct import evaluation_context, executor, transform_evaluator
from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner
from apache_beam.runners.runner import PipelineState
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import core, userstate
from apache_beam.transforms.core import CallableWrapperDoFn
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.trigger import InMemoryUnmergedState, _ListStateTag
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec
from apache_beam.transforms.window import (
  FixedWindows,
  GlobalWindow,
  IntervalWindow,
  TimestampedValue,
)
from apache_beam.utils.timestamp import Timestamp

from pipelines import local_runner
from pipelines.contact_center import build
from tests.support.beam_metrics import committed_counters

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNCACHED = local_runner._uncached_dofn_specs  # pylint: disable=protected-access
UNCACHED_ARGUMENTS = local_runner._uncached_function_arguments  # pylint: disable=protected-access
METHODS = ('process', 'start_bundle', 'finish_bundle', 'setup', 'teardown')


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
    PipelineOptions(
      [
        f'--call_events={REPO}/samples/call_events.jsonl',
        f'--data_actions={REPO}/samples/data_actions.jsonl',
        f'--sqlite_path={tmp_path}/out.db',
      ]
    ),
  )
  collector = _CollectDoFns()
  pipeline.visit(collector)
  stateful = set()
  for label, dofn in collector.dofns:
    # Twice, and on the copy the runner makes for every bundle: the second
    # lookups are the cached ones.
    for fn in (dofn, dofn, pickler.roundtrip(dofn)):
      assert _names(local_runner.cached_dofn_specs(fn)) == _names(UNCACHED(fn)), label
      for method in METHODS:
        assert local_runner.cached_function_arguments(fn, method) == (
          UNCACHED_ARGUMENTS(fn, method)
        ), (label, method)
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
  assert _names(local_runner.cached_dofn_specs(_Stateful())) == ({'seen'}, set())


def test_the_local_runner_routes_beams_lookups_through_the_cache():
  with local_runner.replaced_beam_internals():
    assert userstate.get_dofn_specs is local_runner.cached_dofn_specs
    assert userstate.is_stateful_dofn(CallableWrapperDoFn(_Holder().stateful))
  assert_beams_own_internals()


def test_a_method_on_the_instance_is_not_judged_by_its_class():
  class _Fn(beam.DoFn):
    def process(self, element):
      yield element

  plain, patched = _Fn(), _Fn()
  patched.process = _Holder().stateful
  assert local_runner.cached_function_arguments(plain, 'process')[0] == ['element']
  assert local_runner.cached_function_arguments(patched, 'process')[0] == ['element', 'seen']
  assert local_runner.cached_function_arguments(plain, 'process')[0] == ['element']


def test_each_thread_reuses_its_own_copy_of_a_dofn():
  made = []

  def make_copy(dofn):
    made.append(dofn)
    return pickler.roundtrip(dofn)

  copies = local_runner.DoFnCopies(make_copy)
  dofn, twin = CallableWrapperDoFn(len), CallableWrapperDoFn(len)
  first = copies.roundtrip(dofn)
  assert first is not dofn and copies.roundtrip(dofn) is first
  # By identity: an equal DoFn gets a copy of its own.
  assert copies.roundtrip(twin) is not first
  other_thread = []
  worker = threading.Thread(target=lambda: other_thread.append(copies.roundtrip(dofn)))
  worker.start()
  worker.join()
  assert other_thread[0] is not first
  assert made == [dofn, twin, dofn]


def test_the_local_runner_reuses_dofn_copies_and_still_pickles_them():
  with local_runner.replaced_beam_internals():
    assert isinstance(transform_evaluator.pickler, local_runner.DoFnCopies)
    # Anything else the evaluators take from the pickler is the real one.
    assert transform_evaluator.pickler.dumps is pickler.dumps
  assert transform_evaluator.pickler is pickler


LIFECYCLE = []


class _RecordLifecycle(beam.DoFn):
  def setup(self):
    LIFECYCLE.append('setup')

  def start_bundle(self):
    LIFECYCLE.append('bundle')

  def process(self, element):
    yield element

  def teardown(self):
    LIFECYCLE.append('teardown')


def test_a_dofn_is_set_up_once_and_torn_down_when_the_run_ends(options):
  LIFECYCLE.clear()
  stream = TestStream().add_elements([1]).advance_watermark_to(10)
  for i in range(2, 5):
    stream = stream.add_elements([i]).advance_watermark_to(10 * i)
  with beam.Pipeline(options=options) as p:
    out = p | stream.advance_watermark_to_infinity() | beam.ParDo(_RecordLifecycle())
    assert_that(out, equal_to([1, 2, 3, 4]))
  bundles = LIFECYCLE.count('bundle')
  assert bundles >= 4, LIFECYCLE
  assert LIFECYCLE == ['setup'] + ['bundle'] * bundles + ['teardown']


def test_a_keyed_state_copy_equals_the_original_and_is_independent_of_it():
  window = GlobalWindow()
  late_window = IntervalWindow(0, 10)
  tag = _ListStateTag('values')
  original = local_runner._KeyedStateSharingTimestamps()  # pylint: disable=protected-access
  original.set_timer(window, 'tick', TimeDomain.WATERMARK, Timestamp(5), 'a')
  original.set_timer(late_window, 'end', TimeDomain.WATERMARK, Timestamp(9))
  original.add_state(window, tag, b'one')
  original.global_state['hold'] = {'nested': [1]}
  reference = deepcopy_of(original)

  cloned = original.copy()
  assert isinstance(cloned, local_runner._KeyedStateSharingTimestamps)  # pylint: disable=protected-access
  assert deepcopy_of(cloned) == reference

  cloned.set_timer(window, 'tick', TimeDomain.WATERMARK, Timestamp(6), 'b')
  cloned.clear_timer(late_window, 'end', TimeDomain.WATERMARK)
  cloned.add_state(window, tag, b'two')
  cloned.global_state['hold']['nested'].append(2)
  cloned.get_timers(clear=True, watermark=Timestamp(100))
  assert deepcopy_of(original) == reference


def test_a_step_runs_on_bundles_with_elements_only(options):
  # Odd elements leave an empty bundle on one output, even ones on the
  # other; each consumer runs on the bundles that reached it, and every
  # element still arrives.
  LIFECYCLE.clear()
  stream = TestStream()
  for i in range(1, 7):
    stream = stream.add_elements([i]).advance_watermark_to(10 * i)
  with beam.Pipeline(options=options) as p:
    split = (
      p
      | stream.advance_watermark_to_infinity()
      | beam.Map(lambda n: n if n % 2 else beam.pvalue.TaggedOutput('even', n)).with_outputs(
        'even', main='odd'
      )
    )
    odd = split.odd | 'Odd' >> beam.ParDo(_RecordLifecycle())
    even = split.even | 'Even' >> beam.Map(lambda n: n * 10)
    assert_that(odd, equal_to([1, 3, 5]), label='odd')
    assert_that(even, equal_to([20, 40, 60]), label='even')
  # Three bundles held odd numbers; none of the three empty ones ran.
  assert LIFECYCLE.count('bundle') == 3, LIFECYCLE


def deepcopy_of(state):
  return (
    {w: dict(t) for w, t in state.timers.items()},
    {w: {tag: list(v) for tag, v in tags.items()} for w, tags in state.state.items()},
    copy.deepcopy(state.global_state),
  )


class _AddSideInput(beam.DoFn):
  def process(self, element, offsets):
    yield element + sum(offsets)


@pytest.mark.timeout(120)
def test_a_step_with_a_side_input_still_gets_its_window_looked_up(options):
  # The executor skips its window scan only for steps without side inputs;
  # a step with a windowed side input needs the scanned window to find the
  # side input's window to wait for (without it the step never runs).
  stream = (
    TestStream()
    .add_elements([TimestampedValue(1, 1), TimestampedValue(2, 12)])
    .advance_watermark_to(20)
    .add_elements([TimestampedValue(3, 15)])
    .advance_watermark_to_infinity()
  )
  with beam.Pipeline(options=options) as p:
    offsets = (
      p
      | 'Offsets' >> beam.Create([(100, 1), (1000, 15)])
      | 'Stamp' >> beam.Map(lambda o: TimestampedValue(o[0], o[1]))
      | 'OffsetWindows' >> beam.WindowInto(FixedWindows(10))
    )
    out = (
      p
      | stream
      | beam.WindowInto(FixedWindows(10))
      | beam.ParDo(_AddSideInput(), beam.pvalue.AsList(offsets))
    )
    assert_that(out, equal_to([101, 1002, 1003]))


def test_a_plain_function_on_the_instance_is_judged_by_that_function():
  # DoFnCopies puts setup and teardown on the instance as plain functions.
  class _Fn(beam.DoFn):
    def process(self, element):
      yield element

  plain, with_context = _Fn(), _Fn()
  plain.setup = lambda: None
  with_context.setup = lambda context=None: None
  for fn in (plain, with_context, plain):
    assert local_runner.cached_function_arguments(fn, 'setup') == (UNCACHED_ARGUMENTS(fn, 'setup'))
  assert local_runner.cached_function_arguments(with_context, 'setup') == (['context'], [None])


@pytest.mark.parametrize('watermark', [0, 4, 5, 6, 9, 10, 100])
def test_due_timers_are_beams_at_every_watermark(watermark):
  ours = local_runner._KeyedStateSharingTimestamps()  # pylint: disable=protected-access
  beams = InMemoryUnmergedState()
  for state in (ours, beams):
    state.set_timer(GlobalWindow(), 'tick', TimeDomain.WATERMARK, Timestamp(5), 'a')
    state.set_timer(GlobalWindow(), 'tick', TimeDomain.WATERMARK, Timestamp(9), 'b')
    state.set_timer(IntervalWindow(0, 10), 'end', TimeDomain.WATERMARK, Timestamp(6))
  at = Timestamp(watermark)
  assert sorted(ours.get_timers(watermark=at)[0], key=str) == sorted(
    beams.get_timers(watermark=at)[0], key=str
  )
  # A processing-time timer is reported as such, whatever the watermark.
  for state in (ours, beams):
    state.set_timer(GlobalWindow(), 'wall', TimeDomain.REAL_TIME, Timestamp(10**9))
  assert ours.get_timers(watermark=at, processing_time=Timestamp(0))[1]


def test_due_timers_stay_beams_as_timers_change_and_are_copied():
  # The earliest timer is remembered between rounds: every change of the
  # timers (set, clear, fired and cleared, a copy changed) must show.
  ours = local_runner._KeyedStateSharingTimestamps()  # pylint: disable=protected-access
  beams = InMemoryUnmergedState()

  def same_at(watermark, clear=False):
    at = Timestamp(watermark)
    assert sorted(ours.get_timers(clear, at)[0], key=str) == sorted(
      beams.get_timers(clear, at)[0], key=str
    )

  for state in (ours, beams):
    state.set_timer(GlobalWindow(), 'tick', TimeDomain.WATERMARK, Timestamp(9), 'a')
  same_at(5)
  for state in (ours, beams):
    state.set_timer(GlobalWindow(), 'tick', TimeDomain.WATERMARK, Timestamp(4), 'b')
  same_at(5)
  for state in (ours, beams):
    state.clear_timer(GlobalWindow(), 'tick', TimeDomain.WATERMARK, 'b')
  same_at(5)
  same_at(9, clear=True)
  same_at(100)
  ours = ours.copy()
  ours.set_timer(GlobalWindow(), 'tick', TimeDomain.WATERMARK, Timestamp(3))
  beams.set_timer(GlobalWindow(), 'tick', TimeDomain.WATERMARK, Timestamp(3))
  same_at(3)


# Beam's own values of what LocalRunner replaces, known independently of
# whether something is replaced now.
BEAMS_OWN = (
  (userstate, 'get_dofn_specs', UNCACHED),
  (transform_evaluator, 'get_dofn_specs', UNCACHED),
  (core, 'get_function_arguments', UNCACHED_ARGUMENTS),
  (transform_evaluator, 'pickler', pickler),
  (evaluation_context, 'DirectUnmergedState', local_runner._KeyedStateSharingTimestamps.__base__),  # pylint: disable=protected-access
  (executor, 'TransformExecutor', local_runner._TransformExecutorWithoutScan.__base__),  # pylint: disable=protected-access
  (
    executor,
    '_ExecutorServiceParallelExecutor',
    local_runner._ExecutorSkippingEmptyBundles.__base__,
  ),  # pylint: disable=protected-access
  (executor, 'MetricsContainer', MetricsContainer),
)


# The collector's settings outside a run.
GC_OWN = gc.get_threshold()


def assert_beams_own_internals():
  replaced = [
    f'{module.__name__}.{name}'
    for module, name, own in BEAMS_OWN
    if getattr(module, name) is not own
  ]
  assert not replaced, replaced
  assert gc.get_threshold() == GC_OWN and gc.get_freeze_count() == 0


def assert_replaced_internals():
  kept = [
    f'{module.__name__}.{name}' for module, name, own in BEAMS_OWN if getattr(module, name) is own
  ]
  assert not kept, kept
  assert gc.get_threshold()[0] == local_runner.GC_YOUNG_THRESHOLD
  assert gc.get_freeze_count() > 0


class _CountEach(beam.DoFn):
  def __init__(self):
    self._seen = Metrics.counter('test_local_runner', 'seen')

  def process(self, element):
    self._seen.inc()
    yield element


BUNDLES = 6


def counted_in_bundles(runner, process=None) -> int:
  """Runs a counter over BUNDLES one-element bundles on `runner`; returns
  what the runner reports."""
  stream = TestStream()
  # Each add_elements is a bundle of its own.
  for n in range(BUNDLES):
    stream = stream.add_elements([n])
  p = beam.Pipeline(runner=runner, options=PipelineOptions([], streaming=True))
  counted = p | stream.advance_watermark_to_infinity() | beam.ParDo(_CountEach())
  if process:
    _ = counted | beam.Map(process)
  result = p.run()
  result.wait_until_finish()
  return committed_counters(result, 'test_local_runner')['seen']


def test_a_plain_direct_runner_after_a_local_run_runs_beam_unchanged():
  assert counted_in_bundles(local_runner.LocalRunner()) == BUNDLES
  assert_beams_own_internals()
  # Beam's own runner keeps the scoped states of a step's first bundle, so
  # the counter reads that bundle alone (the metrics fix is LocalRunner's).
  assert counted_in_bundles(BundleBasedDirectRunner()) == 1
  assert counted_in_bundles(local_runner.LocalRunner()) == BUNDLES
  assert_beams_own_internals()


def test_the_replacements_last_until_the_run_is_waited_for(options):
  LIFECYCLE.clear()
  p = beam.Pipeline(options=options)
  _ = (
    p
    | TestStream().add_elements([1]).advance_watermark_to_infinity()
    | beam.ParDo(_RecordLifecycle())
  )
  result = p.run()
  # The executor runs the pipeline in its own threads from here on.
  assert_replaced_internals()
  assert result.wait_until_finish() == PipelineState.DONE
  assert_beams_own_internals()
  assert LIFECYCLE[-1] == 'teardown'


def _fail(element):
  raise ValueError(f'cannot take {element}')


def test_a_failing_run_puts_beams_internals_back_and_tears_down():
  LIFECYCLE.clear()
  stream = TestStream().add_elements([1]).advance_watermark_to_infinity()
  with pytest.raises(Exception, match='cannot take 1'):
    with beam.Pipeline(
      runner=local_runner.LocalRunner(), options=PipelineOptions([], streaming=True)
    ) as p:
      _ = p | stream | beam.ParDo(_RecordLifecycle()) | beam.Map(_fail)
  assert_beams_own_internals()
  assert LIFECYCLE and LIFECYCLE[0] == 'setup'
  assert LIFECYCLE[-1] == 'teardown'


def test_overlapping_runs_share_the_replacements_until_the_last_ends(options):
  first = beam.Pipeline(options=options)
  _ = first | TestStream().add_elements([1]).advance_watermark_to_infinity()
  second = beam.Pipeline(options=options)
  _ = second | TestStream().add_elements([2]).advance_watermark_to_infinity()
  first_result, second_result = first.run(), second.run()
  first_result.wait_until_finish()
  assert_replaced_internals()
  second_result.wait_until_finish()
  assert_beams_own_internals()


def test_another_beam_release_gets_the_plain_runner_and_one_warning(monkeypatch, caplog):
  monkeypatch.setattr(apache_beam, '__version__', '2.99.0')
  with caplog.at_level(logging.WARNING, logger=local_runner.__name__):
    # While it runs, the process runs Beam's runner as is.
    counts = [
      counted_in_bundles(local_runner.LocalRunner(), process=lambda _: assert_beams_own_internals())
      for _ in range(2)
    ]
  assert counts == [1, 1]
  warnings = [r.getMessage() for r in caplog.records if r.name == local_runner.__name__]
  assert len(warnings) == 1, warnings
  assert '2.99.0' in warnings[0] and '2.77.0' in warnings[0], warnings


def test_a_cancelled_run_puts_beams_internals_back(options):
  p = beam.Pipeline(options=options)
  _ = (
    p
    | TestStream().add_elements([1]).advance_watermark_to_infinity()
    | beam.ParDo(_RecordLifecycle())
  )
  result = p.run()
  result.cancel()
  assert result.state == PipelineState.CANCELLED
  assert_beams_own_internals()
