"""CxoneInteractionFlow: CXone Data Action records to interaction volumes and
callback-pattern alerts."""

import apache_beam as beam

from options.config import InteractionConfig
from transforms.callback_patterns import DetectCallbackPatterns
from transforms.data_actions import ParseDataActions
from transforms.dedupe import DedupeByKey
from transforms.interaction_volumes import InteractionVolumes
from transforms.join_customers import JoinCustomers
from transforms.records import CustomerProfile, PatternAlert, PatternMatch
from transforms.windowing import to_late_event

BEHIND_PROCESSED_INTERACTIONS = 'behind_processed_interactions'


def to_pattern_alert(match: PatternMatch, profile: CustomerProfile) -> PatternAlert:
  return PatternAlert(
    customer_id=match.customer_id,
    channel=match.channel,
    timestamp=match.timestamp,
    failure_count=match.failure_count,
    alert_type=match.alert_type,
    tier=profile.tier,
    region=profile.region,
    first_failure_timestamp=match.first_failure_timestamp,
    interaction_ids=match.interaction_ids,
  )


class CxoneInteractionFlow(beam.PTransform):
  """Raw Data Action records to volumes, alerts, late events, dead letters.

  Input: PCollection[SourceRecord] from any source (file replay, Kafka).
  `config`: the flow's settings (options/config.py), by keyword.
  Output: dict table name -> PCollection:
    `interaction_volumes`: InteractionVolume panes per channel and window.
    `pattern_alerts`: PatternAlert, pattern matches joined with the
      customer's latest profile.
    `late_events`: LateEvent, interactions late for their volume window
      (`after_window_expiry`) or for their customer's pattern order
      (`behind_processed_interactions`).
    `dead_letters`: DeadLetter.
  Patterns are detected on the interactions themselves and the (rare)
  matches are joined with profiles: the join's wait for a profile then only
  delays alerts, never the event-time order the pattern depends on.
  """

  def __init__(self, *, source_name: str, config: InteractionConfig):
    super().__init__()
    config = InteractionConfig.checked(config)
    self._source_name = source_name
    self._field_rules = config.field_rules
    self._shards = config.event_time.state_shards
    self._dedupe_ttl = config.dedupe_ttl
    self._volumes = InteractionVolumes(
      window_size=config.window_size,
      allowed_lateness=config.allowed_lateness,
      key_idle_ttl=config.event_time.key_idle_ttl,
      max_out_of_orderness=config.event_time.max_out_of_orderness,
      shards=config.event_time.state_shards,
    )
    self._patterns = DetectCallbackPatterns(
      failure_statuses=config.failure_statuses,
      callback_statuses=config.callback_statuses,
      within=config.pattern_within,
      max_out_of_orderness=config.event_time.max_out_of_orderness,
      tick=config.pattern_tick,
      shards=config.event_time.state_shards,
    )
    self._join = JoinCustomers(
      to_pattern_alert,
      PatternMatch,
      profile_wait=config.profile_wait,
      customer_state_ttl=config.customer_state_ttl,
      max_out_of_orderness=config.event_time.max_out_of_orderness,
      shards=config.event_time.state_shards,
    )

  def expand(self, records):
    source = self._source_name
    parsed = records | 'Parse' >> ParseDataActions(self._field_rules)
    interactions = parsed.interactions | 'Dedupe' >> DedupeByKey(
      lambda i: i.interaction_id,
      lambda i: i.timestamp,
      self._dedupe_ttl,
      'data_actions',
      shards=self._shards,
    )
    volumes = interactions | 'Volumes' >> self._volumes
    patterns = interactions | 'Patterns' >> self._patterns
    alerts = (patterns['matches'], parsed.customer_updates) | 'JoinCustomers' >> self._join
    late = (
      volumes['late']
      | 'LateVolumeRows' >> beam.Map(lambda a: to_late_event(source, a, a.value.interaction_id)),
      patterns['late']
      | 'LatePatternRows'
      >> beam.Map(
        lambda a: to_late_event(source, a, a.value.interaction_id, BEHIND_PROCESSED_INTERACTIONS)
      ),
    ) | 'Late' >> beam.Flatten()
    return {
      'interaction_volumes': volumes['rows'],
      'pattern_alerts': alerts,
      'late_events': late,
      'dead_letters': parsed.dead_letters,
    }
