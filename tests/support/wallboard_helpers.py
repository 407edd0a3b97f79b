"""Helpers of the wallboard tests: result rows of the real record types, the
wallboard as a subprocess, headless Chromium, and the page checks that the
SQLite and Cassandra page tests share."""

import contextlib
import json
import os
import pathlib
import queue
import shutil
import subprocess
import sys
import threading
import time
from decimal import ROUND_HALF_UP, Decimal
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from transforms.abandon_rate import rounded_ratio
from transforms.records import (
  AbandonMetrics,
  AgentMetrics,
  AgentStatus,
  DeadLetter,
  InteractionVolume,
  LateEvent,
  MetricRevision,
  PatternAlert,
  QueueStatus,
  WaitingContacts,
  WindowContact,
)
from transforms.schema import (
  ABANDON_METRICS,
  DEAD_LETTERS,
  INTERACTION_VOLUMES,
  LATE_EVENTS,
  METRIC_REVISIONS,
  PATTERN_ALERTS,
  WINDOW_CONTACTS,
)
from transforms.sinks import RowWriter

REPO = pathlib.Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / 'output' / 'test-artifacts'
WINDOW_MS = 300_000
START_TIMEOUT_S = 90
# The bound: a row written to the store is on the page within 10 s.
LIVE_UPDATE_TIMEOUT_S = 10

# Queue ids that are HTML: they must show as these characters, run nothing.
HTML_QUEUE_IMG = '<img src=x onerror=alert(1)>'
HTML_QUEUE_SCRIPT = '"><script>window.__xss=1</script>'
HTML_CUSTOMER = '<img src=x onerror="window.__xss=2">'
HTML_CHANNEL = '<b>chat</b>'
HTML_RAW = '{"queue_id": "Q-1", "note": "<script>window.__xss=3</script>"}'
HTML_CONTACT = '<img src=x onerror=alert(1)>'
# The window drill-down's queue.
DRILL_QUEUE = 'Q-7'


def percent_text(fraction: float) -> str:
  """How the page writes a rate the job rounded to 4 places: one decimal,
  half up (0.0625 -> '6.3 %')."""
  value = (Decimal(repr(fraction)) * 100).quantize(Decimal('0.1'), ROUND_HALF_UP)
  return f'{value} %'


def window_row(
  queue_id: str,
  start_ms: int,
  total: int,
  abandoned: int,
  answered_within_sl: int,
  wait_seconds: float,
  pane: int = 0,
  size_ms: int = WINDOW_MS,
) -> AbandonMetrics:
  """One abandon_metrics row, rates derived like the job's."""
  return AbandonMetrics(
    queue_id,
    start_ms,
    start_ms + size_ms,
    total,
    abandoned,
    0,
    answered_within_sl,
    wait_seconds,
    rounded_ratio(abandoned, total),
    rounded_ratio(answered_within_sl, total),
    pane,
    'ON_TIME' if pane == 0 else 'LATE',
  )


def queue_status_row(
  queue_id: str,
  waiting: int,
  oldest_ms: Optional[int],
  as_of_ms: int,
  updated_at_ms: int,
  channel: str = 'voice',
  name: str = '',
) -> QueueStatus:
  """One queue_status row as the job writes it: the longest wait is the
  oldest contact's as of `as_of_ms`, 0 when nobody waits."""
  longest = 0.0 if oldest_ms is None else (as_of_ms - oldest_ms) / 1000
  return QueueStatus(queue_id, channel, waiting, oldest_ms, longest, as_of_ms, updated_at_ms, name)


def waiting_contacts_row(
  queue_id: str,
  contacts: Sequence[Tuple[str, int]],
  as_of_ms: int,
  updated_at_ms: int,
  channel: str = 'voice',
) -> WaitingContacts:
  """One waiting_contacts row of (contact id, since ms), listed oldest
  first as the job lists them."""
  listed = [{'contact_id': c, 'since': since} for c, since in sorted(contacts, key=lambda c: c[1])]
  return WaitingContacts(
    queue_id, channel, json.dumps(listed), len(contacts), as_of_ms, updated_at_ms
  )


