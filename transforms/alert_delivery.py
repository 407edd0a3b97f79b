"""DeliverNotifications: each alert notification sent to its receivers, with
retries, and the outcome written back.

In: PCollection[Tuple[Alert, AlertNotification]], the pairs alert
evaluation hands over (the notification's `receivers` is a JSON list of
receiver names of the rule file).
Out (dict of PCollections, each element keeping its input's timestamp and
window):
  `alerts`: the Alert row with `delivery_status` 'delivered' when every
    receiver took the notification, 'failed' when any did not (a list that
    is not JSON of names included), '' when the list is empty (nothing was
    sent), and `revision` + 1 (the delivery update of an evaluation row).
  `alert_deliveries`: an AlertDelivery per (notification, receiver named):
    status, attempts made, the receiver's last answer.
  `dead_letters`: a DeadLetter per failed AlertDelivery, and one for a
    receivers list that is not JSON of names: source `alert_delivery`,
    origin `alert_deliveries:["<notification id>","<receiver>"]`, reason
    `attempts_exhausted` (every attempt answered something worth a retry),
    `not_retryable` (an answer not worth one: a 4xx, a refused login, a
    missing variable or a malformed URL, said in the detail), or
    `unknown_receiver` / `bad_receivers`; detail: the receiver's kind, name,
    attempts and last answer (clients/alert_receivers.py: never a secret);
    raw: the webhook body of the notification.

Why no processing-time timers: the local runner fires none outside
TestStream, and a bounded input must finish on every runner. Instead each
bundle's deliveries run concurrently on a pool of `concurrency` threads,
retries waiting in their thread, in the stage of the rule evaluation that
made them (downstream of every metric, so a slow receiver delays alerts,
not figures). No Reshuffle in front: a shuffle in the global window drops
what evaluation emits as the input ends (its end-of-input timers fire at
the final watermark); the job's end-to-end test (tests/test_alerts_e2e.py)
lost the last notifications that way. A bundle's outputs are emitted
when every delivery in it has an outcome, so a job restarted from a checkpoint re-sends only the
notifications that had none, with the same idempotency key, which
receivers dedupe by.

Retries: after a retryable answer, attempt n+1 follows a wait drawn
uniformly from [0, min(backoff_cap, backoff_base * 2^(n-1))] ("full
jitter"), up to `attempts` attempts. Each attempt is bounded by
`attempt_timeout` (clients/alert_receivers.py). So one delivery to a
receiver that is down, black-holed or hangs takes at most
`worst_case_delivery(...)`: attempts x attempt_timeout plus the capped
backoffs (defaults 5 x 10 s + 1 + 2 + 4 + 8 s = 65 s), and a bundle of N
such deliveries about ceil(N / concurrency) times that; while it lasts the
stage's watermark, and on Flink its checkpoint, wait for the bundle.

Metrics (namespace `alert_delivery`): `deliveries_ok_<kind>`,
`deliveries_failed_<kind>` (kind webhook, slack, email, or unknown),
`attempts`, `retries`, `dead_letters` and `dead_letter_<reason>`,
`notifications_without_receivers`. Counted when the bundle finishes, on
the DoFn's thread: Beam's counters belong to the thread that runs the
bundle, not to the pool's.
"""

import concurrent.futures
import json
import os
import random
import time
from typing import Callable, Dict, Iterable, List, Mapping, NamedTuple, Tuple, Union

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils.timestamp import Duration, Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from clients.alert_receivers import Answer, send, webhook_body
from options.alert_config import ReceiverConfig
from options.config import checked_millis, millis
from transforms.records import Alert, AlertDelivery, AlertNotification, DeadLetter

