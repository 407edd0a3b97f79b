"""CxoneInteractionFlow: CXone Data Action records to interaction volumes and
callback-pattern alerts."""
from typing import FrozenSet

import apache_beam as beam

from transforms.callback_patterns import DetectCallbackPatterns
from transforms.data_actions import ParseDataActions
from transforms.dedupe import DedupeByKey
from transforms.parsing import DEFAULT_FIELD_RULES, FieldRules
from transforms.interaction_volumes import InteractionVolumes
from transforms.join_customers import JoinCustomers
from transforms.records import CustomerProfile, PatternAlert, PatternMatch
from transforms.windowing import to_late_event

BEHIND_PROCESSED_INTERACTIONS = 'behind_processed_interactions'


def to_pattern_alert(match: PatternMatch,
                     profile: CustomerProfile) -> PatternAlert:
  return PatternAlert(
      customer_id=match.customer_id,
      channel=match.channel,
      timestamp=match.timestamp,
      failure_count=match.failure_count,
      alert_type=match.alert_type,
      tier=profile.tier,
      region=profile.region,
      first_failure_timestamp=match.first_failure_timestamp,
      interaction_ids=match.interaction_ids)


class CxoneInteractionFlow(beam.PTransform):
  """Raw Data Action records to volumes, alerts, late events, dead letters.

  Input: PCollection[SourceRecord] from any source (file replay, Kafka).
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
  def __init__(
      self,
      source_name: str,
      volume_window_seconds: int,
      allowed_lateness_seconds: int,
      key_idle_ttl_seconds: int,
      dedupe_ttl_seconds: int,
      failure_statuses: FrozenSet[str],
      callback_statuses: FrozenSet[str],
      pattern_within_seconds: int,
      pattern_tick_seconds: int,
      profile_wait_seconds: int,
      customer_state_ttl_seconds: int,
      watermark_delay_seconds: int,
      field_rules: FieldRules = DEFAULT_FIELD_RULES):
    super().__init__()
    self._source_name = source_name
    self._field_rules = field_rules
    self._dedupe_ttl = dedupe_ttl_seconds
    self._volumes = InteractionVolumes(
        volume_window_seconds, allowed_lateness_seconds, key_idle_ttl_seconds,
        watermark_delay_seconds)
    self._patterns = DetectCallbackPatterns(
        failure_statuses, callback_statuses, pattern_within_seconds,
        watermark_delay_seconds, pattern_tick_seconds)
    self._join = JoinCustomers(
        to_pattern_alert, PatternMatch, profile_wait_seconds, customer_state_ttl_seconds,
        watermark_delay_seconds)

  def expand(self, records):
    source = self._source_name
    parsed = records | 'Parse' >> ParseDataActions(self._field_rules)
    interactions = parsed.interactions | 'Dedupe' >> DedupeByKey(
        lambda i: i.interaction_id, lambda i: i.timestamp, self._dedupe_ttl,
        'data_actions')
    volumes = interactions | 'Volumes' >> self._volumes
    patterns = interactions | 'Patterns' >> self._patterns
    alerts = ((patterns['matches'], parsed.customer_updates)
              | 'JoinCustomers' >> self._join)
    late = (
        volumes['late'] | 'LateVolumeRows' >> beam.Map(
            lambda a: to_late_event(source, a, a.value.interaction_id)),
        patterns['late'] | 'LatePatternRows' >> beam.Map(
            lambda a: to_late_event(
                source, a, a.value.interaction_id,
                BEHIND_PROCESSED_INTERACTIONS)),
    ) | 'Late' >> beam.Flatten()
    return {
        'interaction_volumes': volumes['rows'],
        'pattern_alerts': alerts,
        'late_events': late,
        'dead_letters': parsed.dead_letters,
    }