def agent_status_row(
  queue_id: str,
  available: int,
  on_contact: int,
  after_contact_work: int,
  reasons: Dict[str, int],
  as_of_ms: int,
  updated_at_ms: int,
  channel: str = 'voice',
  name: str = '',
) -> AgentStatus:
  """One agent_status row as the job writes it: not ready = the agents of
  `reasons`, logged in = all four states."""
  not_ready = sum(reasons.values())
  return AgentStatus(
    queue_id,
    channel,
    available + on_contact + after_contact_work + not_ready,
    available,
    on_contact,
    after_contact_work,
    not_ready,
    json.dumps(reasons),
    as_of_ms,
    updated_at_ms,
    updated_at_ms * 1000,
    name,
  )


def agent_metrics_row(
  queue_id: str,
  start_ms: int,
  handled: int,
  talk: float,
  hold: float,
  acw: float,
  available: float,
  not_ready: float = 0.0,
  channel: str = 'voice',
) -> AgentMetrics:
  """One agent_metrics pane, AHT and occupancy derived like the job's."""
  busy = talk + hold + acw
  return AgentMetrics(
    queue_id,
    channel,
    start_ms,
    start_ms + WINDOW_MS,
    handled,
    talk,
    hold,
    acw,
    available,
    not_ready,
    busy / handled if handled else 0.0,
    busy / (busy + available) if busy + available else 0.0,
    0,
    'ON_TIME',
  )


def staffing_lines(driver) -> Dict[str, Tuple[str, ...]]:
  """Queue id -> (available, on contact, ACW, not ready) texts of every
  tile with a staffing line."""
  lines = {}
  for node in driver.find_elements(By.CSS_SELECTOR, '#tiles button.tile'):
    line = node.find_elements(By.CLASS_NAME, 'tile-agents')
    if line:
      lines[node.get_attribute('data-queue')] = tuple(
        figure.text for figure in line[0].find_elements(By.CLASS_NAME, 'agents-figure')
      )
  return lines


def no_agent_queues(driver) -> List[str]:
  """Queue ids of the tiles highlighted for contacts waiting without an
  available agent (class and visible marker both)."""
  return sorted(
    node.get_attribute('data-queue')
    for node in driver.find_elements(By.CSS_SELECTOR, '#tiles button.tile.no-agent')
    if any(m.is_displayed() for m in node.find_elements(By.CLASS_NAME, 'tile-no-agent'))
  )


def clock_seconds(text: str) -> int:
  """Seconds of a tile's longest wait as the page writes it: '4:05',
  '1:02:05'."""
  seconds = 0
  for part in text.split(':'):
    seconds = seconds * 60 + int(part)
  return seconds


def live_figures(driver) -> Dict[str, Tuple[str, str]]:
  """Queue id -> (waiting now, longest wait) texts of every tile with live
  figures."""
  figures = {}
  for node in driver.find_elements(By.CSS_SELECTOR, '#tiles button.tile'):
    live = node.find_elements(By.CLASS_NAME, 'tile-live')
    if live:
      figures[node.get_attribute('data-queue')] = (
        live[0].find_element(By.CLASS_NAME, 'tile-waiting').text,
        live[0].find_element(By.CLASS_NAME, 'tile-longest').text,
      )
  return figures


