// The SLA wallboard page: renders /api/snapshot (pushed through
// /api/events), /api/trends and /api/queue.
//
// Live figures (contacts waiting, longest wait) tick every second between
// updates: a wait is the row's wait as of its event time `as_of` (from
// `oldest_waiting_since`, both event time) plus the processing time since
// the job wrote the row (`updated_at`), on the server's clock as estimated
// from the `health.now_ms` of each update and the browser's monotonic
// clock since it arrived. The browser's own date is never compared with
// the data's times: a wall display's clock may be wrong.
//
// Staffing (when the store has agent rows): each tile's agents available /
// on contact / in after-contact work / not ready, a tile highlighted
// (class no-agent and a marker) when contacts wait and no agent is
// available (the server decides: `no_agent`), the staffing panel, the
// occupancy and AHT charts and the drill-down's agents per channel.
//
// Alerts (when the store has the alerting tables): the active alerts at
// the top, firing then pending (dimmer), as the server orders them; a
// click opens an alert's history of notifications and their deliveries,
// refreshed with every change like the queue drill-down. Each tile shows
// its queue's figures today (since local midnight) beside the window's.
//
// A window of the queue drill-down (a channel's row) opens on click its
// contacts (the abandoned ones with their waits, all on demand) and its
// revisions: each change of its figures after its end, old -> new, with
// the contacts that changed them. A window revised after its end (a
// revision, or a late or restated pane) is marked "restated" there, and a
// tile whose window's pane is late or restated too.
//
// Every string from the data (queue ids, customer ids, channels, reasons,
// raw events, rule names, alert messages, receivers' answers, contact
// ids) is untrusted: it only ever reaches the page as textContent, a
// Text node or a property such as title, never as HTML, and through
// shown(): control and bidirectional formatting characters appear as
// \uXXXX escapes and the text is isolated (<bdi> or class "data", CSS
// unicode-bidi: isolate), so 'Q-\u202eLIVE' cannot read as another queue
// nor reorder the text around it. Class names come from fixed lists.
'use strict';

