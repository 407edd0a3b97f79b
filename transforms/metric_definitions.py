"""The vendors' definitions of abandon rate and service level, by name
(`--abandon_rate_definition`, `--service_level_definition`).

Each definition is a function from a window's counts to (numerator,
denominator); the rate is their quotient rounded half-up to 4 places, 0
when the denominator is 0 (transforms/abandon_rate.py). The counts are the
row's own columns (transforms/records.py AbandonMetrics), so any rate can
be recomputed from a stored row:

  offered                total_calls (every call offered to the queue)
  abandoned              abandoned_calls
  short_abandoned        short_abandoned_calls: abandoned with a known wait
                         under --short_abandon_threshold_seconds
  answered_within        answered_within_sl: answered with a known wait
                         <= --service_level_seconds
  abandoned_within       abandoned_within_sl: abandoned with a known wait
                         <= --service_level_seconds

A call whose wait is unknown (a Genesys acd.end without its acd.start,
counted in `wait_unknown_calls`) is offered and answered or abandoned like
any other, but never short and never within the target: no definition can
credit a wait nobody measured.
"""

from typing import Callable, Dict, NamedTuple, Tuple


class Counts(NamedTuple):
  """A window's counts, as the definitions read them."""

  offered: int
  abandoned: int
  short_abandoned: int
  answered_within: int
  abandoned_within: int


Ratio = Tuple[int, int]


def abandoned_over_offered(c: Counts) -> Ratio:
  """abandoned / offered, short abandons included: Genesys Cloud's
  "Abandon %" (its default), Amazon Connect's "Contacts abandoned" over
  "Contacts queued", the seed's rate."""
  return c.abandoned, c.offered


def exclude_short_abandons_abandon_rate(c: Counts) -> Ratio:
  """(abandoned - short abandoned) / (offered - short abandoned): Talkdesk
  with short abandons excluded, Cisco UCCE (calls abandoned before the
  abandon wait time are neither offered nor abandoned)."""
  return c.abandoned - c.short_abandoned, c.offered - c.short_abandoned


def answered_within_over_offered(c: Counts) -> Ratio:
  """answered within target / offered: Genesys Cloud's "Service Level %"
  with abandons and flow-outs counted in the denominator, the seed's
  rate."""
  return c.answered_within, c.offered


def abandons_ignored(c: Counts) -> Ratio:
  """answered within target / (offered - abandoned within target): Cisco
  UCCE "abandoned calls ignored", SLCalls / (SLOffered - SLAband)."""
  return c.answered_within, c.offered - c.abandoned_within


def abandons_negative(c: Counts) -> Ratio:
  """answered within target / offered: Cisco UCCE "abandoned calls
  negatively impact", SLCalls / SLOffered. The same ratio as
  answered_within_over_offered, under Cisco's name."""
  return answered_within_over_offered(c)


def abandons_positive(c: Counts) -> Ratio:
  """(answered within target + abandoned within target) / offered: Cisco
  UCCE "abandoned calls positively impact", (SLCalls + SLAband) /
  SLOffered; also how Amazon Connect's "Service level X" reads (contacts
  removed from the queue within X, answered or abandoned)."""
  return c.answered_within + c.abandoned_within, c.offered


def exclude_short_abandons_service_level(c: Counts) -> Ratio:
  """answered within target / (offered - short abandoned): Talkdesk (short
  abandons "do not impact Service Level"), Genesys Cloud with short
  abandons excluded."""
  return c.answered_within, c.offered - c.short_abandoned


Definition = Callable[[Counts], Ratio]

ABANDON_RATE_DEFINITIONS: Dict[str, Definition] = {
  'abandoned_over_offered': abandoned_over_offered,
  'exclude_short_abandons': exclude_short_abandons_abandon_rate,
}
SERVICE_LEVEL_DEFINITIONS: Dict[str, Definition] = {
  'answered_within_over_offered': answered_within_over_offered,
  'abandons_ignored': abandons_ignored,
  'abandons_negative': abandons_negative,
  'abandons_positive': abandons_positive,
  'exclude_short_abandons': exclude_short_abandons_service_level,
}
DEFAULT_ABANDON_RATE = 'abandoned_over_offered'
DEFAULT_SERVICE_LEVEL = 'answered_within_over_offered'


def definition(kind: Dict[str, Definition], name: str) -> Definition:
  """`kind[name]`; raises ValueError naming the known definitions."""
  if name not in kind:
    raise ValueError(f'unknown definition {name!r}; known: {", ".join(kind)}')
  return kind[name]
