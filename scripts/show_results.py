"""Prints what the main job wrote to its SQLite database: a quick look for
people, not an API.

    python scripts/show_results.py output/contact_center.db
"""

import argparse
import datetime
import sqlite3


def _utc(ms: int) -> str:
  return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc).strftime(
    '%Y-%m-%d %H:%M:%S'
  )


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('db', help='SQLite file written by the main job')
  parser.add_argument('--limit', type=int, default=12)
  args = parser.parse_args()
  conn = sqlite3.connect(args.db)
  print('abandon_metrics (latest windows first):')
  print(
    f'  {"queue":<8} {"channel":<8} {"window (UTC)":<20} {"calls":>6} {"aband.":>6} '
    f'{"rate":>7} {"SL":>7} {"pane":>8}'
  )
  for q, channel, start, total, abandoned, rate, sl, pane, timing in conn.execute(
    'SELECT queue_id, channel, window_start, total_calls, abandoned_calls, '
    'abandon_rate, service_level, pane_index, pane_timing '
    'FROM abandon_metrics ORDER BY window_start DESC, queue_id, channel LIMIT ?',
    (args.limit,),
  ):
    print(
      f'  {q:<8} {channel:<8} {_utc(start):<20} {total:>6} {abandoned:>6} '
      f'{rate:>7.4f} {sl:>7.4f} {timing:>5}#{pane}'
    )
  print('pattern_alerts (three failures then a callback within 30 s):')
  for customer, channel, ts, tier, region in conn.execute(
    'SELECT customer_id, channel, timestamp, tier, region '
    'FROM pattern_alerts ORDER BY timestamp LIMIT ?',
    (args.limit,),
  ):
    print(f'  {_utc(ts)} {customer:<32} {channel:<6} {tier:<9} {region}')
  for table, query in [
    ('abandon_metrics rows', 'SELECT COUNT(*) FROM abandon_metrics'),
    ('interaction_volumes rows', 'SELECT COUNT(*) FROM interaction_volumes'),
    ('interactions counted', 'SELECT COALESCE(SUM(volume), 0) FROM interaction_volumes'),
    ('pattern_alerts', 'SELECT COUNT(*) FROM pattern_alerts'),
    ('late_events', 'SELECT COUNT(*) FROM late_events'),
    ('dead_letters', 'SELECT COUNT(*) FROM dead_letters'),
  ]:
    print(f'{table}: {conn.execute(query).fetchone()[0]}')
  for reason, count in conn.execute(
    'SELECT reason, COUNT(*) FROM dead_letters GROUP BY reason ORDER BY 2 DESC'
  ):
    print(f'  dead letter {reason}: {count}')


if __name__ == '__main__':
  main()
