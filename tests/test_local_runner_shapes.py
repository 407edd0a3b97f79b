"""The Beam internals LocalRunner replaces (pipelines/local_runner.py,
REPLACEMENTS) still have the shape its replacements rely on: the attribute
is where it was, with the signature it was called with, the methods a
replacement overrides and the attributes it reads.

One test per replacement, each registered for the internals it checks, so
an upgrade of Beam fails exactly the test of the replacement that broke,
with a message naming the internal; a replacement added without its test
fails test_every_replacement_has_its_shape_test. Whether the replacements
still give Beam's results is tests/test_local_runner.py's part.
"""

import inspect
import sys
from pathlib import Path
from typing import Callable, Dict, List

from apache_beam.internal import pickler
from apache_beam.metrics.execution import MetricsContainer
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions
from apache_beam.pipeline import AppliedPTransform
from apache_beam.runners import common
from apache_beam.runners.direct import (
  evaluation_context,
  executor,
  transform_evaluator,
  watermark_manager,
)
from apache_beam.runners.direct.bundle_factory import _Bundle
from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner
from apache_beam.runners.direct.watermark_manager import WatermarkManager
from apache_beam.transforms import core, userstate
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.trigger import InMemoryUnmergedState
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MAX_TIMESTAMP, Timestamp

from pipelines import local_runner

# Internal name -> the test that checks its shape.
SHAPE_TESTS: Dict[str, str] = {}


def checks(*internals: str) -> Callable:
  """Registers the decorated test as the shape test of `internals`."""

  def register(test: Callable) -> Callable:
    for internal in internals:
      SHAPE_TESTS[internal] = test.__name__
    return test

  return register


def expect(internal: str, holds: bool, what: str) -> None:
  assert holds, (
    f'Beam changed {internal}: {what}. LocalRunner replaces it '
    '(pipelines/local_runner.py REPLACEMENTS); adapt or drop that replacement.'
  )


def params(function: Callable) -> List[str]:
  return list(inspect.signature(function).parameters)


def source(obj) -> str:
  """The Python source of `obj`, or of its whole module where Beam ships the
  module compiled (Cython: apache_beam.runners.common), from the .py it was
  compiled from, which ships beside it."""
  try:
    return inspect.getsource(obj)
  except (OSError, TypeError):
    module = sys.modules[obj.__module__]
    return Path(module.__file__).with_name(module.__name__.rpartition('.')[2] + '.py').read_text()


def test_every_replacement_has_its_shape_test():
  assert sorted(r.internal for r in local_runner.REPLACEMENTS) == sorted(SHAPE_TESTS)


USERSTATE = 'apache_beam.transforms.userstate.get_dofn_specs'
EVALUATOR_SPECS = 'apache_beam.runners.direct.transform_evaluator.get_dofn_specs'


@checks(USERSTATE, EVALUATOR_SPECS)
def test_get_dofn_specs_shape():
  """cached_dofn_specs: one argument, looked up through userstate by its
  callers there and imported by name by the evaluator; the specs come from
  the parameter defaults of the DoFn's bound methods only."""
  expect(USERSTATE, params(userstate.get_dofn_specs) == ['dofn'], 'its signature is not (dofn)')
  expect(
    EVALUATOR_SPECS,
    transform_evaluator.get_dofn_specs is userstate.get_dofn_specs,
    'the evaluator no longer imports userstate.get_dofn_specs by name',
  )
  for caller in (userstate.is_stateful_dofn, userstate.validate_stateful_dofn):
    expect(
      USERSTATE,
      'get_dofn_specs(' in source(caller),
      f'{caller.__name__} no longer calls it through the module',
    )
  looked_at = source(userstate.get_dofn_specs)
  expect(
    USERSTATE,
    'types.MethodType' in looked_at and 'MethodWrapper(dofn, method_name)' in looked_at,
    'it reads more of a DoFn than its bound methods (the per-class cache assumes so)',
  )


ARGUMENTS = 'apache_beam.transforms.core.get_function_arguments'


