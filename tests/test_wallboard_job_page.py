"""The wallboard page in a real headless Chromium (Debian's chromium and
chromium-driver, scripts/stack/install_browser.sh), over SQLite stores: one the
test writes with the project's SQLite sink, one the main job writes from the
committed samples. Screenshots go to output/test-artifacts/."""

import sqlite3
import time

from selenium.webdriver.common.by import By

from pipelines import contact_center
from tests.support.wallboard_helpers import (
  REPO,
  assert_no_console_errors,
  check_page,
  chromium,
  current_window_start,
  percent_text,
  screenshot,
  tiles,
  wait_for,
  wallboard,
  write_page_rows,
)
from transforms.schema import TABLES
from transforms.sqlite_sink import SqliteSink, SqliteWriter


def test_page_shows_every_queue_live_and_data_as_text(tmp_path):
  db = str(tmp_path / 'results.db')
  SqliteSink(db).prepare(TABLES.values())
  writer = SqliteWriter(db)
  writer.open()
  try:
    start = current_window_start(time.time())
    expected = write_page_rows(writer, start)
    with wallboard([f'--sqlite_path={db}', '--refresh_seconds=0.5']) as url:
      with chromium() as driver:
        check_page(driver, url, writer, start, expected, 'wallboard-sqlite')
  finally:
    writer.close()


def test_page_on_the_sample_results_says_they_are_stale(tmp_path):
  db = str(tmp_path / 'sample.db')
  contact_center.run(
    [
      f'--call_events={REPO / "samples" / "call_events.jsonl"}',
      f'--data_actions={REPO / "samples" / "data_actions.jsonl"}',
      f'--sqlite_path={db}',
    ]
  )
  with sqlite3.connect(db) as conn:
    expected = {
      queue: percent_text(rate)
      for queue, rate in conn.execute(
        'SELECT queue_id, abandon_rate FROM abandon_metrics m WHERE '
        'window_start = (SELECT MAX(window_start) FROM abandon_metrics)'
      )
    }
    [late] = conn.execute(
      'SELECT COUNT(*) FROM late_events WHERE watermark >= '
      '(SELECT MAX(window_end) FROM abandon_metrics) - 3600000'
    ).fetchone()
    [dead] = conn.execute(
      'SELECT COUNT(*) FROM dead_letters WHERE received_at >= '
      "CAST(strftime('%s', 'now') AS INTEGER) * 1000 - 3600000"
    ).fetchone()
    [alerts] = conn.execute('SELECT COUNT(*) FROM pattern_alerts').fetchone()
  assert expected['Q-101'] == '6.3 %'
  with wallboard([f'--sqlite_path={db}']) as url, chromium() as driver:
    driver.get(url)
    wait_for(driver, lambda d: tiles(d) == expected, 30, f'tiles {expected} not shown')
    # Read in one go, again if the page re-renders meanwhile (it refreshes
    # itself: an element read half-way can go stale).
    banner, late_text, dead_text, alert_rows = wait_for(
      driver,
      lambda d: (
        d.find_element(By.CSS_SELECTOR, '#banners .banner').text,
        d.find_element(By.ID, 'late-total').text,
        d.find_element(By.ID, 'dead-total').text,
        len(d.find_elements(By.CSS_SELECTOR, '#alerts tbody tr')),
      ),
      10,
      'the page did not show its banner and totals',
    )
    assert banner.startswith('Stale data'), banner
    assert 'call metrics' in banner and 'interaction volumes' in banner
    assert (late_text, dead_text, alert_rows) == (str(late), str(dead), alerts)
    assert driver.find_elements(By.CSS_SELECTOR, '#chart-rate canvas')
    assert driver.find_elements(By.CSS_SELECTOR, '#chart-volume canvas')
    assert_no_console_errors(driver)
    screenshot(driver, 'wallboard-sample.png')
