"""LocalRunner: Beam's BundleBasedDirectRunner with DoFn introspection cached
and DoFn instances reused across bundles.

Why a runner of our own: the bundle-based direct runner (the local runner
that needs no network and runs TestStream, state and timers) asks
`userstate.get_dofn_specs` for the state and timer specs of a DoFn several
times per bundle (scheduling, evaluator start, DoFnRunner signature, state
context), and every call takes `inspect.signature` of every method of a
fresh copy of the DoFn. In the replay, with one bundle per step per poll and
per round of timers, that introspection was about 40 % of a run (py-spy).

The specs are declared on the DoFn class, as parameter defaults of its
methods, so they are computed once per class here. An instance that carries
bound methods of its own (the only instance-level attributes Beam's lookup
looks at) is inspected every time, as before. The cache is bounded: a class
pickled by value (a DoFn defined inside a function) is a new class after
every pickle round trip.

For the same reason the signatures of DoFn methods (`get_function_arguments`,
asked again for every bundle's DoFnRunner) are cached per class and method,
with the same exceptions: a method on the instance, or an `_inspect_` hook.

The evaluator also makes a new copy of each DoFn for every bundle (a pickle
round trip, 5 % of a run). LocalRunner makes that copy once per DoFn and
executor thread and hands it to the thread's later bundles, as every
portable runner reuses DoFn instances across bundles (the Beam model allows
it; DoFns here keep nothing between bundles that they do not validate), and
with their lifecycle: setup once per copy, teardown when the run ends (see
DoFnCopies). The round trip still runs once, so a DoFn that does not pickle
still fails locally.

The main job runs LocalRunner whenever the runner is LOCAL_RUNNER (the
default), so the option keeps Beam's name for it.
"""
import collections
import logging
import threading
import types
from typing import Any, Callable, List, Optional, Set, Tuple

from apache_beam.internal import pickler
from apache_beam.options.pipeline_options import DirectOptions
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.runners.direct import transform_evaluator
from apache_beam.runners.runner import PipelineState
from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner
from apache_beam.transforms import core
from apache_beam.transforms import userstate

# The Python DirectRunner may try to download the Prism binary and hang
# offline; the bundle-based runner is local, supports TestStream replay,
# state and timers, and needs no network. Jobs run it as LocalRunner.
LOCAL_RUNNER = 'BundleBasedDirectRunner'
_LOGGER = logging.getLogger(__name__)
_MAX_CACHED_CLASSES = 512
_MAX_DOFN_COPIES_PER_THREAD = 512

Specs = Tuple[Set[userstate.StateSpec], Set[userstate.TimerSpec]]

_uncached_dofn_specs = userstate.get_dofn_specs
_specs_by_class: 'collections.OrderedDict[type, Specs]' = (
    collections.OrderedDict())


def _has_own_bound_methods(dofn) -> bool:
  return any(
      isinstance(value, types.MethodType)
      for value in getattr(dofn, '__dict__', {}).values())


def cached_dofn_specs(dofn) -> Specs:
  """Same result as `userstate.get_dofn_specs(dofn)`, computed once per
  DoFn class. Returns fresh sets: callers may not share them."""
  if _has_own_bound_methods(dofn):
    return _uncached_dofn_specs(dofn)
  cls = type(dofn)
  specs = _specs_by_class.get(cls)
  if specs is None:
    specs = _uncached_dofn_specs(dofn)
    _specs_by_class[cls] = specs
    if len(_specs_by_class) > _MAX_CACHED_CLASSES:
      _specs_by_class.popitem(last=False)
  return set(specs[0]), set(specs[1])


_uncached_function_arguments = core.get_function_arguments
_arguments_by_method: 'collections.OrderedDict[Tuple[type, str], Tuple[List[str], List[Any]]]' = (
    collections.OrderedDict())


def cached_function_arguments(obj: Any,
                              func: str) -> Tuple[List[str], List[Any]]:
  """Same result as `core.get_function_arguments(obj, func)`, computed once
  per class and method when the method is a plain function of the class.
  Returns fresh lists."""
  cls = type(obj)
  if (hasattr(obj, f'_inspect_{func}') or
      func in getattr(obj, '__dict__', {}) or
      not isinstance(getattr(cls, func, None), types.FunctionType)):
    return _uncached_function_arguments(obj, func)
  arguments = _arguments_by_method.get((cls, func))
  if arguments is None:
    arguments = _uncached_function_arguments(obj, func)
    _arguments_by_method[(cls, func)] = arguments
    if len(_arguments_by_method) > _MAX_CACHED_CLASSES:
      _arguments_by_method.popitem(last=False)
  return list(arguments[0]), list(arguments[1])