@checks(ARGUMENTS)
def test_get_function_arguments_shape():
  """cached_function_arguments: (obj, func), asked by the DoFn runner and
  DoFn.get_function_arguments through core; an `_inspect_<func>` hook or
  the attribute `func` decides the answer, nothing else."""
  expect(ARGUMENTS, params(core.get_function_arguments) == ['obj', 'func'], 'signature')
  expect(
    ARGUMENTS,
    'core.get_function_arguments(' in source(common.MethodWrapper),
    'the DoFn runner (common.MethodWrapper) no longer looks it up in core',
  )
  expect(
    ARGUMENTS,
    'get_function_arguments(self, func)' in source(core.DoFn.get_function_arguments),
    'DoFn.get_function_arguments no longer delegates to it',
  )
  body = source(core.get_function_arguments)
  expect(
    ARGUMENTS,
    "'_inspect_%s' % func" in body and 'getattr(obj, func)' in body,
    'it reads more than the `_inspect_` hook and the method (the cache key assumes so)',
  )


PICKLER = 'apache_beam.runners.direct.transform_evaluator.pickler'


@checks(PICKLER)
def test_evaluator_pickler_shape():
  """DoFnCopies: the evaluator copies each DoFn with pickler.roundtrip(dofn)
  when a bundle starts; the copy's setup and teardown are looked up on the
  instance, as DoFnCopies sets them."""
  expect(PICKLER, transform_evaluator.pickler is pickler, 'it is not the pickler module')
  expect(PICKLER, params(pickler.roundtrip) == ['o'], 'pickler.roundtrip takes (o) no more')
  expect(
    PICKLER,
    'pickler.roundtrip(transform.dofn)' in source(transform_evaluator._ParDoEvaluator),
    'the ParDo evaluator no longer copies its DoFn with pickler.roundtrip',
  )
  signature = source(common.DoFnSignature)
  expect(
    PICKLER,
    "MethodWrapper(do_fn, 'setup')" in signature
    and "MethodWrapper(do_fn, 'teardown')" in signature,
    "a DoFn's setup and teardown are no longer looked up by name on the instance",
  )


UNMERGED_STATE = 'apache_beam.runners.direct.evaluation_context.DirectUnmergedState'


@checks(UNMERGED_STATE)
def test_direct_unmerged_state_shape():
  """_KeyedStateSharingTimestamps: a DirectUnmergedState made with no
  argument, whose copy, set_timer, clear_timer and get_timers it
  overrides, and whose timers, state and global_state it reads."""
  own = evaluation_context.DirectUnmergedState
  expect(UNMERGED_STATE, issubclass(own, InMemoryUnmergedState), 'not an InMemoryUnmergedState')
  expected = {
    'copy': ['self'],
    'set_timer': ['self', 'window', 'name', 'time_domain', 'timestamp', 'dynamic_timer_tag'],
    'clear_timer': ['self', 'window', 'name', 'time_domain', 'dynamic_timer_tag'],
    'get_timers': ['self', 'clear', 'watermark', 'processing_time'],
  }
  for method, names in expected.items():
    expect(UNMERGED_STATE, params(getattr(own, method)) == names, f'{method} signature')
  defaults = inspect.signature(own.get_timers).parameters
  expect(
    UNMERGED_STATE,
    (defaults['clear'].default, defaults['watermark'].default) == (False, MAX_TIMESTAMP),
    'get_timers defaults',
  )
  expect(
    UNMERGED_STATE,
    'DirectUnmergedState()' in source(evaluation_context),
    'the evaluation context no longer makes it with no argument',
  )
  state = own()
  window = GlobalWindow()
  state.set_timer(window, 'tick', TimeDomain.WATERMARK, Timestamp(5), 'a')
  expect(
    UNMERGED_STATE,
    dict(state.timers) == {window: {('tick', TimeDomain.WATERMARK, 'a'): Timestamp(5)}},
    'timers are no longer window -> {(name, time domain, tag): timestamp}',
  )
  expect(
    UNMERGED_STATE,
    isinstance(state.state, dict) and isinstance(state.global_state, dict),
    'state and global_state are no longer dicts',
  )


TRANSFORM_WATERMARKS = 'apache_beam.runners.direct.watermark_manager._TransformWatermarks'