def current_window_start(now_s: float) -> int:
  """The start of the newest 5-minute window that has ended by `now_s`."""
  return (int(now_s * 1000) // WINDOW_MS - 1) * WINDOW_MS


def write_page_rows(writer: RowWriter, start_ms: int) -> Dict[str, str]:
  """The rows of the page scenario; returns queue id -> the rate text its
  tile must show."""
  rows = [
    # Q-1's older window (50 %) must not be its tile.
    window_row('Q-1', start_ms - WINDOW_MS, 10, 5, 4, 100.0),
    window_row('Q-1', start_ms, 16, 1, 13, 160.0),  # 6.25 % -> 6.3 %
    window_row('Q-2', start_ms, 2000, 149, 1500, 24000.0),  # 7.45 -> 7.5
    window_row(HTML_QUEUE_IMG, start_ms, 10, 1, 9, 50.0),  # 10.0 %
    window_row(HTML_QUEUE_SCRIPT, start_ms, 5, 1, 4, 50.0),  # 20.0 %
  ]
  writer.upsert(ABANDON_METRICS, rows)
  writer.upsert(
    INTERACTION_VOLUMES,
    [InteractionVolume(HTML_CHANNEL, start_ms, start_ms + WINDOW_MS, 42, 0, 'ON_TIME')],
  )
  writer.upsert(
    PATTERN_ALERTS,
    [
      PatternAlert(
        HTML_CUSTOMER,
        'voice',
        start_ms + 1_000,
        3,
        'REPEATED_FAILURE_CALLBACK',
        'GOLD',
        'EMEA',
        start_ms - 20_000,
        'i1,i2,i3,i4',
      )
    ],
  )
  writer.upsert(
    LATE_EVENTS,
    [
      LateEvent(
        'cc-call-logs',
        'late-1',
        'Q-1',
        start_ms - 2 * WINDOW_MS,
        start_ms - 2 * WINDOW_MS,
        start_ms - WINDOW_MS,
        start_ms,
        'after_window_expiry',
        HTML_RAW,
      )
    ],
  )
  writer.upsert(
    DEAD_LETTERS,
    [
      DeadLetter(
        'cc-call-logs',
        'calls.jsonl:7',
        'malformed_json',
        'Expecting value',
        '<script>window.__xss=4</script>',
        31,
        start_ms + WINDOW_MS,
      )
    ],
  )
  return {
    'Q-1': '6.3 %',
    'Q-2': '7.5 %',
    HTML_QUEUE_IMG: '10.0 %',
    HTML_QUEUE_SCRIPT: '20.0 %',
  }


@contextlib.contextmanager
def wallboard(args: Sequence[str], log: Optional[List[str]] = None) -> Iterator[str]:
  """`python -m pipelines.wallboard ARGS --port=0` as a subprocess; yields
  the page's URL and stops the server afterwards. Its log lines (stderr)
  are appended to `log` as they come."""
  process = subprocess.Popen(
    [sys.executable, '-m', 'pipelines.wallboard', '--port=0', *args],
    cwd=REPO,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
    env=dict(os.environ, PYTHONUNBUFFERED='1'),
  )
  lines: 'queue.Queue[str]' = queue.Queue()
  threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
  stderr: List[str] = [] if log is None else log
  threading.Thread(
    target=lambda: [stderr.append(line) for line in process.stderr], daemon=True
  ).start()
  try:
    url = None
    deadline = time.monotonic() + START_TIMEOUT_S
    while url is None and time.monotonic() < deadline:
      try:
        line = lines.get(timeout=0.5)
      except queue.Empty:
        assert process.poll() is None, (
          f'the wallboard exited ({process.returncode}):\n{"".join(stderr)[-3000:]}'
        )
        continue
      if line.startswith('Wallboard on '):
        url = line.split()[2]
    assert url, f'the wallboard did not start:\n{"".join(stderr)[-3000:]}'
    yield url
  finally:
    process.terminate()
    try:
      process.wait(timeout=30)
    except subprocess.TimeoutExpired:
      process.kill()
      process.wait()


@contextlib.contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
  """Headless Debian Chromium through its chromedriver, 1920x1080."""
  binary, driver_path = shutil.which('chromium'), shutil.which('chromedriver')
  assert binary and driver_path, (
    'the page tests need chromium and chromedriver on PATH: run '
    'scripts/stack/install_browser.sh (as root; scripts/test.sh does)'
  )
  options = webdriver.ChromeOptions()
  options.binary_location = binary
  for arg in (
    '--headless=new',
    '--disable-gpu',
    '--disable-dev-shm-usage',
    '--window-size=1920,1080',
    '--hide-scrollbars',
  ):
    options.add_argument(arg)
  if os.geteuid() == 0:
    options.add_argument('--no-sandbox')  # Chromium refuses root otherwise
  options.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
  driver = webdriver.Chrome(service=Service(driver_path), options=options)
  try:
    driver.execute_cdp_cmd(
      'Emulation.setDeviceMetricsOverride',
      {'width': 1920, 'height': 1080, 'deviceScaleFactor': 1, 'mobile': False},
    )
    yield driver
  finally:
    driver.quit()


def tiles(driver) -> Dict[str, str]:
  """Queue id -> abandon rate text of every tile on the page."""
  return {
    tile.find_element(By.CLASS_NAME, 'tile-queue').text: tile.find_element(
      By.CLASS_NAME, 'tile-rate'
    ).text
    for tile in driver.find_elements(By.CSS_SELECTOR, '#tiles button.tile')
  }


def tile(driver, queue_id: str):
  for node in driver.find_elements(By.CSS_SELECTOR, '#tiles button.tile'):
    if node.get_attribute('data-queue') == queue_id:
      return node
  raise AssertionError(f'no tile for {queue_id!r}')


def wait_for(driver, condition, timeout: float, message: str):
  """`condition(driver)` once truthy; fails with `message` after `timeout`
  seconds. Stale elements (the page re-renders) are retried."""
  return WebDriverWait(
    driver,
    timeout,
    poll_frequency=0.2,
    ignored_exceptions=(AssertionError, StaleElementReferenceException),
  ).until(condition, message)


def assert_nothing_executed(driver) -> None:
  """No alert() opened, no injected script or handler ran, and no HTML
  element came out of the data."""
  try:
    text = driver.switch_to.alert.text
    raise AssertionError(f'an alert opened: {text!r}')
  except NoAlertPresentException:
    pass
  assert driver.execute_script('return window.__xss') is None
  assert (
    driver.execute_script("return document.querySelectorAll('img, b, script:not([src])').length")
    == 0
  )


def assert_no_console_errors(driver) -> None:
  """Script errors and Content-Security-Policy violations are console
  errors."""
  errors = [e for e in driver.get_log('browser') if e['level'] == 'SEVERE']
  assert not errors, errors


def screenshot(driver, name: str) -> pathlib.Path:
  ARTIFACTS.mkdir(parents=True, exist_ok=True)
  path = ARTIFACTS / name
  assert driver.save_screenshot(str(path)), path
  return path


def check_page(
  driver, url: str, writer: RowWriter, start_ms: int, expected: Dict[str, str], artifact: str
) -> None:
  """The page scenario on rows of `write_page_rows`: every queue's tile and
  rate, data shown as text and nothing run, a row written afterwards on the
  page without a reload, the drill-down; screenshots ARTIFACT.png and
  ARTIFACT-detail.png."""
  driver.get(url)
  wait_for(driver, lambda d: tiles(d) == expected, 30, f'tiles {expected} not shown')
  assert_nothing_executed(driver)
  alert_customers = [td.text for td in driver.find_elements(By.CSS_SELECTOR, '#alerts td.customer')]
  assert alert_customers == [HTML_CUSTOMER]
  legend = [
    node.text for node in driver.find_elements(By.CSS_SELECTOR, '#chart-volume .u-legend .u-label')
  ]
  assert HTML_CHANNEL in legend, legend
  assert driver.find_elements(By.CSS_SELECTOR, '#banners .banner') == []

  # Live: a new queue and a late pane of Q-2, without reloading the page.
  driver.execute_script('window.__sameDocument = true')
  writer.upsert(
    ABANDON_METRICS,
    [
      window_row('Q-NEW', start_ms, 40, 2, 30, 400.0),  # 5.0 %
      window_row('Q-2', start_ms, 2010, 161, 1500, 24100.0, pane=1),  # 8.0 %
    ],
  )
  wait_for(
    driver,
    lambda d: (
      tiles(d) == {**expected, 'Q-NEW': '5.0 %', 'Q-2': '8.0 %'}
      and 'late update' in tile(d, 'Q-2').find_element(By.CLASS_NAME, 'tile-window').text
    ),
    LIVE_UPDATE_TIMEOUT_S,
    f'the written rows did not appear within {LIVE_UPDATE_TIMEOUT_S} s',
  )
  assert driver.execute_script('return window.__sameDocument') is True

  screenshot(driver, artifact + '.png')

  # Drill-down of Q-1: its two windows and its late event, raw as text.
  tile(driver, 'Q-1').click()
  wait_for(
    driver,
    lambda d: (
      len(d.find_elements(By.CSS_SELECTOR, '#detail-windows tbody tr')) == 2
      and d.find_element(By.CSS_SELECTOR, '#detail-late td.raw').text == HTML_RAW
    ),
    10,
    'the drill-down of Q-1 did not show',
  )
  assert driver.find_element(By.ID, 'detail-queue').text == 'Q-1'
  rates = [
    td.text for td in driver.find_elements(By.CSS_SELECTOR, '#detail-windows tbody td:nth-child(5)')
  ]
  assert rates == ['6.3 %', '50.0 %']
  driver.find_element(By.ID, 'detail-close').click()
  tile(driver, HTML_QUEUE_SCRIPT).click()
  wait_for(
    driver,
    lambda d: (
      d.find_element(By.ID, 'detail-queue').text == HTML_QUEUE_SCRIPT
      and d.find_elements(By.CSS_SELECTOR, '#detail-windows tbody tr td.num')
    ),
    10,
    'the drill-down of an HTML-looking queue id did not show',
  )
  assert_nothing_executed(driver)
  assert_no_console_errors(driver)
  screenshot(driver, artifact + '-detail.png')


# --- a window's drill-down: its contacts and revisions ----------------------


def window_contact_row(
  queue_id: str,
  start_ms: int,
  contact_id: str,
  outcome: str,
  wait_seconds: Optional[float],
  left_at_ms: int,
  pane: int = 0,
  timing: str = 'ON_TIME',
  channel: str = 'voice',
) -> WindowContact:
  """One window_contacts row: a contact that left the queue at
  `left_at_ms` (its event time), counted from pane `pane`."""
  return WindowContact(
    queue_id, channel, start_ms, contact_id, outcome, wait_seconds, left_at_ms, pane, timing
  )


def revision_row(
  queue_id: str,
  start_ms: int,
  pane: int,
  timing: str,
  previous: int,
  old: Tuple[int, int, int],
  new: Tuple[int, int, int],
  contact_ids: Sequence[str],
  revised_at_ms: int,
  channel: str = 'voice',
) -> MetricRevision:
  """One metric_revisions row from the (offered, abandoned, answered
  within SL) before and after, rates derived like the job's; every call
  not abandoned is answered."""

  def figures(counts):
    offered, abandoned, within = counts
    return (
      offered,
      abandoned,
      offered - abandoned,
      rounded_ratio(abandoned, offered),
      rounded_ratio(within, offered),
    )

  before, after = figures(old), figures(new)
  return MetricRevision(
    queue_id,
    channel,
    start_ms,
    start_ms + WINDOW_MS,
    pane,
    timing,
    previous,
    *(value for pair in zip(before, after) for value in pair),
    json.dumps(list(contact_ids)),
    revised_at_ms,
  )


def write_window_rows(writer: RowWriter, start_ms: int) -> None:
  """The drill-down scenario: DRILL_QUEUE's window before `start_ms`
  restated twice (a late pane, then a reprocessing run's) to 3 abandoned of
  10, its contacts and revisions; its window at `start_ms` on time, 1 of
  5, no revisions."""
  restated, current = start_ms - WINDOW_MS, start_ms
  writer.upsert(
    ABANDON_METRICS,
    [
      window_row(DRILL_QUEUE, restated, 10, 3, 6, 80.0, pane=2)._replace(pane_timing='RESTATED'),
      window_row(DRILL_QUEUE, current, 5, 1, 4, 40.0),
    ],
  )
  contacts = [
    # Abandoned, by the time they left the queue (not by id).
    window_contact_row(DRILL_QUEUE, restated, 'c-a1', 'ABANDONED', 12.0, restated + 10_000),
    window_contact_row(
      DRILL_QUEUE, restated, 'c-a3', 'ABANDONED', None, restated + 20_000, 1, 'LATE'
    ),
    window_contact_row(
      DRILL_QUEUE, restated, HTML_CONTACT, 'ABANDONED', 45.5, restated + 30_000, 2, 'RESTATED'
    ),
    *(
      window_contact_row(
        DRILL_QUEUE, restated, f'c-n{i}', 'ANSWERED', 5.0 * i, restated + 40_000 + i * 1_000
      )
      for i in range(1, 8)
    ),
    window_contact_row(DRILL_QUEUE, current, 'c-b1', 'ABANDONED', 30.0, current + 5_000),
    *(
      window_contact_row(
        DRILL_QUEUE, current, f'c-m{i}', 'ANSWERED', 3.0, current + 6_000 + i * 1_000
      )
      for i in range(1, 5)
    ),
  ]
  writer.upsert(WINDOW_CONTACTS, contacts)
  writer.upsert(
    METRIC_REVISIONS,
    [
      revision_row(
        DRILL_QUEUE, restated, 1, 'LATE', 0, (8, 1, 6), (9, 2, 6), ['c-a3'], current + 60_000
      ),
      revision_row(
        DRILL_QUEUE,
        restated,
        2,
        'RESTATED',
        1,
        (9, 2, 6),
        (10, 3, 6),
        [HTML_CONTACT],
        current + 120_000,
      ),
    ],
  )


def cells(driver, selector: str) -> List[List[str]]:
  """The texts of the cells of each row `selector` finds."""
  return [
    [td.text for td in tr.find_elements(By.TAG_NAME, 'td')]
    for tr in driver.find_elements(By.CSS_SELECTOR, selector)
  ]


def check_window_drill_down(driver, url: str, artifact: str) -> None:
  """The drill-down scenario on rows of `write_window_rows`: the restated
  window marked, its abandoned contacts with their waits, all its contacts
  on demand, its revisions, the HTML contact id as text; screenshot
  ARTIFACT.png."""
  driver.get(url)
  wait_for(driver, lambda d: tile(d, DRILL_QUEUE), 30, f'no tile of {DRILL_QUEUE}')
  tile(driver, DRILL_QUEUE).click()
  windows = '#detail-windows tbody tr.window-link'
  wait_for(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, windows)) == 2, 10, 'no windows')
  current, restated = driver.find_elements(By.CSS_SELECTOR, windows)
  # Newest first: the window on time is not marked, the restated one is.
  assert current.find_element(By.CSS_SELECTOR, 'td.pane').text == 'on time'
  assert not current.find_element(By.CLASS_NAME, 'restated-mark').is_displayed()
  mark = restated.find_element(By.CLASS_NAME, 'restated-mark')
  assert mark.is_displayed() and mark.text == 'restated'

  restated.click()
  contacts = '#window-contacts tbody tr.window-contact'
  wait_for(
    driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, contacts)) == 3, 10, 'no contacts'
  )
  # contact, outcome, left the queue (a time), wait, counted in.
  listed = cells(driver, contacts)
  assert [(row[0], row[1], row[3], row[4]) for row in listed] == [
    ('c-a1', 'ABANDONED', '12 s', 'on time'),
    ('c-a3', 'ABANDONED', '–', 'late update'),
    (HTML_CONTACT, 'ABANDONED', '46 s', 'restated #2'),
  ]
  assert driver.find_element(By.ID, 'window-contacts-title').text == 'Abandoned contacts'
  assert 'restated' in driver.find_element(By.ID, 'window-detail-restated').text
  revisions = cells(driver, '#window-revisions tbody tr.revision')
  # pane, offered, abandoned, abandon rate, service level, contacts added.
  assert [row[1:] for row in revisions] == [
    ['late update', '8 → 9', '1 → 2', '12.5 % → 22.2 %', '75.0 % → 66.7 %', 'c-a3'],
    ['restated #2', '9 → 10', '2 → 3', '22.2 % → 30.0 %', '66.7 % → 60.0 %', HTML_CONTACT],
  ]

  driver.find_element(By.ID, 'window-contacts-toggle').click()
  wait_for(
    driver,
    lambda d: len(d.find_elements(By.CSS_SELECTOR, contacts)) == 10,
    10,
    '"show all contacts" did not list all 10',
  )
  listed = cells(driver, contacts)
  assert [row[0] for row in listed] == [
    'c-a1',
    'c-a3',
    HTML_CONTACT,
    *(f'c-n{i}' for i in range(1, 8)),
  ]
  assert [row[1] for row in listed].count('ANSWERED') == 7
  assert listed[3][3] == '5 s'
  assert driver.find_element(By.ID, 'window-contacts-title').text == 'Contacts'
  assert_nothing_executed(driver)
  screenshot(driver, artifact + '.png')

  # The window on time: its abandoned contact, no revisions.
  current = driver.find_elements(By.CSS_SELECTOR, windows)[0]
  current.click()
  wait_for(
    driver,
    lambda d: [row[0] for row in cells(d, contacts)] == ['c-b1'],
    10,
    'the window on time did not list its abandoned contact',
  )
  assert cells(driver, '#window-revisions tbody tr.revision') == []
  assert 'No revisions' in driver.find_element(By.ID, 'window-revisions').text
  assert_nothing_executed(driver)
  assert_no_console_errors(driver)