(function () {
  const PALETTE = [
    '#4fc3f7', '#ffb74d', '#ba68c8', '#81c784', '#f06292', '#fff176',
    '#4db6ac', '#e57373', '#9fa8da', '#a1887f', '#90a4ae', '#dce775',
  ];
  const LEVELS = ['ok', 'warn', 'alert', 'idle'];
  const TIERS = ['PLATINUM', 'GOLD', 'SILVER', 'BRONZE'];
  const HOURS = ['1', '4', '8', '24'];
  const POLL_MS = 2000;
  const TICK_MS = 1000;
  const SEVERITY = ['idle', 'ok', 'warn', 'alert'];
  // A server clock estimate further behind than this is the server's
  // clock stepped back (or a new server): start over from it.
  const CLOCK_STEP_MS = 60000;
  const CHART_HEIGHT = 200;
  const COUNT_ROWS = 4;
  // The page's filter, passed on to the API: ?queues=Q1,Q2 or ?group=G,
  // and ?tiles=N.
  const FILTER = (() => {
    const params = new URLSearchParams(window.location.search);
    const kept = new URLSearchParams();
    for (const name of ['queues', 'group', 'tiles']) {
      if (params.has(name)) kept.set(name, params.get(name));
    }
    return kept;
  })();
  // Control (Cc), format (Cf: bidi overrides, isolates, marks, zero
  // widths) and separator (Zl, Zp) characters.
  const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;

  const state = {
    snapshot: null,
    dataVersion: null,
    hours: '4',
    queue: null,
    detailPage: 0,
    // The alert whose history is open: {rule, queue_id, channel}.
    alert: null,
    // The window whose contacts are open: {queue_id, channel,
    // window_start}, and which contacts: 'abandoned' or 'all'.
    window: null,
    windowContacts: 'abandoned',
    charts: {},
    polling: null,
    // server clock (ms) minus performance.now() (see serverNow).
    clockOffset: null,
  };
  // A ticking wait's node -> what it is computed from (see liveWait).
  const ticking = new WeakMap();
  // A row of the queue's windows -> the window it opens (see openWindow).
  const windowRows = new WeakMap();

  // --- DOM, text only ---------------------------------------------------
  function $(id) {
    return document.getElementById(id);
  }

  // A string of the data as shown: invisible characters as escapes.
  function shown(value) {
    if (value === null || value === undefined) return '–';
    return String(value).replace(INVISIBLE, c =>
      '\\u' + c.codePointAt(0).toString(16).padStart(4, '0'));
  }

  // el('td', {text: value, className: 'num'}, [children]): children are
  // nodes or strings (which become Text nodes). {data: value}: a string of
  // the data, through shown() and isolated.
  function el(tag, props, children) {
    const node = document.createElement(tag);
    const p = props || {};
    if (p.text !== undefined) node.textContent = String(p.text);
    if (p.data !== undefined) {
      node.textContent = shown(p.data);
      node.classList.add('data');
    }
    if (p.className) node.classList.add(...p.className.split(' '));
    if (p.title !== undefined) node.title = shown(p.title);
    if (p.type) node.type = p.type;
    for (const child of children || []) node.append(child);
    return node;
  }

  // Data inside a sentence.
  function bdi(value) {
    return el('bdi', {data: value});
  }

  function level(value) {
    return LEVELS.includes(value) ? value : 'idle';
  }

  // --- formatting -------------------------------------------------------
  // The job rounds rates to 4 decimals; one decimal of a percentage is
  // rounded half-up from those (0.0745 -> 7.5 %), in integers.
  function pct(fraction) {
    if (fraction === null || fraction === undefined) return '–';
    const tenths = Math.round(Math.round(fraction * 10000) / 10);
    return (tenths / 10).toFixed(1) + ' %';
  }

  function wait(seconds) {
    if (seconds === null || seconds === undefined) return '–';
    const s = Math.round(seconds);
    if (s < 60) return s + ' s';
    return Math.floor(s / 60) + ' min ' + String(s % 60).padStart(2, '0') + ' s';
  }

  function count(n) {
    return n === null || n === undefined ? '–' : n.toLocaleString();
  }

  const timeFormat = new Intl.DateTimeFormat(undefined, {
    hour: '2-digit', minute: '2-digit', hourCycle: 'h23'});
  const secondsFormat = new Intl.DateTimeFormat(undefined, {
    hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23'});
  const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit',
    minute: '2-digit', hourCycle: 'h23', timeZoneName: 'short'});
  const shortDateTimeFormat = new Intl.DateTimeFormat(undefined, {
    month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
    second: '2-digit', hourCycle: 'h23'});

  function time(ms) {
    return ms === null || ms === undefined ? '–' : timeFormat.format(new Date(ms));
  }

  function dateTime(ms) {
    return ms === null || ms === undefined ? '–' : dateTimeFormat.format(new Date(ms));
  }

  function windowRange(start, end) {
    return time(start) + '–' + time(end);
  }

  function duration(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600);
    const m = Math.floor(s % 3600 / 60), sec = s % 60;
    if (d) return d + ' d ' + h + ' h';
    if (h) return h + ' h ' + m + ' min';
    if (m) return m + ' min' + (sec ? ' ' + sec + ' s' : '');
    return sec + ' s';
  }

  // A wait as a clock, short enough for a tile: 4:05, 1:02:05.
  function clockWait(seconds) {
    if (seconds === null || seconds === undefined) return '–';
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60);
    const sec = String(s % 60).padStart(2, '0');
    return h ? h + ':' + String(m).padStart(2, '0') + ':' + sec : m + ':' + sec;
  }

  // A rule's figure by its unit (the server's `unit`).
  function figure(value, unit) {
    if (value === null || value === undefined) return '–';
    if (unit === 'fraction') return pct(value);
    if (unit === 'seconds') return wait(value);
    return value.toLocaleString(undefined, {maximumFractionDigits: 2});
  }

  function pane(timing, index) {
    if (timing === 'EARLY') return 'so far';
    if (timing === 'ON_TIME') return 'on time';
    // pane_index counts the EARLY panes too: no number for late updates.
    if (timing === 'LATE') return 'late update';
    return shown(timing).toLowerCase() + ' #' + index;
  }

  // Panes that change a window's figures after its end.
  const REVISED_TIMINGS = ['LATE', 'RESTATED'];

  function restatedMark(revised) {
    return el('span', {className: 'restated-mark', text: revised ? 'restated' : '',
      title: revised ? 'its figures changed after the window ended' : undefined});
  }

  // --- header, banners --------------------------------------------------
  function renderLegend(t, live, staffed) {
    const chips = [
      el('span', {className: 'chip level-ok', text: 'abandon < ' + pct(t.abandon_rate_warn)}),
      el('span', {className: 'chip level-warn', text: '≥ ' + pct(t.abandon_rate_warn)}),
      el('span', {className: 'chip level-alert', text: '≥ ' + pct(t.abandon_rate_alert)}),
      el('span', {className: 'chip', text: 'service level target ' + pct(t.service_level_target)})];
    if (live) {
      chips.push(
        el('span', {className: 'chip level-warn',
          text: 'longest wait ≥ ' + duration(t.longest_wait_warn * 1000)}),
        el('span', {className: 'chip level-alert', text: '≥ ' + duration(t.longest_wait_alert * 1000)}));
    }
    if (staffed) {
      chips.push(el('span', {className: 'chip chip-no-agent', text: '⚠ waiting, no agent available'}));
    }
    $('legend').replaceChildren(...chips);
  }

  function renderBanners(s) {
    const banners = [];
    if (s.store_error) {
      banners.push(el('div', {className: 'banner alert'}, [
        el('strong', {text: 'Cannot read the results. '}),
        'Showing the last numbers read. ',
        el('span', {className: 'dim', data: s.store_error})]));
    }
    const flows = (s.health && s.health.flows) || [];
    const empty = flows.filter(f => f.stale && f.newest_window_end === null);
    const stale = flows.filter(f => f.stale && f.newest_window_end !== null);
    if (stale.length) {
      banners.push(el('div', {className: 'banner alert'}, [
        el('strong', {text: 'Stale data: nothing new for more than two windows. '}),
        stale.map(f => 'The newest ' + f.name + ' window (' + duration(f.window_ms) +
          ') ended ' + duration(f.lag_ms) + ' ago, ' + dateTime(f.newest_window_end) + '.').join(' ')]));
    }
    if (empty.length) {
      banners.push(el('div', {className: 'banner warn',
        text: 'No ' + empty.map(f => f.name).join(' and no ') + ' in the store yet.'}));
    }
    $('banners').replaceChildren(...banners);
  }

  function setConnection(mode) {
    const node = $('connection');
    node.className = 'connection ' + mode;
    node.textContent = mode;
  }

  // --- live figures -----------------------------------------------------
  // health.now_ms of an update just arrived: it was read before it was
  // sent, so now - offset only underestimates the server's clock; the
  // largest estimate is the best.
  function noteServerTime(nowMs) {
    if (typeof nowMs !== 'number' || !isFinite(nowMs)) return;
    const offset = nowMs - performance.now();
    if (state.clockOffset === null || offset > state.clockOffset ||
        offset < state.clockOffset - CLOCK_STEP_MS) {
      state.clockOffset = offset;
    }
  }

  function serverNow() {
    return state.clockOffset === null ? null : performance.now() + state.clockOffset;
  }

  // spec: {baseMs: the wait as of the row (null: unknown), updatedAt: when
  // the job wrote the row, ticking: somebody waits}.
  function liveWait(spec, now) {
    if (spec.baseMs === null || spec.baseMs === undefined) return null;
    if (!spec.ticking || now === null || typeof spec.updatedAt !== 'number') return spec.baseMs;
    return spec.baseMs + Math.max(0, now - spec.updatedAt);
  }

  function waitLevel(seconds, t) {
    if (seconds === null || !t) return 'idle';
    if (seconds >= t.longest_wait_alert) return 'alert';
    return seconds >= t.longest_wait_warn ? 'warn' : 'ok';
  }

  function setClass(node, prefix, value) {
    for (const name of SEVERITY) node.classList.toggle(prefix + name, name === value);
  }

  // Every ticking wait on the page, from its row and the time since.
  function tick() {
    const now = serverNow();
    const thresholds = state.snapshot && state.snapshot.thresholds;
    for (const node of document.querySelectorAll('.ticking')) {
      const spec = ticking.get(node);
      if (!spec) continue;
      const ms = liveWait(spec, now);
      const seconds = ms === null ? null : ms / 1000;
      // Whole seconds elapsed, as the tile's clock counts them.
      node.textContent = spec.clock ? clockWait(seconds) :
        wait(seconds === null ? null : Math.floor(seconds));
      if (spec.tile) {
        // The tile's top bar: the worse of its window's and its wait's.
        const lvl = waitLevel(seconds, thresholds);
        setClass(node, 'level-', lvl);
        const worse = SEVERITY.indexOf(lvl) > SEVERITY.indexOf(spec.status) ? lvl : spec.status;
        setClass(spec.tile, 'status-', worse);
      }
    }
  }

  // The first figures of a tile: contacts waiting now, the longest wait.
  function liveFigures(t) {
    const live = t.live;
    const longest = el('div', {className: 'tile-longest ticking'});
    const spec = {
      baseMs: live ? live.wait_ms : null,
      updatedAt: live ? live.updated_at : null,
      ticking: Boolean(live && live.ticking),
      clock: true,
      status: level(t.status),
      tile: null,
    };
    ticking.set(longest, spec);
    const node = el('div', {className: 'tile-live'}, [
      el('div', {className: 'tile-live-figure'}, [
        el('div', {className: 'tile-waiting', text: live ? count(live.waiting) : '–'}),
        el('div', {className: 'tile-caption', text: 'waiting now'})]),
      el('div', {className: 'tile-live-figure'}, [
        longest, el('div', {className: 'tile-caption', text: 'longest wait'})]),
    ]);
    return {node: node, spec: spec};
  }

  // --- staffing -----------------------------------------------------------
  const AGENT_STATES = [
    ['available', 'available'], ['on_contact', 'on contact'],
    ['after_contact_work', 'ACW'], ['not_ready', 'not ready']];

  // A tile's line of agents by state, its channels summed. A queue
  // without agent rows has none logged in, unless the server read only
  // the most recently updated rows (then it is unknown).
  function agentLine(t, agents) {
    const a = t.agents || (agents.complete ?
      {logged_in: 0, available: 0, on_contact: 0, after_contact_work: 0, not_ready: 0} : null);
    return el('div', {className: 'tile-agents',
      title: a ? 'agents logged in: ' + count(a.logged_in) : 'agents unknown'},
    AGENT_STATES.map(([key, caption]) => el('div', {className: 'agents-state agents-' + key}, [
      el('div', {className: 'agents-figure', text: a ? count(a[key]) : '–'}),
      el('div', {className: 'tile-caption', text: caption})])));
  }

  function staffingShown() {
    const staffing = state.snapshot && state.snapshot.staffing;
    return Boolean(staffing && staffing.available);
  }

  // Totals of the view's queues: logged in, by state, not-ready reasons.
  function renderStaffing(staffing) {
    const shownHere = Boolean(staffing && staffing.available);
    $('staffing').hidden = !shownHere;
    if (!shownHere) return;
    $('staffing-scope').textContent = '· ' + count(staffing.queues) + ' queues with agents' +
      (staffing.complete ? '' : ' · of the most recently updated queues only') +
      (staffing.unknown ? ' · ' + count(staffing.unknown) + ' rows with unknown counts left out' : '');
    const totals = staffing.totals;
    $('staffing-totals').replaceChildren(...[['logged_in', 'logged in']].concat(AGENT_STATES).map(
      ([key, caption]) => el('div', {className: 'staffing-state staffing-' + key}, [
        el('div', {className: 'staffing-figure', text: count(totals[key])}),
        el('div', {className: 'tile-caption', text: caption})])));
    const unstaffed = staffing.no_agent_queues;
    $('staffing-no-agent').replaceChildren(...(unstaffed ? [el('div', {className: 'staffing-alert',
      text: '⚠ ' + count(unstaffed) + (unstaffed === 1 ? ' queue has' : ' queues have') +
        ' contacts waiting and no agent available'})] : []));
    const rows = staffing.reasons.map(r => el('tr', {}, [
      el('td', {data: r.reason}), el('td', {className: 'num', text: count(r.agents)})]));
    if (staffing.more_reasons > 0) {
      const more = el('td', {className: 'dim', text: '+ ' + count(staffing.more_reasons) +
        ' more reasons, ' + count(staffing.more_agents) + ' agents'});
      more.colSpan = 2;
      rows.push(el('tr', {}, [more]));
    }
    $('reasons-scope').textContent = staffing.unreadable ?
      '· ' + count(staffing.unreadable) + ' unreadable entries left out' : '';
    fillTable($('reasons'), rows, 2, 'No agent is not ready.');
  }

  // --- tiles ------------------------------------------------------------
  // A tile's figures since local midnight: offered, abandon rate,
  // service level (– when the queue has none today).
  function todayLine(today) {
    const d = today || {};
    return el('div', {className: 'tile-today', title: today ? 'local date ' + shown(d.local_date) : 'no figures today'}, [
      el('span', {className: 'tile-caption', text: 'today '}),
      el('span', {className: 'today-offered', text: count(d.offered)}),
      el('span', {className: 'tile-caption', text: ' offered · '}),
      el('span', {className: 'today-rate level-' + level(d.abandon_status), text: pct(d.abandon_rate)}),
      el('span', {className: 'tile-caption', text: ' abandon · '}),
      el('span', {className: 'today-sl level-' + level(d.service_level_status), text: pct(d.service_level)}),
      el('span', {className: 'tile-caption', text: ' SL'})]);
  }

  function tile(t, waitLabel, liveAvailable, agents, todayShown) {
    const classes = ['tile', 'status-' + level(t.status)];
    const windowless = t.window_start === null || t.window_start === undefined;
    if (!t.current && !windowless) classes.push('old');
    if (t.queue_id === state.queue) classes.push('selected');
    const staffed = Boolean(agents && agents.available);
    const unstaffed = staffed && t.no_agent === true;
    if (unstaffed) classes.push('no-agent');
    const channels = t.channels && t.channels.length > 1 ? t.channels : [];
    const named = t.queue_name && t.queue_name !== t.queue_id;
    const live = liveAvailable ? liveFigures(t) : null;
    const soFar = t.pane_timing === 'EARLY' ? ' so far' : '';
    const windowText = windowless ? 'no window yet' :
      (t.current ? '' : 'last window ') + windowRange(t.window_start, t.window_end) +
      ' · ' + pane(t.pane_timing, t.pane_index);
    if (soFar) classes.push('so-far');
    const button = el('button', {className: classes.join(' '), type: 'button', title: t.queue_id}, [
      ...(named ? [el('div', {className: 'tile-name', data: t.queue_name})] : []),
      el('div', {className: 'tile-queue' + (named ? ' tile-id' : ''), data: t.queue_id}),
      ...(unstaffed ? [el('div', {className: 'tile-no-agent', text: '⚠ no agent available'})] : []),
      ...(live ? [live.node] : []),
      ...(staffed ? [agentLine(t, agents)] : []),
      el('div', {className: 'tile-rate level-' + level(t.abandon_status), text: pct(t.abandon_rate)}),
      el('div', {className: 'tile-caption', text: 'abandon rate' + soFar}),
      el('div', {className: 'tile-sl level-' + level(t.service_level_status)}, [
        el('span', {className: 'tile-sl-value', text: pct(t.service_level)}),
        el('span', {className: 'tile-caption', text: ' service level'})]),
      el('dl', {className: 'tile-stats'}, [
        el('dt', {text: 'offered'}), el('dd', {className: 'tile-offered', text: count(t.offered)}),
        el('dt', {text: 'abandoned'}), el('dd', {className: 'tile-abandoned', text: count(t.abandoned)}),
        el('dt', {text: waitLabel}), el('dd', {className: 'tile-wait', text: wait(t.wait_seconds)})]),
      ...(todayShown ? [todayLine(t.today)] : []),
      el('div', {className: 'tile-window', text: windowText},
        REVISED_TIMINGS.includes(t.pane_timing) ? [restatedMark(true)] : []),
    ].concat(channels.length ? [el('div', {className: 'tile-channels'},
      channels.flatMap((c, i) => (i ? [' + ', bdi(c)] : [bdi(c)])))] : []));
    if (live) live.spec.tile = button;
    button.dataset.queue = t.queue_id;
    button.addEventListener('click', () => openDetail(t.queue_id, t.queue_name));
    return button;
  }

  // The queues a view leaves out, in one tile.
  function restTile(rest, liveAvailable, staffed) {
    const statuses = ['alert', 'warn', 'ok', 'idle'].filter(s => rest.statuses[s]);
    return el('div', {className: 'tile tile-rest'}, [
      el('div', {className: 'tile-queue', text: '+ ' + count(rest.queues) + ' more queues'}),
      el('div', {className: 'tile-caption', text: 'not as bad as those shown'}),
      el('dl', {className: 'tile-stats'}, statuses.flatMap(s => [
        el('dt', {className: 'level-' + s, text: s}),
        el('dd', {className: 'rest-' + s, text: count(rest.statuses[s])})]).concat([
        el('dt', {text: 'offered'}), el('dd', {text: count(rest.offered)}),
        el('dt', {text: 'abandoned'}), el('dd', {text: count(rest.abandoned)})]).concat(
        liveAvailable ? [el('dt', {text: 'waiting now'}),
          el('dd', {className: 'rest-waiting', text: count(rest.waiting)})] : []).concat(
        staffed ? [el('dt', {text: 'waiting, no agent'}),
          el('dd', {className: 'rest-no-agent', text: count(rest.no_agent)})] : [])),
    ]);
  }

  function liveAvailable(queues) {
    return Boolean(queues.live && queues.live.available);
  }

  function renderTiles(queues) {
    const live = liveAvailable(queues);
    const scope = FILTER.has('group') ? ['group ', bdi(FILTER.get('group')), ' · '] :
      FILTER.has('queues') ? ['chosen queues · '] : [];
    $('tiles-scope').replaceChildren(...scope, count(queues.selected) + ' queues' +
      (queues.missing ? ', ' + count(queues.missing) + ' without windows or live figures' : '') +
      (queues.rest.queues ? ' · the worst ' + queues.tiles.length + ' first' : '') +
      (live && !queues.live.complete ? ' · live figures of the most recently updated queues only' : ''));
    if (!queues.tiles.length) {
      $('tiles').replaceChildren(el('p', {className: 'empty', text: 'No queue windows yet.'}));
      return;
    }
    const agents = queues.agents;
    const todayShown = Boolean(queues.today && queues.today.available);
    const tiles = queues.tiles.map(t => tile(t, queues.wait_label, live, agents, todayShown));
    if (queues.rest.queues) tiles.push(restTile(queues.rest, live, Boolean(agents && agents.available)));
    $('tiles').replaceChildren(...tiles);
    tick();
  }

  // --- charts (uPlot) ---------------------------------------------------
  function colors(keys) {
    const sorted = [...keys].sort();
    return new Map(sorted.map((k, i) => [k, PALETTE[i % PALETTE.length]]));
  }

  // A message instead of the chart `name`.
  function chartMessage(name, container, text) {
    if (state.charts[name]) state.charts[name].destroy();
    delete state.charts[name];
    container.replaceChildren(el('p', {className: 'empty', text: text}));
  }

  // lines: [{label, values, stroke, dash}] on xMs (window starts, ms).
  function chart(name, container, xMs, lines, format) {
    if (!xMs.length) {
      chartMessage(name, container, 'No windows in this range.');
      return;
    }
    const existing = state.charts[name];
    const data = [xMs.map(ms => ms / 1000), ...lines.map(l => l.values)];
    const signature = lines.map(l => l.label).join('\u0000');
    if (existing && existing.signature === signature) {
      existing.setData(data);
      return;
    }
    if (existing) existing.destroy();
    container.replaceChildren();
    const axis = {
      stroke: '#9aa7b4',
      grid: {stroke: '#26313d', width: 1},
      ticks: {stroke: '#26313d', width: 1},
      font: '13px system-ui, sans-serif',
    };
    const plot = new uPlot({
      width: Math.max(200, container.clientWidth),
      height: CHART_HEIGHT,
      legend: {show: true, live: false},
      cursor: {drag: {x: false, y: false}},
      scales: {x: {time: true}, y: {range: (u, min, max) => [0, Math.max(max * 1.1, 1)]}},
      axes: [
        Object.assign({}, axis, {space: 90, values: (u, ticks, axisIndex, space, increment) =>
          ticks.map(t => (increment < 60 ? secondsFormat : timeFormat).format(new Date(t * 1000)))}),
        Object.assign({}, axis, {size: 56, values: (u, ticks) => ticks.map(format)})],
      series: [{label: 'window start'}].concat(lines.map(l => ({
        label: l.label,
        stroke: l.stroke,
        width: l.dash ? 1.5 : 2,
        dash: l.dash,
        // uPlot's default shows points where the line leaves room for
        // them, so a queue with one window in range is still a dot.
        points: l.dash ? {show: false} : {},
        value: (u, v) => (v === null || v === undefined ? '–' : format(v)),
      }))),
    }, data, container);
    plot.signature = signature;
    state.charts[name] = plot;
  }

  function renderTrends(trends) {
    const t = state.snapshot.thresholds;
    const palette = colors(trends.series.map(s => s.key));
    const n = trends.x.length;
    const rates = trends.series.map(s => ({
      label: shown(s.key),
      stroke: palette.get(s.key),
      values: s.abandon_rate.map(v => (v === null ? null : v * 100)),
    }));
    rates.push(
      {label: 'warn', stroke: '#f5b041', dash: [6, 4], values: new Array(n).fill(t.abandon_rate_warn * 100)},
      {label: 'alert', stroke: '#ec5f59', dash: [6, 4], values: new Array(n).fill(t.abandon_rate_alert * 100)});
    chart('rate', $('chart-rate'), trends.x, rates, v => v.toFixed(v < 10 && v % 1 ? 1 : 0) + ' %');
    chart('offered', $('chart-offered'), trends.x, trends.series.map(s => ({
      label: shown(s.key), stroke: palette.get(s.key), values: s.total_calls})), v => String(Math.round(v)));
    $('offered-hours').textContent = '· last ' + trends.hours + ' h of data';
    renderAgentTrends(trends.agents);
  }

  // Occupancy and AHT of the same queues, where the page shows staffing.
  function renderAgentTrends(agents) {
    if (!agents || !agents.available || !staffingShown()) return;
    const palette = colors(agents.series.map(s => s.key));
    chart('occupancy', $('chart-occupancy'), agents.x, agents.series.map(s => ({
      label: shown(s.key), stroke: palette.get(s.key),
      values: s.occupancy.map(v => (v === null ? null : v * 100))})), v => v.toFixed(0) + ' %');
    chart('aht', $('chart-aht'), agents.x, agents.series.map(s => ({
      label: shown(s.key), stroke: palette.get(s.key), values: s.aht_seconds})), v => clockWait(v));
    $('agent-hours').textContent = '· last ' + agents.hours + ' h of data';
  }

  function renderVolumes(volumes) {
    const palette = colors(volumes.series.map(s => s.key));
    chart('volume', $('chart-volume'), volumes.x, volumes.series.map(s => ({
      label: shown(s.key), stroke: palette.get(s.key), values: s.volume})), v => String(Math.round(v)));
    $('volume-more').textContent = volumes.more ?
      '· the ' + volumes.series.length + ' busiest; ' + count(volumes.more) + ' more channels not drawn' : '';
  }

  // --- tables -----------------------------------------------------------
  function fillTable(table, rows, columns, emptyText) {
    const body = table.tBodies[0];
    if (!rows.length) {
      body.replaceChildren(el('tr', {}, [
        el('td', {className: 'empty', text: emptyText})]));
      body.rows[0].cells[0].colSpan = columns;
      return;
    }
    body.replaceChildren(...rows);
  }

  function renderAlerts(alerts) {
    const rows = alerts.alerts.map(a => el('tr', {}, [
      el('td', {text: shortDateTimeFormat.format(new Date(a.timestamp))}),
      el('td', {className: 'customer', data: a.customer_id}),
      el('td', {}, [el('span', {
        className: 'tier tier-' + (TIERS.includes(a.tier) ? a.tier.toLowerCase() : 'other'),
        data: a.tier})]),
      el('td', {data: a.region}),
      el('td', {data: a.channel}),
      el('td', {className: 'num', text: count(a.failure_count)}),
    ]));
    fillTable($('alerts'), rows, 6, 'No pattern alerts.');
  }

  // The largest counts per (source, reason) as a table: a row per reason
  // (most first), a column per source, at most COUNT_ROWS rows and a row
  // for the rest of `summary` (total rows and groups of the store).
  function countTable(table, summary) {
    const counts = summary.counts;
    const sources = [...new Set(counts.map(c => c.source))].sort();
    const totals = new Map();
    for (const c of counts) totals.set(c.reason, (totals.get(c.reason) || 0) + c.count);
    const reasons = [...totals.keys()].sort((a, b) => totals.get(b) - totals.get(a) || (a < b ? -1 : 1));
    const byKey = new Map(counts.map(c => [c.source + '\u0000' + c.reason, c.count]));
    table.tHead.replaceChildren(el('tr', {}, [el('th', {text: 'reason'})].concat(
      sources.map(source => el('th', {className: 'num', data: source})))));
    const rows = reasons.slice(0, COUNT_ROWS).map(reason => el('tr', {}, [el('td', {data: reason})].concat(
      sources.map(source => el('td', {className: 'num',
        text: count(byKey.get(source + '\u0000' + reason) || 0)})))));
    const listed = counts.filter(c => reasons.indexOf(c.reason) < COUNT_ROWS);
    const moreGroups = summary.groups - listed.length;
    if (moreGroups > 0) {
      const more = el('td', {className: 'dim', text: '+ ' + count(moreGroups) + ' more reasons and sources, ' +
        count(summary.total - listed.reduce((n, c) => n + c.count, 0)) + ' in all'});
      more.colSpan = 1 + sources.length;
      rows.push(el('tr', {}, [more]));
    }
    fillTable(table, rows, 1 + sources.length, 'None.');
  }

  function renderFlows(health) {
    $('flows').replaceChildren(...health.flows.map(f => el('div', {
      className: 'flow ' + (f.stale ? 'stale' : 'fresh')}, [
      el('span', {className: 'flow-name', text: f.name}),
      el('span', {text: f.newest_window_end === null ? 'no windows yet' :
        'newest window ends ' + dateTime(f.newest_window_end)}),
      el('span', {className: 'flow-lag', text: f.lag_ms === null ? '' :
        duration(f.lag_ms) + ' behind now'}),
    ])));
  }

  function renderCounts(health) {
    const late = health.late_events, dead = health.dead_letters;
    $('late-scope').textContent = late.since_ms === null ? '· all time' :
      '· last hour of data, since ' + time(late.since_ms);
    $('dead-scope').textContent = dead.since_ms === null ? '· all time' :
      '· received in the last hour';
    $('late-total').textContent = (late.complete ? '' : '≥ ') + count(late.total);
    $('dead-total').textContent = (dead.complete ? '' : '≥ ') + count(dead.total);
    countTable($('late'), late);
    countTable($('dead'), dead);
  }

  // --- alerts -----------------------------------------------------------
  const SEVERITIES = ['critical', 'warning', 'info'];
  const ALERT_STATES = ['firing', 'pending', 'resolved'];
  const DELIVERY = ['delivered', 'failed', 'queued'];
  const KINDS = ['firing', 'resolved', 'reminder', 'restated'];

  function severityChip(severity) {
    return el('span', {className: 'severity sev-' + (SEVERITIES.includes(severity) ? severity : 'other'),
      data: severity || '–'});
  }

  function fixedText(value, known) {
    return known.includes(value) ? {text: value} : {data: value || '–'};
  }

  function queueCell(a) {
    if (a.queue_id === '*') return el('td', {className: 'alert-queue', text: 'all queues'});
    const named = a.queue_name && a.queue_name !== a.queue_id;
    return el('td', {className: 'alert-queue', title: a.queue_id},
      named ? [bdi(a.queue_name), ' ', el('span', {className: 'dim', data: a.queue_id})] : [bdi(a.queue_id)]);
  }

  function sameAlert(a, b) {
    return Boolean(a && b) && a.rule === b.rule && a.queue_id === b.queue_id && a.channel === b.channel;
  }

  function renderActiveAlerts(active) {
    const shownHere = Boolean(active && active.available);
    $('active-alerts').hidden = !shownHere;
    if (!shownHere) return;
    $('active-alerts-scope').textContent = count(active.firing) + ' firing · ' +
      count(active.pending) + ' pending' +
      (active.more ? ' · the first ' + count(active.alerts.length) + ' listed' : '') +
      (active.complete ? '' : ' · of the most recently updated only');
    const rows = active.alerts.map(a => {
      const classes = ['alert-row', 'state-' + (ALERT_STATES.includes(a.state) ? a.state : 'other')];
      if (sameAlert(a, state.alert)) classes.push('selected');
      const row = el('tr', {className: classes.join(' ')}, [
        el('td', {}, [severityChip(a.severity)]),
        el('td', {className: 'alert-rule', data: a.rule}),
        queueCell(a),
        el('td', {className: 'alert-channel', data: a.channel === '*' ? 'all' : a.channel}),
        el('td', {className: 'num alert-value', text: figure(a.value, a.unit)}),
        el('td', {className: 'num alert-threshold', text: figure(a.threshold, a.unit)}),
        el('td', {className: 'alert-since', text: a.since === null ? '–' : shortDateTimeFormat.format(new Date(a.since)),
          title: dateTime(a.since)}),
        el('td', Object.assign({className: 'alert-state'}, fixedText(a.state, ALERT_STATES))),
        el('td', Object.assign({className: 'alert-delivery delivery-' +
          (DELIVERY.includes(a.delivery_status) ? a.delivery_status : 'other')},
        a.delivery_status ? fixedText(a.delivery_status, DELIVERY) : {text: '–'})),
      ]);
      row.tabIndex = 0;
      const open = () => openAlert(a);
      row.addEventListener('click', open);
      row.addEventListener('keydown', event => {
        if (event.key === 'Enter') open();
      });
      return row;
    });
    fillTable($('active-alerts-table'), rows, 9, 'No active alerts.');
  }

  function openAlert(a) {
    closeDetail();
    state.alert = {rule: a.rule, queue_id: a.queue_id, channel: a.channel};
    $('alert-detail').hidden = false;
    $('alert-detail-rule').replaceChildren(bdi(a.rule));
    $('alert-detail-scope').replaceChildren('· ', ...(a.queue_id === '*' ? ['all queues'] : [bdi(a.queue_id)]),
      ' · ', bdi(a.channel));
    $('alert-detail-state').replaceChildren();
    $('alert-history').tBodies[0].replaceChildren();
    for (const row of document.querySelectorAll('#active-alerts-table tr.alert-row')) row.classList.remove('selected');
    fetchAlert();
  }

  function closeAlert() {
    state.alert = null;
    $('alert-detail').hidden = true;
    for (const row of document.querySelectorAll('#active-alerts-table tr.selected')) row.classList.remove('selected');
  }

  function deliveryList(deliveries) {
    if (!deliveries.length) return el('td', {className: 'deliveries', text: '–'});
    const parts = [];
    for (const d of deliveries) {
      if (parts.length) parts.push(el('br'));
      parts.push(el('span', {className: 'delivery delivery-' + (DELIVERY.includes(d.status) ? d.status : 'other'),
        title: d.answer}, [
        bdi(d.receiver), ': ', el('span', fixedText(d.status, DELIVERY)),
        ' (' + count(d.attempts) + (d.attempts === 1 ? ' attempt' : ' attempts') + ')']));
    }
    return el('td', {className: 'deliveries'}, parts);
  }

  function renderAlert(h) {
    const a = h.alert;
    $('alert-detail-state').replaceChildren(
      el('span', fixedText(a.state, ALERT_STATES)), ' since ' + dateTime(a.since) + ' · ',
      severityChip(a.severity), ' · ', bdi(a.metric), ' over ', bdi(a.span), ' ',
      figure(a.value, a.unit) + ' vs ' + figure(a.threshold, a.unit),
      ...(a.delivery_status ? [' · notified: ', el('span', fixedText(a.delivery_status, DELIVERY))] : []));
    $('alert-history-scope').textContent = '· ' + (h.complete ? '' : 'the newest ') +
      count(h.notifications.length) + ' notifications, newest first';
    fillTable($('alert-history'), h.notifications.map(n => el('tr', {className: 'notification'}, [
      el('td', {text: n.created_at === null ? '–' : shortDateTimeFormat.format(new Date(n.created_at)),
        title: dateTime(n.created_at)}),
      el('td', Object.assign({className: 'kind'}, fixedText(n.kind, KINDS))),
      el('td', {className: 'num', text: figure(n.value, n.unit)}),
      el('td', {className: 'num', text: n.kind === 'restated' ? figure(n.previous_value, n.unit) : ''}),
      el('td', {className: 'num', text: figure(n.threshold, n.unit)}),
      el('td', {className: 'message', data: n.message}),
      deliveryList(n.deliveries),
    ])), 7, 'No notifications.');
  }

  async function fetchAlert() {
    const key = state.alert;
    if (key === null) return;
    try {
      const query = new URLSearchParams({rule: key.rule, queue: key.queue_id, channel: key.channel});
      const h = await getJson('/api/alert?' + query);
      if (state.alert === key) renderAlert(h);
    } catch (e) {
      if (state.alert === key) fillTable($('alert-history'), [], 7, e.message);
    }
  }

  // --- drill-down -------------------------------------------------------
  function openDetail(queueId, queueName) {
    closeAlert();
    closeWindow();
    state.queue = queueId;
    state.detailPage = 0;
    $('detail').hidden = false;
    $('detail-queue').replaceChildren(bdi(queueId));
    $('detail-name').replaceChildren(...(queueName && queueName !== queueId ? [bdi(queueName)] : []));
    // The previous queue's contacts must not show under this one's name.
    $('detail-live').hidden = true;
    $('detail-waiting').tBodies[0].replaceChildren();
    $('detail-agents').hidden = true;
    $('detail-agents-table').tBodies[0].replaceChildren();
    for (const node of document.querySelectorAll('.tile')) {
      node.classList.toggle('selected', node.dataset.queue === queueId);
    }
    fetchDetail();
  }

  function closeDetail() {
    closeWindow();
    state.queue = null;
    $('detail').hidden = true;
    for (const node of document.querySelectorAll('.tile.selected')) node.classList.remove('selected');
  }

  // A row of the drill-down: a window's total (`channel` a node or text)
  // or one of its channels; `key`, the channel of a row that opens the
  // window's contacts (none for a total of several channels).
  function windowCells(w, channel, className, key) {
    const row = el('tr', {className: className}, [
      el('td', {text: windowRange(w.window_start, w.window_end), title: dateTime(w.window_start)}),
      el('td', {className: 'channel'}, [channel]),
      el('td', {className: 'num', text: count(w.offered)}),
      el('td', {className: 'num', text: count(w.abandoned)}),
      el('td', {className: 'num level-' + level(w.abandon_status), text: pct(w.abandon_rate)}),
      el('td', {className: 'num level-' + level(w.service_level_status), text: pct(w.service_level)}),
      el('td', {className: 'num', text: wait(w.wait_seconds)}),
      el('td', {className: 'pane'}, [pane(w.pane_timing, w.pane_index), restatedMark(w.revised)]),
    ]);
    if (key === undefined) return row;
    const target = {queue_id: state.queue, channel: key, window_start: w.window_start};
    row.classList.add('window-link');
    row.classList.toggle('selected', sameWindow(target, state.window));
    windowRows.set(row, target);
    row.tabIndex = 0;
    row.title = 'its contacts and revisions';
    row.addEventListener('click', () => openWindow(target));
    row.addEventListener('keydown', event => {
      if (event.key === 'Enter') openWindow(target);
    });
    return row;
  }

  function detailRows(w) {
    if (w.channels.length === 1 && !w.other_channels) {
      return [windowCells(w, bdi(w.channels[0].channel), 'window', w.channels[0].channel)];
    }
    const rows = [windowCells(w, 'all channels', 'window')];
    for (const c of w.channels) rows.push(windowCells(c, bdi(c.channel), 'channel-row', c.channel));
    if (w.other_channels) {
      rows.push(windowCells(w.other_channels,
        count(w.other_channels.channels) + ' more channels', 'channel-row'));
    }
    return rows;
  }

  // The contacts waiting in the queue now, oldest first, their waits ticking.
  function renderWaiting(w) {
    // Shown where the tiles show live figures (the store has live rows).
    const shownHere = Boolean(w && w.available && state.snapshot && state.snapshot.queues &&
      liveAvailable(state.snapshot.queues));
    $('detail-live').hidden = !shownHere;
    if (!shownHere) return;
    $('detail-waiting-scope').textContent = '· ' + count(w.waiting) + ' waiting' +
      (w.complete ? '' : ', the ' + count(w.contacts.length) + ' longest-waiting listed') +
      (w.unreadable ? ' · ' + count(w.unreadable) + ' unreadable entries left out' : '');
    fillTable($('detail-waiting'), w.contacts.map(c => {
      const waitCell = el('td', {className: 'num ticking'});
      ticking.set(waitCell, {
        baseMs: typeof c.as_of === 'number' ? Math.max(0, c.as_of - c.since) : null,
        updatedAt: c.updated_at,
        ticking: true,
      });
      return el('tr', {}, [
        el('td', {className: 'mono contact', data: c.contact_id, title: c.contact_id}),
        el('td', {data: c.channel}),
        el('td', {text: secondsFormat.format(new Date(c.since)), title: dateTime(c.since)}),
        waitCell,
      ]);
    }), 4, 'Nobody waiting.');
    tick();
  }

  // A channel's not-ready reasons: "Break 2 · Lunch 1", reasons as data.
  function reasonCell(c) {
    const parts = [];
    for (const r of c.reasons) {
      if (parts.length) parts.push(' · ');
      parts.push(el('span', {className: 'reason'}, [bdi(r.reason), ' ' + count(r.agents)]));
    }
    if (c.other_reasons) {
      parts.push((parts.length ? ' · ' : '') + '+ ' + count(c.other_reasons) + ' more reasons, ' +
        count(c.other_reason_agents) + ' agents');
    }
    if (c.unreadable) parts.push((parts.length ? ' · ' : '') + count(c.unreadable) + ' unreadable');
    return el('td', {className: 'reasons'}, parts.length ? parts : ['–']);
  }

  // The queue's agents by state per channel, where the page shows staffing.
  function renderAgents(a) {
    const shownHere = Boolean(a && a.available && staffingShown());
    $('detail-agents').hidden = !shownHere;
    if (!shownHere) return;
    $('detail-agents-scope').textContent = '· per channel' +
      (a.complete ? '' : ', the first ' + count(a.channels.length) + ' channels');
    fillTable($('detail-agents-table'), a.channels.map(c => el('tr', {}, [
      el('td', {data: c.channel}),
      el('td', {className: 'num', text: count(c.logged_in)}),
      ...AGENT_STATES.map(([key]) => el('td', {className: 'num agents-' + key, text: count(c[key])})),
      reasonCell(c),
    ])), 7, 'No agents logged in to this queue.');
  }

  function renderDetail(d) {
    renderWaiting(d.waiting);
    renderAgents(d.agents);
    $('detail-scope').textContent = '· last ' + d.hours + ' h of its windows' +
      (d.windows_complete ? '' : ' (the newest only)');
    $('detail-wait-label').textContent = d.wait_label;
    fillTable($('detail-windows'), d.windows.flatMap(detailRows), 8, 'No windows.');
    $('detail-page').textContent = d.pages > 1 ? 'page ' + (d.page + 1) + ' of ' + d.pages : '';
    $('detail-newer').disabled = d.page === 0;
    $('detail-older').disabled = d.page + 1 >= d.pages;
    $('detail-newer').hidden = $('detail-older').hidden = d.pages <= 1;
    fillTable($('detail-late'), d.late_events.map(e => el('tr', {}, [
      el('td', {text: secondsFormat.format(new Date(e.event_timestamp))}),
      el('td', {text: windowRange(e.window_start, e.window_end)}),
      el('td', {text: secondsFormat.format(new Date(e.watermark))}),
      el('td', {data: e.reason}),
      el('td', {className: 'mono', data: e.event_id}),
      el('td', {className: 'mono raw', data: e.raw, title: e.raw}),
    ])), 6, 'No late events for this queue.');
  }

  function detailError(message) {
    $('detail-live').hidden = true;
    $('detail-agents').hidden = true;
    fillTable($('detail-windows'), [], 8, message);
    fillTable($('detail-late'), [], 6, '');
  }

  // --- a window's contacts and revisions ------------------------------
  const OUTCOMES = ['ANSWERED', 'ABANDONED', 'FLOW_OUT', 'UNKNOWN'];

  function sameWindow(a, b) {
    return Boolean(a && b) && a.queue_id === b.queue_id && a.channel === b.channel &&
      a.window_start === b.window_start;
  }

  function openWindow(target) {
    state.window = target;
    state.windowContacts = 'abandoned';
    $('window-detail').hidden = false;
    $('window-detail-range').textContent = dateTime(target.window_start);
    $('window-detail-channel').replaceChildren(bdi(target.channel));
    $('window-detail-restated').replaceChildren();
    $('window-detail-figures').textContent = '';
    $('window-contacts-scope').textContent = '';
    $('window-revisions-scope').textContent = '';
    $('window-contacts').tBodies[0].replaceChildren();
    $('window-revisions').tBodies[0].replaceChildren();
    for (const row of document.querySelectorAll('#detail-windows tr.window-link')) {
      row.classList.toggle('selected', sameWindow(windowRows.get(row), target));
    }
    fetchWindow();
    $('window-detail').scrollIntoView({block: 'nearest'});
  }

  function closeWindow() {
    state.window = null;
    $('window-detail').hidden = true;
    for (const row of document.querySelectorAll('#detail-windows tr.selected')) row.classList.remove('selected');
  }

  // old -> new of a revision's figure (`format` writes one).
  function change(figures, format) {
    const before = format(figures.old), after = format(figures.new);
    return before === after ? after : before + ' → ' + after;
  }

  function revisionContacts(r) {
    if (r.contacts_unreadable) return el('td', {className: 'revision-contacts dim', text: 'unreadable'});
    const parts = [];
    for (const id of r.contact_ids) {
      if (parts.length) parts.push(', ');
      parts.push(el('span', {className: 'mono contact', data: id}));
    }
    if (r.more_contacts) parts.push((parts.length ? ', ' : '') + '+ ' + count(r.more_contacts) + ' more');
    return el('td', {className: 'revision-contacts'}, parts.length ? parts : ['–']);
  }

  function renderWindow(d) {
    const w = d.window;
    const all = d.contacts.which === 'all';
    $('window-detail-range').textContent = windowRange(w.window_start, w.window_end);
    $('window-detail-range').title = dateTime(w.window_start);
    $('window-detail-restated').replaceChildren(restatedMark(w.revised));
    $('window-detail-figures').textContent = '· ' + count(w.offered) + ' offered · ' +
      count(w.abandoned) + ' abandoned · ' + pct(w.abandon_rate) + ' abandon rate · ' +
      pct(w.service_level) + ' service level · ' + pane(w.pane_timing, w.pane_index);
    $('window-contacts-title').textContent = all ? 'Contacts' : 'Abandoned contacts';
    $('window-contacts-toggle').textContent = all ? 'Show abandoned only' : 'Show all contacts';
    const c = d.contacts;
    $('window-contacts-toggle').hidden = !c.available;
    $('window-contacts-scope').textContent = !c.available ? '· this store lists no contacts' :
      '· by the time they left the queue' +
      (c.complete ? '' : ', the first ' + count(c.contacts.length) + ' listed');
    fillTable($('window-contacts'), c.contacts.map(x => el('tr', {className: 'window-contact'}, [
      el('td', {className: 'mono contact', data: x.contact_id, title: x.contact_id}),
      el('td', Object.assign({className: 'outcome outcome-' +
        (OUTCOMES.includes(x.outcome) ? x.outcome.toLowerCase() : 'other')}, fixedText(x.outcome, OUTCOMES))),
      el('td', {text: x.event_timestamp === null ? '–' : secondsFormat.format(new Date(x.event_timestamp)),
        title: dateTime(x.event_timestamp)}),
      el('td', {className: 'num wait', text: wait(x.wait_seconds)}),
      el('td', {className: 'pane', text: pane(x.pane_timing, x.pane_index)}),
    ])), 5, !c.available ? 'No contact detail in this store.' :
      (all ? 'No contacts listed: kept for a limited time after the window (see the job\'s ' +
        '--contact_detail_ttl_seconds).' : 'No abandoned contacts listed.'));
    const r = d.revisions;
    $('window-revisions-scope').textContent = !r.available ? '· this store has no revisions' :
      '· changes of its figures after its end, oldest first' +
      (r.complete ? '' : ', the first ' + count(r.revisions.length));
    fillTable($('window-revisions'), r.revisions.map(v => el('tr', {className: 'revision'}, [
      el('td', {text: v.revised_at === null ? '–' : shortDateTimeFormat.format(new Date(v.revised_at)),
        title: dateTime(v.revised_at)}),
      el('td', {className: 'pane', text: pane(v.pane_timing, v.pane_index) +
        (v.previous_pane_index === -1 ? ' (first figures)' : '')}),
      el('td', {className: 'num', text: change(v.offered, count)}),
      el('td', {className: 'num', text: change(v.abandoned, count)}),
      el('td', {className: 'num', text: change(v.abandon_rate, pct)}),
      el('td', {className: 'num', text: change(v.service_level, pct)}),
      revisionContacts(v),
    ])), 7, 'No revisions: its figures have not changed since it ended.');
  }

  function windowError(message) {
    fillTable($('window-contacts'), [], 5, message);
    fillTable($('window-revisions'), [], 7, '');
  }

  async function fetchWindow() {
    const key = state.window;
    if (key === null) return;
    const which = state.windowContacts;
    try {
      const query = new URLSearchParams({queue_id: key.queue_id, channel: key.channel,
        window_start: key.window_start, contacts: which});
      const d = await getJson('/api/window?' + query);
      if (state.window === key && state.windowContacts === which) renderWindow(d);
    } catch (e) {
      if (state.window === key && state.windowContacts === which) windowError(e.message);
    }
  }

  // --- data -------------------------------------------------------------
  async function getJson(url) {
    const response = await fetch(url, {headers: {Accept: 'application/json'}});
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }

  async function fetchTrends() {
    try {
      const query = new URLSearchParams(FILTER);
      query.set('hours', state.hours);
      renderTrends(await getJson('/api/trends?' + query));
    } catch (e) {
      chartMessage('rate', $('chart-rate'), 'Trends unavailable: ' + e.message);
      chartMessage('offered', $('chart-offered'), 'Trends unavailable: ' + e.message);
      if (staffingShown()) {
        chartMessage('occupancy', $('chart-occupancy'), 'Trends unavailable: ' + e.message);
        chartMessage('aht', $('chart-aht'), 'Trends unavailable: ' + e.message);
      }
    }
  }

  async function fetchDetail() {
    const queueId = state.queue;
    if (queueId === null) return;
    try {
      const query = new URLSearchParams({id: queueId, hours: state.hours, page: state.detailPage});
      const d = await getJson('/api/queue?' + query);
      if (state.queue === queueId) renderDetail(d);
    } catch (e) {
      if (state.queue === queueId) detailError(e.message);
    }
  }

  // Lag and staleness move with the clock at every snapshot; the rest is
  // rebuilt only when the numbers changed, so hover and focus survive.
  function apply(s) {
    state.snapshot = s;
    renderBanners(s);
    if (!s.queues) return; // the store has never been read
    noteServerTime(s.health.now_ms);
    $('now-time').textContent = dateTime(s.health.now_ms);
    renderFlows(s.health);
    if (s.data_version === state.dataVersion) return;
    state.dataVersion = s.data_version;
    // An open window's early pane ends in the future: its data is as of
    // now (the server's clock), not of its end.
    const end = s.queues.newest_window_end;
    $('data-time').textContent = dateTime(end === null ? null : Math.min(end, s.health.now_ms));
    renderLegend(s.thresholds, liveAvailable(s.queues), Boolean(s.staffing && s.staffing.available));
    // Before the trends: the agent charts are drawn only where it shows.
    renderStaffing(s.staffing);
    renderActiveAlerts(s.active_alerts);
    renderTiles(s.queues);
    renderVolumes(s.volumes);
    renderAlerts(s.alerts);
    renderCounts(s.health);
    fetchTrends();
    fetchDetail();
    fetchWindow();
    fetchAlert();
  }

  // A `delta` event on the last view: its changed sections replace
  // theirs; of the tiles, the changed ones, in the order given.
  function merge(s, delta) {
    const next = Object.assign({}, s);
    for (const [name, value] of Object.entries(delta)) {
      if (name !== 'queues') next[name] = value;
    }
    if (delta.store_error === null) delete next.store_error;
    if (delta.queues) {
      const byId = new Map(((s.queues && s.queues.tiles) || []).map(t => [t.queue_id, t]));
      for (const t of delta.queues.changed) byId.set(t.queue_id, t);
      const queues = Object.assign({}, delta.queues);
      delete queues.changed; delete queues.removed; delete queues.order;
      queues.tiles = delta.queues.order.map(id => byId.get(id));
      next.queues = queues;
    }
    return next;
  }

  function startPolling() {
    if (state.polling) return;
    setConnection('polling');
    const poll = async () => {
      try {
        apply(await getJson('/api/snapshot?' + FILTER));
        setConnection('polling');
      } catch (e) {
        setConnection('reconnecting');
      }
    };
    poll();
    state.polling = setInterval(poll, POLL_MS);
  }

  function connect() {
    if (!window.EventSource) {
      startPolling();
      return;
    }
    const events = new EventSource('/api/events?' + FILTER);
    events.addEventListener('snapshot', message => {
      setConnection('live');
      apply(JSON.parse(message.data));
    });
    events.addEventListener('delta', message => {
      if (state.snapshot) apply(merge(state.snapshot, JSON.parse(message.data)));
    });
    events.onerror = () => {
      // CLOSED: the server refused the stream (e.g. too many pages); the
      // browser does not retry then, so poll instead.
      if (events.readyState === EventSource.CLOSED) startPolling();
      else setConnection('reconnecting');
    };
  }

  function init() {
    $('hours').addEventListener('change', event => {
      if (!HOURS.includes(event.target.value)) return;
      state.hours = event.target.value;
      fetchTrends();
      fetchDetail();
    });
    $('detail-close').addEventListener('click', closeDetail);
    $('alert-detail-close').addEventListener('click', closeAlert);
    $('window-detail-close').addEventListener('click', closeWindow);
    $('window-contacts-toggle').addEventListener('click', () => {
      state.windowContacts = state.windowContacts === 'all' ? 'abandoned' : 'all';
      fetchWindow();
    });
    for (const [id, step] of [['detail-newer', -1], ['detail-older', 1]]) {
      $(id).addEventListener('click', () => {
        state.detailPage = Math.max(0, state.detailPage + step);
        fetchDetail();
      });
    }
    document.addEventListener('keydown', event => {
      if (event.key === 'Escape') {
        closeDetail();
        closeAlert();
      }
    });
    let resizing = null;
    window.addEventListener('resize', () => {
      clearTimeout(resizing);
      resizing = setTimeout(() => {
        for (const [name, plot] of Object.entries(state.charts)) {
          const container = $('chart-' + name);
          plot.setSize({width: Math.max(200, container.clientWidth), height: CHART_HEIGHT});
        }
      }, 150);
    });
    setInterval(tick, TICK_MS);
    connect();
  }

  init();
})();