@checks(TRANSFORM_WATERMARKS)
def test_transform_watermarks_shape():
  """_TransformWatermarksAskingDueKeys: a _TransformWatermarks made by the
  watermark manager with (clock, keyed_states, transform), whose
  extract_transform_timers it overrides, reading _lock, _input_watermark,
  _clock, _keyed_states and _fired_timers, and building TimerFiring."""
  own = watermark_manager._TransformWatermarks
  expect(
    TRANSFORM_WATERMARKS,
    params(own.__init__) == ['self', 'clock', 'keyed_states', 'transform'],
    '__init__ signature',
  )
  expect(
    TRANSFORM_WATERMARKS,
    params(own.extract_transform_timers) == ['self'],
    'extract_transform_timers signature',
  )
  expect(
    TRANSFORM_WATERMARKS,
    '_TransformWatermarks(' in source(watermark_manager.WatermarkManager),
    'the watermark manager no longer makes it by its module name',
  )
  made = own(Timestamp, {}, 'step')
  for attribute in ('_lock', '_input_watermark', '_clock', '_keyed_states', '_fired_timers'):
    expect(TRANSFORM_WATERMARKS, hasattr(made, attribute), f'no attribute {attribute}')
  expect(
    TRANSFORM_WATERMARKS,
    params(watermark_manager.TimerFiring.__init__)
    == ['self', 'encoded_key', 'window', 'name', 'time_domain', 'timestamp', 'dynamic_timer_tag'],
    'TimerFiring signature',
  )
  expect(TRANSFORM_WATERMARKS, made.extract_transform_timers() == ([], False), 'no keys, no timers')


TRANSFORM_EXECUTOR = 'apache_beam.runners.direct.executor.TransformExecutor'


@checks(TRANSFORM_EXECUTOR)
def test_transform_executor_shape():
  """_TransformExecutorWithoutScan: the executor's constructor arguments,
  its scan of the input bundle there (which it skips by handing over an
  empty stand-in) and the bundle it keeps as _input_bundle."""
  expect(
    TRANSFORM_EXECUTOR,
    params(executor.TransformExecutor.__init__)
    == [
      'self',
      'transform_evaluator_registry',
      'evaluation_context',
      'input_bundle',
      'fired_timers',
      'applied_ptransform',
      'completion_callback',
      'transform_evaluation_state',
    ],
    '__init__ signature',
  )
  init = source(executor.TransformExecutor.__init__)
  expect(
    TRANSFORM_EXECUTOR,
    'input_bundle.has_elements()' in init and 'self._input_bundle = input_bundle' in init,
    '__init__ no longer scans the bundle only if it has elements, or keeps it as _input_bundle',
  )
  expect(
    TRANSFORM_EXECUTOR,
    '_latest_main_input_window' in source(executor.TransformExecutor.call)
    and 'self._applied_ptransform.side_inputs' in source(executor.TransformExecutor.call),
    'the scanned window is no longer for side inputs only',
  )
  expect(
    TRANSFORM_EXECUTOR,
    'self.side_inputs' in source(AppliedPTransform.__init__),
    'an applied transform no longer lists its side inputs',
  )


PARALLEL_EXECUTOR = 'apache_beam.runners.direct.executor._ExecutorServiceParallelExecutor'


@checks(PARALLEL_EXECUTOR)
def test_parallel_executor_shape():
  """_ExecutorSkippingEmptyBundles: schedule_consumers(committed_bundle),
  which it overrides, and the watermark manager that leaves empty bundles
  out of the consumers' pending bundles."""
  own = executor._ExecutorServiceParallelExecutor
  expect(
    PARALLEL_EXECUTOR,
    params(own.schedule_consumers) == ['self', 'committed_bundle'],
    'schedule_consumers signature',
  )
  expect(PARALLEL_EXECUTOR, callable(getattr(_Bundle, 'has_elements', None)), 'bundles')
  expect(
    PARALLEL_EXECUTOR,
    'output.has_elements()' in source(WatermarkManager),
    'the watermark manager no longer leaves empty bundles out of the pending ones',
  )


METRICS_CONTAINER = 'apache_beam.runners.direct.executor.MetricsContainer'


@checks(METRICS_CONTAINER)
def test_executor_metrics_container_shape():
  """_MetricsContainerPerThread: the executor makes a MetricsContainer of
  the step's label for each bundle and hands it to the state sampler's
  scoped states; a container can be reset."""
  expect(METRICS_CONTAINER, executor.MetricsContainer is MetricsContainer, 'not the class')
  call = source(executor.TransformExecutor.call)
  expect(
    METRICS_CONTAINER,
    'MetricsContainer(self._applied_ptransform.full_label)' in call
    and 'metrics_container=metrics_container' in call,
    'the executor no longer makes one per bundle for the scoped states',
  )
  container = MetricsContainer('step')
  expect(METRICS_CONTAINER, callable(getattr(container, 'reset', None)), 'no reset()')
  container.reset()