ALERTS = 'alerts'
ALERT_DELIVERIES = 'alert_deliveries'
DEAD_LETTERS = 'dead_letters'
METRICS_NAMESPACE = 'alert_delivery'
DELIVERED = 'delivered'
FAILED = 'failed'
DEAD_LETTER_SOURCE = 'alert_delivery'
ATTEMPTS_EXHAUSTED = 'attempts_exhausted'
NOT_RETRYABLE = 'not_retryable'
UNKNOWN_RECEIVER = 'unknown_receiver'
BAD_RECEIVERS = 'bad_receivers'
_UNKNOWN_KIND = 'unknown'


def _process_environment() -> Mapping[str, str]:
  return os.environ


def backoff_bound_ms(retry: int, backoff_base_ms: int, backoff_cap_ms: int) -> int:
  """The longest wait before retry number `retry` (1: the second attempt):
  backoff_base * 2^(retry-1), at most backoff_cap."""
  return min(backoff_cap_ms, backoff_base_ms << min(retry - 1, 62))


def worst_case_delivery(
  attempts: int, attempt_timeout: Duration, backoff_base: Duration, backoff_cap: Duration
) -> Duration:
  """The longest one delivery can take: every attempt running to its
  timeout and every wait to its bound."""
  waits_ms = sum(
    backoff_bound_ms(retry, millis(backoff_base), millis(backoff_cap))
    for retry in range(1, attempts)
  )
  return Duration(micros=(attempts * millis(attempt_timeout) + waits_ms) * 1000)


class _Settings(NamedTuple):
  attempts: int
  attempt_timeout_ms: int
  backoff_base_ms: int
  backoff_cap_ms: int


class _Outcome(NamedTuple):
  """One delivery's end: the last answer, attempts made and the
  processing time (ms) it ended."""

  answer: Answer
  attempts: int
  ended_ms: int


