"""LocalRunner: Beam's BundleBasedDirectRunner with DoFn introspection cached.

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

The main job runs LocalRunner whenever the runner is LOCAL_RUNNER (the
default), so the option keeps Beam's name for it.
"""
import collections
import types
from typing import Optional, Set, Tuple

from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.runners.direct import transform_evaluator
from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner
from apache_beam.transforms import userstate

# The Python DirectRunner may try to download the Prism binary and hang
# offline; the bundle-based runner is local, supports TestStream replay,
# state and timers, and needs no network. Jobs run it as LocalRunner.
LOCAL_RUNNER = 'BundleBasedDirectRunner'
_MAX_CACHED_CLASSES = 512

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


def install_dofn_spec_cache() -> None:
  """Routes the direct runner's spec lookups through the cache (idempotent).

  `userstate.is_stateful_dofn` and `validate_stateful_dofn` look the
  function up in their module; the evaluator imported it by name.
  """
  userstate.get_dofn_specs = cached_dofn_specs
  transform_evaluator.get_dofn_specs = cached_dofn_specs


class LocalRunner(BundleBasedDirectRunner):
  """BundleBasedDirectRunner with cached DoFn introspection (see module
  docstring). Same semantics: only the cost of each bundle changes."""
  def run_pipeline(self, pipeline, options):
    install_dofn_spec_cache()
    return super().run_pipeline(pipeline, options)


def local_streaming_runner(options: PipelineOptions) -> Optional[LocalRunner]:
  """Sets streaming mode and the default runner (LOCAL_RUNNER) on `options`;
  returns a LocalRunner when that is the runner, else None (the runner named
  by the options)."""
  standard = options.view_as(StandardOptions)
  standard.runner = standard.runner or LOCAL_RUNNER
  standard.streaming = True
  return LocalRunner() if standard.runner == LOCAL_RUNNER else None
