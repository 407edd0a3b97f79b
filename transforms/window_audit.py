"""The audit rows of abandon_metrics windows: the contacts behind a window
(`window_contacts`) and each change to its published figures
(`metric_revisions`), built the same way by the live job
(transforms/call_flow.py) and by a reprocessing run (pipelines/reprocess.py).
"""

import json
from typing import Iterable, Mapping, Optional

from apache_beam.utils.timestamp import Timestamp

from transforms.records import AbandonMetrics, MetricRevision, OfferedCall, WindowContact
from transforms.windowing import CountedElement


def window_contact(
  call: OfferedCall,
  window_start: int,
  pane_index: int,
  pane_timing: str,
  queue_name: str,
) -> WindowContact:
  """The window_contacts row of a call counted in the window starting at
  `window_start`, first in pane `pane_index`, of a queue named `queue_name`."""
  return WindowContact(
    queue_id=call.queue_id,
    channel=call.channel,
    window_start=window_start,
    contact_id=call.call_id,
    outcome=call.outcome,
    wait_seconds=call.wait_seconds,
    event_timestamp=call.timestamp,
    pane_index=pane_index,
    pane_timing=pane_timing,
    queue_name=queue_name,
  )


def counted_contact(
  counted: CountedElement, queue_names: Optional[Mapping[str, str]] = None
) -> WindowContact:
  """The window_contacts row of a call the windowed step accepted."""
  call: OfferedCall = counted.value
  return window_contact(
    call,
    counted.window_start,
    counted.pane_index,
    counted.timing,
    (queue_names or {}).get(call.queue_id, call.queue_id),
  )


def metric_revision(
  old: Optional[AbandonMetrics],
  new: AbandonMetrics,
  contact_ids: Iterable[str],
  revised_at: Optional[int] = None,
) -> MetricRevision:
  """The change from a window's row `old` (None: it had none) to `new`,
  made by adding `contact_ids`; `revised_at` defaults to now (epoch ms)."""
  if revised_at is None:
    revised_at = Timestamp.now().micros // 1000
  return MetricRevision(
    queue_id=new.queue_id,
    channel=new.channel,
    window_start=new.window_start,
    window_end=new.window_end,
    pane_index=new.pane_index,
    pane_timing=new.pane_timing,
    previous_pane_index=-1 if old is None else old.pane_index,
    old_total_calls=0 if old is None else old.total_calls,
    new_total_calls=new.total_calls,
    old_abandoned_calls=0 if old is None else old.abandoned_calls,
    new_abandoned_calls=new.abandoned_calls,
    old_answered_calls=0 if old is None else old.answered_calls,
    new_answered_calls=new.answered_calls,
    old_abandon_rate=0.0 if old is None else old.abandon_rate,
    new_abandon_rate=new.abandon_rate,
    old_service_level=0.0 if old is None else old.service_level,
    new_service_level=new.service_level,
    contact_ids=json.dumps(sorted(contact_ids)),
    revised_at=revised_at,
    queue_name=new.queue_name,
  )
