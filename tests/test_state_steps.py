"""The main job's stateful steps are the ones docs/upgrades.md lists: a
renamed or new stateful step changes what a savepoint restores into, so it
must be a deliberate, documented change."""

from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms import userstate

from pipelines import contact_center
from transforms.formats.agent_registry import AGENT_FORMATS
from transforms.formats.registry import FORMATS

REPO = Path(__file__).resolve().parents[1]


def _stateful_steps(pipeline: beam.Pipeline) -> list:
  steps = []

  class Visitor(beam.pipeline.PipelineVisitor):
    def visit_transform(self, node):
      if isinstance(node.transform, beam.ParDo) and userstate.is_stateful_dofn(node.transform.fn):
        steps.append(node.full_label)

  pipeline.visit(Visitor())
  return steps


def test_the_stateful_steps_are_the_documented_ones(tmp_path):
  steps = set()
  # Every call format beside every agent format (zip: each of both at least
  # once; the flows' steps do not depend on each other).
  agent_formats = list(AGENT_FORMATS) * len(FORMATS)
  for call_event_format, agent_event_format in zip(FORMATS, agent_formats):
    options = PipelineOptions(
      [
        '--call_events=samples/call_events.jsonl',
        '--data_actions=samples/data_actions.jsonl',
        '--agent_events=samples/call_events.jsonl',
        f'--call_event_format={call_event_format}',
        f'--agent_event_format={agent_event_format}',
        f'--sqlite_path={tmp_path / "out.db"}',
        # Every kind of rule, the forecast's included (samples/alert_rules.yaml).
        '--alert_rules=samples/alert_rules.yaml',
        '--streaming',
      ]
    )
    pipeline = beam.Pipeline(options=options)
    contact_center.build(pipeline, options)
    steps.update(_stateful_steps(pipeline))
  assert sorted(steps) == sorted(_documented_steps())


def _documented_steps() -> list:
  """The first column of docs/upgrades.md's table of stateful steps."""
  text = (REPO / 'docs' / 'upgrades.md').read_text()
  section = text.split('## The stateful steps', 1)[1].split('\n## ', 1)[0]
  return [line.split('`')[1] for line in section.splitlines() if line.startswith('| `')]
