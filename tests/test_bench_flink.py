"""The CPU accounting of the Flink benchmark (scripts/bench/flink.py): the cost per event it
reports next to the rates must count only the processing period and every process of a kind,
including the SDK workers the job starts after the first sample."""

from scripts.bench import flink
from scripts.bench.flink import TICK, CpuSampler, cpu_ms_per_1000


def _sampler(samples):
  cpu = CpuSampler()
  cpu.samples = [(t, {kind: dict(pids) for kind, pids in kinds.items()}) for t, kinds in samples]
  return cpu


def test_cpu_is_counted_until_the_processing_ended_and_for_processes_started_later():
  cpu = _sampler(
    [
      (100.0, {'taskmanager': {1: 10 * TICK}, 'python_workers': {}}),
      # the workers start with the job: counted from zero
      (110.0, {'taskmanager': {1: 14 * TICK}, 'python_workers': {7: 3 * TICK, 8: 2 * TICK}}),
      (120.0, {'taskmanager': {1: 20 * TICK}, 'python_workers': {7: 9 * TICK, 8: 8 * TICK}}),
      # after the processing ended (the last committed offset at 120 s): not counted
      (130.0, {'taskmanager': {1: 21 * TICK}, 'python_workers': {7: 9 * TICK, 8: 8 * TICK}}),
    ]
  )
  assert cpu.used_seconds(until=125.0) == {'taskmanager': 10.0, 'python_workers': 17.0}
  assert cpu.used_seconds() == {'taskmanager': 11.0, 'python_workers': 17.0}


def test_a_process_gone_before_the_last_sample_is_skipped_not_fatal():
  cpu = _sampler(
    [
      (0.0, {'taskmanager': {1: 0}, 'python_workers': {}}),
      (5.0, {'taskmanager': {1: 4 * TICK}, 'python_workers': {7: None}}),
    ]
  )
  assert cpu.used_seconds() == {'taskmanager': 4.0, 'python_workers': 0}


def test_cpu_per_thousand_events():
  # 27.5 s of CPU over 1,000,000 events: 27.5 ms per 1,000
  assert cpu_ms_per_1000(27.5, 1_000_000) == 27.5
  assert flink.cpu_ms_per_1000(1.0, 3) == 333333.3