def test_the_runner_and_the_option_local_runner_builds_on():
  # Not replacements: LocalRunner subclasses the runner and sets an option.
  assert params(BundleBasedDirectRunner.run_pipeline) == ['self', 'pipeline', 'options']
  options = PipelineOptions().view_as(DirectOptions)
  assert options.direct_runner_use_stacked_bundle is True
  assert issubclass(local_runner.LocalRunner, BundleBasedDirectRunner)


PARDO_EVALUATOR = 'apache_beam.runners.direct.transform_evaluator._ParDoEvaluator'


@checks(PARDO_EVALUATOR)
def test_pardo_evaluator_shape():
  """_ParDoEvaluatorHoldingAtTimers: the registry evaluates every ParDo with
  _ParDoEvaluator, found by its module name when a run builds the
  registry; its finish_bundle (no argument) commits the user state and
  returns a TransformResult whose keyed_watermark_holds the runner applies
  per encoded key; the bundle's keyed states are its _step_context's
  partial_keyed_state, set up in __init__, its _applied_ptransform the
  ParDo whose DoFn may ask for holds, and user_state_context is None for a
  stateless DoFn."""
  own = transform_evaluator._ParDoEvaluator
  expect(PARDO_EVALUATOR, params(own.finish_bundle) == ['self'], 'finish_bundle signature')
  expect(
    PARDO_EVALUATOR,
    'core.ParDo: _ParDoEvaluator' in source(transform_evaluator.TransformEvaluatorRegistry),
    'the registry no longer maps ParDo to it by its module name',
  )
  finish = source(own.finish_bundle)
  expect(
    PARDO_EVALUATOR,
    'self.user_state_context.commit()' in finish and 'return TransformResult(' in finish,
    'finish_bundle no longer commits the user state and returns a TransformResult',
  )
  expect(
    PARDO_EVALUATOR,
    'self.user_state_context = None' in source(own.start_bundle),
    'start_bundle no longer leaves user_state_context None for a stateless DoFn',
  )
  expect(
    PARDO_EVALUATOR,
    'self._step_context = ' in source(transform_evaluator._TransformEvaluator.__init__)
    and 'self._applied_ptransform = ' in source(transform_evaluator._TransformEvaluator.__init__),
    'no _step_context or _applied_ptransform',
  )
  expect(
    PARDO_EVALUATOR,
    'keyed_watermark_holds' in params(transform_evaluator.TransformResult.__init__),
    'TransformResult has no keyed_watermark_holds',
  )
  step_context = evaluation_context.DirectStepContext({})
  expect(PARDO_EVALUATOR, step_context.partial_keyed_state == {}, 'no partial_keyed_state')
  manager_source = source(watermark_manager.WatermarkManager.update_watermarks)
  expect(
    PARDO_EVALUATOR,
    'tw.hold(keyed_earliest_holds)' in manager_source,
    "the watermark manager no longer applies a result's holds",
  )


EVALUATION_CONTEXT = 'apache_beam.runners.direct.evaluation_context.EvaluationContext'


@checks(EVALUATION_CONTEXT)
def test_evaluation_context_shape():
  """_EvaluationContextNotingKeyedStates: the direct runner builds the
  EvaluationContext by its module name when a run starts; the context's
  _initialize_keyed_states(root_transforms, value_to_consumers) makes one
  dict of states per step, which the watermark manager gets as the step's
  keyed states and which a commit and a first get_keyed_state fill by item
  assignment only."""
  own = evaluation_context.EvaluationContext
  expect(
    EVALUATION_CONTEXT,
    'from apache_beam.runners.direct.evaluation_context import EvaluationContext'
    in source(BundleBasedDirectRunner.run_pipeline),
    'the runner no longer imports it by its module name when it runs',
  )
  expect(
    EVALUATION_CONTEXT,
    params(own._initialize_keyed_states) == ['self', 'root_transforms', 'value_to_consumers'],
    '_initialize_keyed_states signature',
  )
  made = own._initialize_keyed_states(None, ['root'], {'pcoll': ['consumer']})
  expect(
    EVALUATION_CONTEXT,
    made == {'root': {}, 'consumer': {}},
    '_initialize_keyed_states no longer makes one dict per step',
  )
  expect(
    EVALUATION_CONTEXT,
    'existing_keyed_state[k] = v' in source(own.handle_result)
    and 'self.existing_keyed_state[key] = ' in source(evaluation_context.DirectStepContext),
    'keyed states are no longer set by item assignment',
  )
  expect(
    EVALUATION_CONTEXT,
    'self._transform_keyed_states)' in source(own.__init__),
    "the watermark manager no longer gets the context's keyed states",
  )
