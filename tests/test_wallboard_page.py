"""The wallboard page in headless Chromium on hostile and big-center data:
bidirectional overrides and other invisible characters in every string of
the data show as escapes and are isolated, a queue's channels are summed on
its tile and split in its drill-down, and a page filtered by a queue group
shows the worst tiles and a tile for the rest."""

import json
import time

from selenium.webdriver.common.by import By

from tests.support.wallboard_helpers import (
  assert_no_console_errors,
  chromium,
  current_window_start,
  screenshot,
  tile,
  tiles,
  wait_for,
  wallboard,
  window_row,
)
from transforms.records import DeadLetter, InteractionVolume, PatternAlert
from transforms.schema import (
  ABANDON_METRICS,
  DEAD_LETTERS,
  INTERACTION_VOLUMES,
  PATTERN_ALERTS,
  TABLES,
)
from transforms.sqlite_sink import SqliteSink, SqliteWriter

RLO = '\u202e'
SPOOF = f'Q-{RLO}LIVE'  # reads "Q-EVIL" when the override is obeyed
SHOWN_SPOOF = 'Q-\\u202eLIVE'
ARABIC = 'Q-\u0645\u0631\u0643\u0632-7'  # right-to-left letters, no control
ISOLATE = 'CH-\u2067x\u2069'


def write_rows(path: str, start: int) -> None:
  SqliteSink(path).prepare(TABLES.values())
  writer = SqliteWriter(path)
  writer.open()
  try:
    writer.upsert(
      ABANDON_METRICS,
      [
        window_row('Q-EVIL', start, 10, 0, 10, 10.0)._replace(queue_name=f'Sales {RLO}UE'),
        window_row(SPOOF, start, 10, 5, 2, 10.0),  # 50 %: the worst
        window_row(ARABIC, start, 10, 2, 8, 10.0),  # 20 %
        window_row('Q-MIX', start, 16, 1, 13, 160.0),  # voice 1 of 16
        window_row('Q-MIX', start, 4, 3, 1, 8.0)._replace(channel='chat'),  # chat 3 of 4
      ],
    )
    writer.upsert(
      INTERACTION_VOLUMES, [InteractionVolume(ISOLATE, start, start + 300_000, 5, 0, 'ON_TIME')]
    )
    writer.upsert(
      PATTERN_ALERTS,
      [
        PatternAlert(
          f'cust-{RLO}1',
          'voice',
          start + 1000,
          3,
          'REPEATED_FAILURE_CALLBACK',
          'GOLD',
          f'EU{RLO}',
          start,
          'a,b,c,d',
        )
      ],
    )
    writer.upsert(
      DEAD_LETTERS,
      [DeadLetter('cc-call-logs', 'x:1', f'bad{RLO}json', 'd', '{', 1, int(time.time() * 1000))],
    )
  finally:
    writer.close()


def test_invisible_characters_show_as_escapes_and_data_is_isolated(tmp_path):
  db = str(tmp_path / 'hostile.db')
  write_rows(db, current_window_start(time.time()))
  with wallboard([f'--sqlite_path={db}', '--refresh_seconds=0.5']) as url, chromium() as driver:
    driver.get(url)
    wait_for(driver, lambda d: len(tiles(d)) == 4, 30, 'the tiles did not show')
    shown = tiles(driver)
    assert shown[SHOWN_SPOOF] == '50.0 %' and shown['Q-EVIL'] == '0.0 %'
    assert shown[ARABIC] == '20.0 %'
    # No override reaches the page's text; every data string is isolated.
    assert RLO not in driver.execute_script('return document.body.innerText')
    for selector in (
      '#tiles .tile-queue',
      '#alerts td.customer',
      '#chart-volume .u-legend .u-label',
      '#dead tbody td',
    ):
      nodes = driver.find_elements(By.CSS_SELECTOR, selector)
      assert nodes, selector
      assert {n.value_of_css_property('unicode-bidi') for n in nodes} == {'isolate'}, selector
    assert driver.find_element(By.CSS_SELECTOR, '#alerts td.customer').text == 'cust-\\u202e1'
    legend = [n.text for n in driver.find_elements(By.CSS_SELECTOR, '#chart-volume .u-label')]
    assert 'CH-\\u2067x\\u2069' in legend
    assert 'bad\\u202ejson' in driver.find_element(By.ID, 'dead').text
    assert tile(driver, SPOOF).get_attribute('title') == SHOWN_SPOOF
    # A queue's name (the job's --queue_names) heads its tile, isolated too.
    name = tile(driver, 'Q-EVIL').find_element(By.CLASS_NAME, 'tile-name')
    assert name.text == 'Sales \\u202eUE'
    assert name.value_of_css_property('unicode-bidi') == 'isolate'
    assert tile(driver, SPOOF).find_elements(By.CLASS_NAME, 'tile-name') == []

    # Q-MIX: voice and chat summed on the tile (4 of 20), split below.
    assert shown['Q-MIX'] == '20.0 %'
    assert tile(driver, 'Q-MIX').find_element(By.CLASS_NAME, 'tile-channels').text == 'chat + voice'
    tile(driver, 'Q-MIX').click()
    wait_for(
      driver,
      lambda d: len(d.find_elements(By.CSS_SELECTOR, '#detail-windows tbody tr')) == 3,
      10,
      'the drill-down of Q-MIX did not show its channels',
    )
    rows = [
      [td.text for td in tr.find_elements(By.TAG_NAME, 'td')][1:5]
      for tr in driver.find_elements(By.CSS_SELECTOR, '#detail-windows tbody tr')
    ]
    assert rows == [
      ['all channels', '20', '4', '20.0 %'],
      ['voice', '16', '1', '6.3 %'],
      ['chat', '4', '3', '75.0 %'],
    ]
    driver.find_element(By.ID, 'detail-close').click()
    tile(driver, SPOOF).click()
    wait_for(
      driver,
      lambda d: d.find_element(By.ID, 'detail-queue').text == SHOWN_SPOOF,
      10,
      'the drill-down of the spoofing id did not show',
    )
    assert_no_console_errors(driver)
    screenshot(driver, 'wallboard-hostile.png')


def test_a_group_page_shows_its_worst_tiles_and_the_rest_in_one(tmp_path):
  db = str(tmp_path / 'group.db')
  write_rows(db, current_window_start(time.time()))
  groups = tmp_path / 'groups.json'
  groups.write_text(json.dumps({'floor 2': ['Q-EVIL', SPOOF, ARABIC]}))
  flags = [f'--sqlite_path={db}', f'--queue_groups={groups}']
  with wallboard(flags) as url, chromium() as driver:
    driver.get(url + '?group=floor+2&tiles=2')
    wait_for(driver, lambda d: len(tiles(d)) == 2, 30, 'the group page did not show')
    assert list(tiles(driver)) == [SHOWN_SPOOF, ARABIC]  # the worst first
    rest = driver.find_element(By.CSS_SELECTOR, '#tiles .tile-rest')
    assert rest.find_element(By.CLASS_NAME, 'tile-queue').text == '+ 1 more queues'
    assert rest.find_element(By.CLASS_NAME, 'rest-ok').text == '1'
    scope = driver.find_element(By.ID, 'tiles-scope').text
    assert scope == 'group floor 2 · 3 queues · the worst 2 first', scope
    assert_no_console_errors(driver)
