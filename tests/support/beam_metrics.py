"""Reads a finished pipeline's Beam counters, as an operator's dashboard
would."""

from typing import Dict

from apache_beam.metrics.metric import MetricsFilter
from apache_beam.runners.runner import PipelineResult


def committed_counters(result: PipelineResult, namespace: str) -> Dict[str, int]:
  """Counter name -> committed value, for the counters of `namespace`."""
  query = result.metrics().query(MetricsFilter().with_namespace(namespace))
  totals: Dict[str, int] = {}
  for counter in query['counters']:
    name = counter.key.metric.name
    totals[name] = totals.get(name, 0) + counter.committed
  return totals