class DoFnCopies:
  """Stands in for the `pickler` module in the direct runner's evaluators:
  `roundtrip(dofn)` gives the calling thread's copy of `dofn`, made by
  `pickler.roundtrip` the first time.

  The evaluator calls a DoFn's setup before and its teardown after every
  bundle. A copy that serves many bundles is set up once, at its first
  bundle, and torn down by `teardown_all` (or when it leaves the bounded
  set of copies): the lifecycle portable runners give a DoFn instance, so a
  sink keeps its connection for the run instead of reconnecting per bundle.
  """
  def __init__(self, make_copy: Callable[[Any], Any] = pickler.roundtrip):
    self._make_copy = make_copy
    self._local = threading.local()
    self._lock = threading.Lock()
    self._teardowns: List[Callable[[], None]] = []

  def roundtrip(self, dofn: Any) -> Any:
    copies = getattr(self._local, 'copies', None)
    if copies is None:
      copies = self._local.copies = collections.OrderedDict()
    # By identity: the original is held with its copy, so its id is not
    # reused while the entry lives.
    entry = copies.get(id(dofn))
    if entry is not None and entry[0] is dofn:
      copies.move_to_end(id(dofn))
      return entry[1]
    copy = self._make_copy(dofn)
    teardown = self._set_up_once(copy)
    copies[id(dofn)] = (dofn, copy, teardown)
    if len(copies) > _MAX_DOFN_COPIES_PER_THREAD:
      # Not in use: this thread runs one bundle at a time.
      copies.popitem(last=False)[1][2]()
    return copy

  def _set_up_once(self, copy: Any) -> Callable[[], None]:
    """Replaces the copy's setup and teardown (plain functions on the
    instance, not bound methods: the spec cache still applies); returns
    the real teardown, which runs at most once per setup."""
    real_setup, real_teardown = copy.setup, copy.teardown
    is_set_up = []

    def setup_once() -> None:
      if not is_set_up:
        real_setup()
        is_set_up.append(True)

    def teardown_later() -> None:
      pass

    def teardown_now() -> None:
      if is_set_up:
        is_set_up.clear()
        real_teardown()

    copy.setup, copy.teardown = setup_once, teardown_later
    with self._lock:
      self._teardowns.append(teardown_now)
    return teardown_now

  def teardown_all(self) -> None:
    """Tears down every copy that was set up; a failing teardown does not
    keep the others from running (Beam's teardown is best effort)."""
    with self._lock:
      teardowns, self._teardowns = self._teardowns, []
    for teardown in teardowns:
      try:
        teardown()
      except Exception:  # pylint: disable=broad-except
        _LOGGER.exception('DoFn teardown failed')

  def __getattr__(self, name: str) -> Any:
    return getattr(pickler, name)


def install_dofn_spec_cache() -> None:
  """Routes the direct runner's spec lookups through the cache (idempotent).

  `userstate.is_stateful_dofn` and `validate_stateful_dofn` look the
  function up in their module; the evaluator imported it by name.
  """
  userstate.get_dofn_specs = cached_dofn_specs
  transform_evaluator.get_dofn_specs = cached_dofn_specs
  # The DoFn runner and DoFn.get_function_arguments look it up in `core`.
  core.get_function_arguments = cached_function_arguments


def install_dofn_reuse() -> DoFnCopies:
  """Makes the evaluators reuse one copy of each DoFn per thread, from a new
  set of copies; returns it (to tear down when the run ends)."""
  copies = DoFnCopies()
  transform_evaluator.pickler = copies
  return copies


class LocalRunner(BundleBasedDirectRunner):
  """BundleBasedDirectRunner with cached DoFn introspection and reused DoFn
  instances (see module docstring). Same semantics: only the cost of each
  bundle changes."""
  def run_pipeline(self, pipeline, options):
    # Stacking stores a run of outputs with one timestamp as one entry, and
    # compares every output's timestamp with the last one's to find runs:
    # 1.07 us per element and step against 0.23 us (scripts/bench_micro.py),
    # for elements that here nearly never share a timestamp.
    options.view_as(DirectOptions).direct_runner_use_stacked_bundle = False
    install_dofn_spec_cache()
    copies = install_dofn_reuse()
    result = super().run_pipeline(pipeline, options)
    # Torn down once the run is over, failed or not.
    wait_until_finish = result.wait_until_finish

    def wait_then_tear_down(duration=None):
      try:
        return wait_until_finish(duration)
      finally:
        if PipelineState.is_terminal(result.state):
          copies.teardown_all()

    result.wait_until_finish = wait_then_tear_down
    return result


def local_streaming_runner(options: PipelineOptions) -> Optional[LocalRunner]:
  """Sets streaming mode and the default runner (LOCAL_RUNNER) on `options`;
  returns a LocalRunner when that is the runner, else None (the runner named
  by the options)."""
  standard = options.view_as(StandardOptions)
  standard.runner = standard.runner or LOCAL_RUNNER
  standard.streaming = True
  return LocalRunner() if standard.runner == LOCAL_RUNNER else None