def _deliver(
  receiver: ReceiverConfig,
  notification: AlertNotification,
  settings: _Settings,
  environ: Callable[[], Mapping[str, str]],
  clock: Callable[[], Timestamp],
) -> _Outcome:
  """Attempts until an answer is ok or not retryable, or attempts run out;
  runs on a pool thread and never raises (send never does)."""
  attempt = 0
  while True:
    attempt += 1
    # Read at each attempt: a rotated secret or URL is used from then on.
    answer = send(receiver, notification, environ(), settings.attempt_timeout_ms / 1000)
    if answer.ok or not answer.retryable or attempt >= settings.attempts:
      return _Outcome(answer, attempt, clock().micros // 1000)
    bound_ms = backoff_bound_ms(attempt, settings.backoff_base_ms, settings.backoff_cap_ms)
    time.sleep(random.uniform(0, bound_ms) / 1000)


def _receiver_names(notification: AlertNotification) -> List[str]:
  """The notification's receivers, each once, in order; ValueError unless
  a JSON list of names."""
  try:
    names = json.loads(notification.receivers)
  except TypeError as error:
    raise ValueError('receivers is not text') from error
  if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
    raise ValueError('receivers is not a JSON list of names')
  # A name listed twice is one delivery: AlertDelivery's key is the pair.
  return list(dict.fromkeys(names))


class _Pending(NamedTuple):
  """A notification of the open bundle: per receiver named, its kind and
  the future of its outcome (or the outcome, when nothing was sent)."""

  alert: Alert
  notification: AlertNotification
  deliveries: Tuple[Tuple[str, str, Union[concurrent.futures.Future, _Outcome]], ...]
  bad_receivers: bool
  timestamp: Timestamp
  window: object


class _DeliverFn(beam.DoFn):
  def __init__(
    self,
    receivers: Dict[str, ReceiverConfig],
    settings: _Settings,
    concurrency: int,
    environ: Callable[[], Mapping[str, str]],
    clock: Callable[[], Timestamp],
  ):
    self._receivers = receivers
    self._settings = settings
    self._concurrency = concurrency
    self._environ = environ
    self._clock = clock
    self._pool = None
    self._pending: List[_Pending] = []

  def setup(self):
    self._pool = concurrent.futures.ThreadPoolExecutor(
      self._concurrency, thread_name_prefix='alert-delivery'
    )

  def teardown(self):
    if self._pool is not None:
      self._pool.shutdown(wait=False, cancel_futures=True)

  def start_bundle(self):
    self._pending = []

  def process(
    self,
    pair: Tuple[Alert, AlertNotification],
    timestamp=beam.DoFn.TimestampParam,
    window=beam.DoFn.WindowParam,
  ):
    alert, notification = pair
    try:
      names = _receiver_names(notification)
    except ValueError:
      self._pending.append(_Pending(alert, notification, (), True, timestamp, window))
      return
    deliveries = []
    for name in names:
      receiver = self._receivers.get(name)
      if receiver is None:
        answer = Answer(False, False, f'no receiver named {name!r} in the rule file')
        deliveries.append((name, _UNKNOWN_KIND, _Outcome(answer, 0, self._now_ms())))
        continue
      future = self._pool.submit(
        _deliver, receiver, notification, self._settings, self._environ, self._clock
      )
      deliveries.append((name, receiver.kind, future))
    self._pending.append(_Pending(alert, notification, tuple(deliveries), False, timestamp, window))

  def finish_bundle(self):
    pending, self._pending = self._pending, []
    for item in pending:
      yield from self._outputs(item)

  def _now_ms(self) -> int:
    return self._clock().micros // 1000

  def _outputs(self, item: _Pending) -> Iterable:
    notification = item.notification

    def windowed(value):
      return WindowedValue(value, item.timestamp, (item.window,))

    if item.bad_receivers:
      letter = self._dead_letter(
        notification, '', BAD_RECEIVERS, 'receivers is not a JSON list of names'
      )
      yield beam.pvalue.TaggedOutput(DEAD_LETTERS, windowed(letter))
      status = FAILED
    elif not item.deliveries:
      Metrics.counter(METRICS_NAMESPACE, 'notifications_without_receivers').inc()
      status = ''
    else:
      status = DELIVERED
    for name, kind, result in item.deliveries:
      outcome = result if isinstance(result, _Outcome) else _outcome_of(result, self._now_ms())
      answer = outcome.answer
      Metrics.counter(METRICS_NAMESPACE, 'attempts').inc(outcome.attempts)
      Metrics.counter(METRICS_NAMESPACE, 'retries').inc(max(outcome.attempts - 1, 0))
      Metrics.counter(
        METRICS_NAMESPACE, f'deliveries_{"ok" if answer.ok else "failed"}_{kind}'
      ).inc()
      yield beam.pvalue.TaggedOutput(
        ALERT_DELIVERIES,
        windowed(
          AlertDelivery(
            notification_id=notification.notification_id,
            receiver=name,
            rule=notification.rule,
            queue_id=notification.queue_id,
            channel=notification.channel,
            kind=notification.kind,
            status=DELIVERED if answer.ok else FAILED,
            attempts=outcome.attempts,
            answer=answer.text,
            delivered_at=outcome.ended_ms,
          )
        ),
      )
      if answer.ok:
        continue
      status = FAILED
      if kind == _UNKNOWN_KIND:
        reason = UNKNOWN_RECEIVER
      else:
        reason = ATTEMPTS_EXHAUSTED if answer.retryable else NOT_RETRYABLE
      detail = f'{kind} receiver {name!r}, {outcome.attempts} attempt(s): {answer.text}'
      letter = self._dead_letter(notification, name, reason, detail)
      yield beam.pvalue.TaggedOutput(DEAD_LETTERS, windowed(letter))
    yield windowed(item.alert._replace(delivery_status=status, revision=item.alert.revision + 1))

  def _dead_letter(
    self, notification: AlertNotification, receiver: str, reason: str, detail: str
  ) -> DeadLetter:
    Metrics.counter(METRICS_NAMESPACE, 'dead_letters').inc()
    Metrics.counter(METRICS_NAMESPACE, f'dead_letter_{reason}').inc()
    raw = webhook_body(notification)
    return DeadLetter(
      source=DEAD_LETTER_SOURCE,
      origin=f'{ALERT_DELIVERIES}:{json.dumps([notification.notification_id, receiver])}',
      reason=reason,
      detail=detail[:500],
      raw=raw.decode('utf-8'),
      raw_size=len(raw),
      received_at=self._now_ms(),
    )


def _outcome_of(future: concurrent.futures.Future, now_ms: int) -> _Outcome:
  try:
    return future.result()
  except Exception as error:  # pylint: disable=broad-except
    # _deliver does not raise; this is a bug's last line, without its
    # message (it may quote a secret).
    return _Outcome(Answer(False, False, f'{type(error).__name__}: delivery failed'), 0, now_ms)


class DeliverNotifications(beam.PTransform):
  """Sends each notification to its receivers (see the module docstring for
  the outputs, retries and the worst case).

  `receivers`: the rule file's receivers, by name or as a sequence (their
  names must be distinct). `attempts`: at most this many per receiver
  (>= 1). `attempt_timeout`: bound of one attempt. `backoff_base`,
  `backoff_cap`: the wait before retry n is uniform in [0, min(cap, base *
  2^(n-1))]. `concurrency`: deliveries of a bundle in flight at once.
  `environ`: where secrets are read, at each attempt (the process
  environment; the variables never enter the job graph). `processing_clock`:
  the time of `delivered_at` and dead letters' `received_at`.
  """

  def __init__(
    self,
    receivers: Union[Mapping[str, ReceiverConfig], Iterable[ReceiverConfig]],
    *,
    attempts: int,
    attempt_timeout: Duration,
    backoff_base: Duration,
    backoff_cap: Duration = Duration(seconds=60),
    concurrency: int = 8,
    environ: Callable[[], Mapping[str, str]] = _process_environment,
    processing_clock: Callable[[], Timestamp] = Timestamp.now,
  ):
    super().__init__()
    if attempts < 1:
      raise ValueError(f'attempts must be >= 1, got {attempts}')
    if concurrency < 1:
      raise ValueError(f'concurrency must be >= 1, got {concurrency}')
    settings = _Settings(
      attempts=attempts,
      attempt_timeout_ms=checked_millis(attempt_timeout, 'attempt_timeout', zero_ok=False),
      backoff_base_ms=checked_millis(backoff_base, 'backoff_base', zero_ok=True),
      backoff_cap_ms=checked_millis(backoff_cap, 'backoff_cap', zero_ok=True),
    )
    self._fn = _DeliverFn(_by_name(receivers), settings, concurrency, environ, processing_clock)

  def expand(self, pairs):
    outputs = pairs | 'Deliver' >> beam.ParDo(self._fn).with_output_types(
      Alert, **{ALERT_DELIVERIES: AlertDelivery, DEAD_LETTERS: DeadLetter}
    ).with_outputs(ALERT_DELIVERIES, DEAD_LETTERS, main=ALERTS)
    return {
      ALERTS: outputs[ALERTS],
      ALERT_DELIVERIES: outputs[ALERT_DELIVERIES],
      DEAD_LETTERS: outputs[DEAD_LETTERS],
    }


def _by_name(
  receivers: Union[Mapping[str, ReceiverConfig], Iterable[ReceiverConfig]],
) -> Dict[str, ReceiverConfig]:
  if isinstance(receivers, Mapping):
    by_name = dict(receivers)
    for name, receiver in by_name.items():
      if receiver.name != name:
        raise ValueError(f'receiver {receiver.name!r} is listed under the name {name!r}')
    return by_name
  by_name = {}
  for receiver in receivers:
    if receiver.name in by_name:
      raise ValueError(f'two receivers are named {receiver.name!r}')
    by_name[receiver.name] = receiver
  return by_name
