// The operator panel: talks to the station's HTTP API (docs/http-api.md), folds the
// event stream into each slot's state (state.js) and draws it. Text from tests is
// always set with textContent, never parsed as HTML.
import { newSlot, apply, verdictOf, counts } from './state.js';
import { renderDialog } from './dialogs.js';

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
};

const station = { slots: [], tiles: [], regex: null, pattern: '', frame: 0 };

// ---- network

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  let doc = null;
  try { doc = await r.json(); } catch { /* not JSON */ }
  return { status: r.status, doc };
}

// ---- the event stream
//
// Read with fetch, not EventSource: the wire is the same text/event-stream (one
// event per message, id SLOT:SEQ), but EventSource makes a DOM event of every
// message, and while a quick run streams thousands of events a second that work
// alone kept the page's main thread busy. Here each read of the stream (all that
// arrived since the last one, often hundreds of events) is parsed and folded into
// the slots in one go and drawn once, in the next animation frame. It does what
// EventSource does otherwise: Last-Event-ID when it reconnects, after the
// station's retry: delay.
const stream = { ctrl: null, lastId: '', retry: 1000 };

// fresh: start over (no Last-Event-ID), as after a resync
function connect(fresh = false) {
  if (stream.ctrl) stream.ctrl.abort();
  if (fresh) stream.lastId = '';
  const ctrl = new AbortController();
  stream.ctrl = ctrl;
  readStream(ctrl).catch(() => {}).finally(() => {
    if (stream.ctrl !== ctrl) return; // replaced by a newer connection
    setLink('reconnecting…', 'down');
    setTimeout(() => { if (stream.ctrl === ctrl) connect(); }, stream.retry);
  });
}

async function readStream(ctrl) {
  const headers = stream.lastId ? { 'Last-Event-ID': stream.lastId } : {};
  const r = await fetch('/api/events', { headers, signal: ctrl.signal, cache: 'no-store' });
  if (!r.ok || !r.body) return;
  setLink('live', 'live');
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let rest = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done || stream.ctrl !== ctrl) return;
    const text = rest + value;
    const end = text.lastIndexOf('\n\n'); // the station ends every line with \n, every message with \n\n
    if (end < 0) { rest = text; continue; }
    rest = text.slice(end + 2);
    if (!takeMessages(text.slice(0, end))) return;
  }
}

// Folds complete messages into the slots. -> false when the page must resync.
// Walked by index, not split into arrays of lines: a busy run sends thousands of
// messages a second, and the page reads them on the thread that draws.
function takeMessages(block) {
  const n = block.length;
  for (let at = 0; at < n;) {
    let end = block.indexOf('\n\n', at);
    if (end < 0) end = n;
    let data = null;
    for (let ls = at; ls < end;) {
      let le = block.indexOf('\n', ls);
      if (le < 0 || le > end) le = end;
      const colon = block.indexOf(':', ls);
      const fieldEnd = colon < 0 || colon > le ? le : colon;
      const field = block.slice(ls, fieldEnd);
      let vs = fieldEnd < le ? fieldEnd + 1 : le;
      if (block.charCodeAt(vs) === 32 && vs < le) vs++;
      if (field === 'data') {
        const value = block.slice(vs, le);
        data = data === null ? value : `${data}\n${value}`;
      } else if (field === 'id') stream.lastId = block.slice(vs, le);
      else if (field === 'retry') {
        const value = block.slice(vs, le);
        if (/^\d+$/.test(value)) stream.retry = Number(value);
      }
      ls = le + 1;
    }
    at = end + 2;
    if (data === null) continue;
    let ev;
    try { ev = JSON.parse(data); } catch { continue; }
    const s = station.slots[(ev.slot ?? 1) - 1];
    if (!s) continue;
    const what = apply(s, ev);
    if (what === 'resync') { connect(true); return false; }
    if (what === 'run_finished') onFinished(s, ev);
  }
  schedule();
  return true;
}

function setLink(text, cls) {
  const l = $('#link');
  l.textContent = text;
  l.dataset.state = cls;
}

async function refreshStats() {
  const [st, runs] = await Promise.all([api('GET', '/api/state'), api('GET', '/api/runs?limit=20')]);
  if (st.status === 200) drawStats(st.doc);
  if (runs.status === 200) drawRuns(runs.doc);
}

// ---- actions

function serialProblem(serial) {
  if (!serial) return 'Enter the DUT serial first.';
  if (station.regex && !station.regex.test(serial)) return `“${serial}” is not a valid serial (pattern ${station.pattern}).`;
  return null;
}

async function start(tile, s) {
  const input = $('.serial', tile);
  const serial = input.value.trim();
  const err = $('.form-error', tile);
  const problem = serialProblem(serial);
  if (problem) { err.textContent = problem; input.select(); return; }
  err.textContent = '';
  const body = { serial };
  if (station.slots.length > 1) body.slot = s.slot;
  let r = await api('POST', '/api/start', body);
  // The verdict comes with the run's last event and its process ends a moment later:
  // a board scanned right after the verdict waits for that instead of failing.
  for (let i = 0; r.status === 409 && s.state === 'finished' && i < 25; i++) {
    await new Promise((res) => setTimeout(res, 200));
    r = await api('POST', '/api/start', body);
  }
  if (r.status === 202) {
    input.value = '';
    tile.dataset.pending = 'starting';
    $('.run-status', tile).textContent = 'starting…';
  } else {
    err.textContent = r.doc?.error ?? `the station answered ${r.status}`;
    input.select();
  }
}

async function stop(s) {
  await api('POST', '/api/stop', station.slots.length > 1 ? { slot: s.slot } : {});
}

// Several slots: start every idle slot with a serial entered; stop every running one.
async function startAll() {
  station.slots.forEach((s, i) => {
    const tile = station.tiles[i];
    if (s.state !== 'running' && !tile.dataset.pending && $('.serial', tile).value.trim()) start(tile, s);
  });
}

async function stopAll() {
  await api('POST', '/api/stop', {});
}

async function answer(s, d, value, errorEl) {
  const r = await api('POST', `/api/dialogs/${encodeURIComponent(d.id)}`, { value, slot: s.slot });
  if (r.status === 200) {
    s.dialogs.delete(d.id);
    s.dirty.add('dialogs');
    schedule();
  } else {
    errorEl.textContent = r.doc?.error ?? `the station answered ${r.status}`;
  }
}

function onFinished(s, ev) {
  // a verdict that just happened (not one replayed on page load) may beep
  const age = Date.now() - Date.parse(ev.time);
  if ($('#sound').checked && age < 10000) beep(ev.status === 'passed');
  refreshAfterRun(s.slot, ev.run_id);
}

// The run's child ends just after its last event; the station records the run
// then. Look until the station has it (a few tenths of a second).
async function refreshAfterRun(slot, runId) {
  for (let i = 0; i < 25; i++) {
    const st = await api('GET', '/api/state');
    const x = st.doc?.slots?.[slot - 1];
    if (st.status === 200 && (x?.run_id !== runId || x?.state !== 'running')) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  await refreshStats();
}

let audio = null;
function beep(ok) {
  audio ??= new AudioContext();
  const notes = ok ? [[880, 0, 0.12], [1320, 0.14, 0.18]] : [[220, 0, 0.5], [180, 0.55, 0.5]];
  for (const [f, at, len] of notes) {
    const o = audio.createOscillator();
    const g = audio.createGain();
    o.frequency.value = f;
    o.type = ok ? 'sine' : 'square';
    g.gain.value = 0.15;
    o.connect(g).connect(audio.destination);
    o.start(audio.currentTime + at);
    o.stop(audio.currentTime + at + len);
  }
}

// ---- drawing (batched per animation frame)

function schedule() {
  if (!station.frame) station.frame = requestAnimationFrame(draw);
}

function draw() {
  station.frame = 0;
  station.slots.forEach((s, i) => drawSlot(station.tiles[i], s));
  const stopAll = $('#stop-all');
  if (stopAll) stopAll.disabled = !station.slots.some((s) => s.state === 'running');
}

function fmtDuration(d) {
  if (typeof d !== 'number') return '';
  return d < 10 ? `${d.toFixed(2)} s` : `${d.toFixed(1)} s`;
}

const STATUS_TEXT = { queued: 'queued', running: 'running', passed: 'passed', failed: 'failed', skipped: 'skipped',
  stopped: 'stopped' };

function limitsText(m) {
  const parts = [];
  const has = (v) => v !== undefined && v !== null;
  if (has(m.min) && has(m.max)) parts.push(`${m.min} … ${m.max}`); // as the console writes them
  else if (has(m.min)) parts.push(`≥ ${m.min}`);
  else if (has(m.max)) parts.push(`≤ ${m.max}`);
  if (m.gt !== undefined && m.gt !== null) parts.push(`> ${m.gt}`);
  if (m.lt !== undefined && m.lt !== null) parts.push(`< ${m.lt}`);
  if (m.nominal !== undefined && m.nominal !== null) {
    parts.push(`${m.nominal} ± ${m.tolerance ?? `${m.tolerance_pct}%`}`);
  }
  if (m.expect !== undefined && m.expect !== null) parts.push(`= ${m.expect}`);
  if (m.match) parts.push(`~ ${m.match}`);
  return parts.join(', ');
}

// One row, cloned for each test (a clone is far cheaper than building the row
// element by element, and a run may list thousands of tests).
let rowTemplate = null;
function testRow(t) {
  if (!rowTemplate) {
    rowTemplate = el('li', 'test');
    const line = el('div', 'test-line');
    line.append(el('span', 'badge'), el('span', 'name'), el('span', 'duration'), el('span', 'message'));
    rowTemplate.append(line, el('ul', 'measurements'), el('ul', 'output'));
    rowTemplate.setAttribute('role', 'listitem'); // of the tests' list: its chunk's ul has role none
  }
  const li = rowTemplate.cloneNode(true);
  li.setAttribute('data-id', t.id);
  // the row's parts, kept so that redrawing a row looks nothing up (walked by sibling:
  // destructuring a live HTMLCollection runs its iterator, a third of a row's cost)
  const line = li.firstElementChild;
  const measurements = line.nextElementSibling;
  const badge = line.firstElementChild;
  const name = badge.nextElementSibling;
  const duration = name.nextElementSibling;
  li.parts = { badge, name, duration, message: duration.nextElementSibling, measurements,
    output: measurements.nextElementSibling };
  return li;
}

// The rows sit in chunks of CHUNK tests. The browser skips the style and layout of a
// chunk out of view (content-visibility on the chunk; on each of thousands of rows it
// cost more than it saved), so a change to a row far from the view costs no rendering
// work. A chunk's rows are made when one of its tests changes or it comes near the
// view, and the rest when the page is idle or the run has ended: a run's first frame
// makes the chunks, not its thousands of rows, and the events that come meanwhile do
// not wait for them.
const CHUNK = 50;
const ROW_REM = 2.2; // a row's height before it is drawn (a chunk's placeholder height)
let chunkTemplate = null;
function chunkOf() {
  if (!chunkTemplate) {
    chunkTemplate = el('li', 'chunk');
    chunkTemplate.setAttribute('role', 'none');
    const ul = el('ul', 'chunk-rows');
    ul.setAttribute('role', 'none');
    chunkTemplate.append(ul);
  }
  return chunkTemplate.cloneNode(true);
}

// The list's chunks for the run's tests in order (s.order). In a new run (all) every
// chunk is emptied: none keeps a row of another run. In the same run (a test that was
// not in the plan has come) a chunk whose tests did not change keeps its rows, and the
// view stays where it was.
function layoutList(tile, s, list, all) {
  if (!tile.near) {
    tile.near = new IntersectionObserver((entries) => {
      const slot = station.slots[station.tiles.indexOf(tile)];
      for (const e of entries) {
        // (an entry queued before its chunk left the list may still come)
        if (e.isIntersecting && !e.target.filled && slot && tile.chunks.includes(e.target)) fillChunk(tile, slot, e.target);
      }
    }, { root: list, rootMargin: '100% 0px' });
  }
  const old = tile.chunks ?? [];
  const rows = tile.rows ?? new Map();
  const chunks = [];
  tile.rows = new Map();
  tile.chunkAt = new Map();
  tile.unfilled = 0;
  for (let i = 0, k = 0; i < s.order.length; i += CHUNK, k++) {
    const ids = s.order.slice(i, i + CHUNK);
    let c = old[k];
    if (!all && c && c.ids.length === ids.length && c.ids.every((id, j) => id === ids[j])) {
      for (const id of ids) {
        tile.chunkAt.set(id, c);
        if (c.filled) tile.rows.set(id, rows.get(id));
      }
      if (c.filled) numberRows([...c.firstElementChild.children], i, s.order.length);
    } else {
      c ??= chunkOf();
      c.ids = ids;
      c.start = i;
      c.filled = false;
      c.firstElementChild.replaceChildren();
      // its height until filled, and out of view until drawn
      c.style.height = `${ids.length * ROW_REM}rem`;
      c.style.containIntrinsicSize = `auto ${ids.length * ROW_REM}rem`;
      for (const id of ids) tile.chunkAt.set(id, c);
      // observed again: the observer then reports it afresh, in view or not
      tile.near.unobserve(c);
      tile.near.observe(c);
    }
    if (!c.filled) tile.unfilled++;
    chunks.push(c);
  }
  for (const c of old.slice(chunks.length)) tile.near.unobserve(c);
  tile.chunks = chunks;
  if (chunks.length !== list.children.length || chunks.some((c, k) => list.children[k] !== c)) list.replaceChildren(...chunks);
  idleFill(tile);
}

// Makes a chunk's rows. The observer and the idle filler may come between a new run's
// events and its first frame: a chunk of tests the run does not have waits for that frame.
function fillChunk(tile, s, c) {
  if (c.filled || !c.ids.every((id) => s.tests.has(id))) return false;
  const rows = c.ids.map((id) => testRow(s.tests.get(id)));
  numberRows(rows, c.start, s.order.length);
  c.firstElementChild.replaceChildren(...rows);
  c.style.height = '';
  c.filled = true;
  tile.unfilled--;
  for (const li of rows) {
    tile.rows.set(li.dataset.id, li);
    fillRow(li, s.tests.get(li.dataset.id));
  }
  return true;
}

// A row's place in the whole list, for assistive technology: the rows drawn are a
// part of it (a chunk out of view is not in the accessibility tree).
function numberRows(rows, start, total) {
  const n = String(total);
  rows.forEach((li, j) => {
    li.setAttribute('aria-setsize', n);
    li.setAttribute('aria-posinset', String(start + j + 1));
  });
}

// Fills up to n unfilled chunks, first to last. -> whether it filled any.
function fillChunks(tile, s, n) {
  let any = false;
  for (const c of tile.chunks) {
    if (n <= 0 || !tile.unfilled) break;
    if (!c.filled && fillChunk(tile, s, c)) { any = true; n--; }
  }
  return any;
}

// The chunks nobody has needed yet, filled while the page has nothing else to do.
function idleFill(tile) {
  if (tile.idle || typeof requestIdleCallback !== 'function') return;
  tile.idle = requestIdleCallback(function more(deadline) {
    tile.idle = 0;
    const s = station.slots[station.tiles.indexOf(tile)];
    if (!s) return;
    while (tile.unfilled && deadline.timeRemaining() > 4) if (!fillChunks(tile, s, 1)) return;
    if (tile.unfilled) tile.idle = requestIdleCallback(more);
  });
}

// Sets a text only when it changed: an unchanged text costs no style or layout work.
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function fillRow(li, t) {
  // a row is reused for the same test id in the next run: its lists belong to the old one
  if (li.model !== t) {
    li.model = t;
    li.mrev = li.orev = -1;
  }
  const p = li.parts;
  if (li.dataset.status !== t.status) li.dataset.status = t.status;
  if (t.time && li.dataset.time !== t.time) li.dataset.time = t.time;
  setText(p.badge, STATUS_TEXT[t.status] ?? t.status);
  setText(p.name, t.attempt > 1 ? `${t.name} (attempt ${t.attempt})` : t.name);
  setText(p.duration, fmtDuration(t.duration));
  setText(p.message, t.message ?? '');
  // measurements and output lines are redrawn only when they changed
  if (li.mrev !== t.mrev) {
    li.mrev = t.mrev;
    drawMeasurements(p.measurements, t);
  }
  if (li.orev !== t.orev) {
    li.orev = t.orev;
    const lines = t.output.slice(-12);
    p.output.replaceChildren(...lines.map((o) => el('li', o.kind, o.text)));
  }
}

let measurementTemplate = null;
function drawMeasurements(ms, t) {
  if (!measurementTemplate) {
    measurementTemplate = el('li', 'measurement');
    measurementTemplate.append(el('span', 'm-name'), el('span', 'm-value'), el('span', 'm-limits'), el('span', 'm-status'));
  }
  ms.replaceChildren(...t.measurements.map((m) => {
    const row = measurementTemplate.cloneNode(true);
    row.setAttribute('data-status', m.status ?? 'passed');
    const name = row.firstElementChild;
    const value = name.nextElementSibling;
    const limits = value.nextElementSibling;
    const status = limits.nextElementSibling;
    name.textContent = m.name;
    value.textContent = `${m.value ?? '—'}${m.unit ? ` ${m.unit}` : ''}`;
    limits.textContent = limitsText(m);
    status.textContent = m.status === 'marginal' ? 'MARGINAL' : m.status === 'failed' ? 'OUT OF LIMITS' : '';
    return row;
  }));
}

function drawSlot(tile, s) {
  if (s.dirty.size === 0) return;
  const all = s.dirty.has('all');
  tile.dataset.state = s.state;
  if (s.runId) delete tile.dataset.pending;
  const list = $('.tests', tile);
  // tile.rows: test id -> its row, so that an event redraws one row without
  // searching the list (a search per event is O(tests), O(tests²) per run)
  if (all || s.dirty.has('list')) layoutList(tile, s, list, all);
  for (const id of s.dirty) {
    const t = s.tests.get(id);
    if (!t) continue;
    let li = tile.rows?.get(id);
    if (!li) {
      const c = tile.chunkAt.get(id);
      if (!c || !fillChunk(tile, s, c)) continue;
      li = tile.rows.get(id);
    }
    fillRow(li, t);
  }
  // a finished run's list is whole (as a page that reloads finds it)
  if (s.state !== 'running' && tile.unfilled) fillChunks(tile, s, Infinity);
  if (all || s.dirty.has('head') || s.dirty.has('verdict') || s.dirty.has('list')) drawHead(tile, s);
  if (all || s.dirty.has('dialogs')) drawDialogs(tile, s);
  if (all || s.dirty.has('errors')) {
    $('.errors', tile).replaceChildren(...s.errors.map((e) => el('li', 'error', e)));
  }
  if (s.current && s.current !== tile.wanted) tile.wanted = s.current;
  if (tile.wanted && tile.wanted !== tile.shownCurrent) follow(tile, s, list);
  s.dirty.clear();
}

// In a burst of quick tests the list follows the running test at most every FOLLOW_MS,
// not at every frame. Each scroll makes the browser lay out the rows that come near
// the view, and a quick run (thousands of tests a second) otherwise scrolled every
// frame past every row: most of the page's work. After a test that took QUICK_MS or
// more the next one is followed at once, as always; after a quicker one the list waits
// until FOLLOW_MS have passed since it last moved, and it always ends on the last test
// that ran.
const FOLLOW_MS = 100;
const QUICK_MS = 50;

function follow(tile, s, list) {
  const last = s.tests.get(tile.shownCurrent); // the test followed last (its duration: the run's own clock)
  const quick = typeof last?.duration === 'number' && last.duration * 1000 < QUICK_MS;
  const wait = (tile.followedAt ?? -Infinity) + FOLLOW_MS - performance.now();
  if (quick && wait > 0) {
    tile.followTimer ??= setTimeout(() => {
      tile.followTimer = null;
      s.dirty.add('follow');
      schedule();
    }, wait);
    return;
  }
  clearTimeout(tile.followTimer);
  tile.followTimer = null;
  tile.followedAt = performance.now();
  tile.shownCurrent = tile.wanted;
  const li = tile.rows?.get(tile.wanted);
  if (li) followRow(tile, list, li);
}

// Keeps the running test in view. Not scrollIntoView here: in the middle of a
// frame's changes it forces a layout of the whole list (the costliest step of a
// long run's frames). The observer reports the row after the browser's own
// layout, and only a row out of view is scrolled to.
function followRow(tile, list, li) {
  if (!tile.follow) {
    tile.follow = new IntersectionObserver((entries) => {
      for (const e of entries) {
        if (e.target === tile.followed && e.intersectionRatio < 1) e.target.scrollIntoView({ block: 'nearest' });
      }
    }, { root: list, threshold: 1 });
  }
  if (tile.followed) tile.follow.unobserve(tile.followed);
  tile.followed = li;
  tile.follow.observe(li);
}

function drawHead(tile, s) {
  const { done, total } = counts(s);
  $('.run-serial', tile).textContent = s.serial ? `Serial ${s.serial}` : '';
  $('.retest', tile).hidden = !s.retest;
  $('.run-status', tile).textContent = s.state === 'running' ? 'running' : s.state === 'finished' ? s.status : 'ready';
  $('.progress-text', tile).textContent = total ? `${done} / ${total} tests` : '';
  $('.progress-bar', tile).style.transform = `scaleX(${total ? done / total : 0})`;
  const cur = s.current ? s.tests.get(s.current) : null;
  $('.current', tile).textContent = cur ? `Now: ${cur.name}${cur.message ? ` — ${cur.message}` : ''}` : '';
  $('.stop-button', tile).disabled = s.state !== 'running';
  $('.start-button', tile).disabled = s.state === 'running';
  const v = verdictOf(s);
  const box = $('.verdict', tile);
  box.hidden = !v;
  if (v) {
    box.dataset.verdict = v.cls;
    $('.verdict-word', box).textContent = v.word;
    $('.verdict-detail', box).textContent = v.detail;
    $('.verdict-serial', box).textContent = s.serial ? `Serial ${s.serial}${s.retest ? ' · retest' : ''}` : '';
  }
  // ready for the next scan: after a verdict, or when nothing has the focus
  const idleFocus = !document.activeElement || document.activeElement === document.body;
  if (s.state !== 'running' && (s.dirty.has('verdict') || idleFocus)) $('.serial', tile).focus();
}

function drawDialogs(tile, s) {
  const box = $('.dialogs', tile);
  const shown = new Map([...box.children].map((c) => [c.dataset.id, c]));
  const cards = [];
  for (const d of s.dialogs.values()) {
    cards.push(shown.get(d.id) ?? renderDialog(d, s.slot, (value, errEl) => answer(s, d, value, errEl)));
  }
  const hadFocus = box.contains(document.activeElement);
  box.replaceChildren(...cards);
  const first = cards[0];
  if (first && !first.contains(document.activeElement)) {
    first.querySelector('[data-autofocus]')?.focus();
  } else if (!first && hadFocus) {
    $('.serial', tile).focus();
  }
}

function drawStats(st) {
  $('#station-name').textContent = st.station;
  const stand = st.stand?.location ? ` · ${st.stand.location}` : '';
  $('#suite-name').textContent = `Suite: ${st.suite}${stand}`;
  document.title = `${st.station} — hplua`;
  $('#stat-runs').textContent = String(st.stats.runs);
  const fpy = st.stats.first_pass_yield;
  $('#stat-fpy').textContent = typeof fpy === 'number' ? `${(fpy * 100).toFixed(1)}% (${st.stats.first_pass}/${st.stats.serials})` : '—';
  $('#stat-uploads').textContent = st.uploads_pending ?? '—';
  // retest marks live in the state, not in the events
  st.slots.forEach((x) => {
    const s = station.slots[x.slot - 1];
    if (s && x.run_id === s.runId && s.retest !== !!x.retest) { s.retest = !!x.retest; s.dirty.add('head'); schedule(); }
  });
}

function drawRuns(runs) {
  $('#runs-empty').hidden = runs.length > 0;
  $('#runs').replaceChildren(...runs.map((r) => {
    const tr = el('tr');
    tr.dataset.status = r.status;
    const time = r.started_at ? new Date(r.started_at).toLocaleTimeString() : '';
    const result = el('td', 'result', r.status.toUpperCase());
    if (r.retest) result.append(el('span', 'retest-mark', 'retest'));
    tr.append(el('td', null, time), el('td', 'serial-cell', r.serial), el('td', null, r.slot), result,
      el('td', 'failing', r.caused_failure ? `${r.caused_failure}${r.message ? `: ${r.message}` : ''}` : ''),
      el('td', null, fmtDuration(r.duration)));
    return tr;
  }));
}

// ---- set-up

function makeTile(s, many) {
  const tile = $('#slot-template').content.firstElementChild.cloneNode(true);
  tile.dataset.slot = String(s.slot);
  const title = $('.slot-title', tile);
  title.textContent = `Slot ${s.slot}`;
  title.hidden = !many;
  tile.setAttribute('aria-label', `Slot ${s.slot}`);
  const input = $('.serial', tile);
  input.id = `serial-${s.slot}`;
  if (station.regex) input.title = `pattern ${station.pattern}`;
  $('.start', tile).addEventListener('submit', (e) => { e.preventDefault(); start(tile, s); });
  $('.stop-button', tile).addEventListener('click', () => stop(s));
  input.addEventListener('input', () => { $('.form-error', tile).textContent = ''; });
  return tile;
}

async function main() {
  const sound = $('#sound');
  sound.checked = localStorage.getItem('hplua.sound') === 'on';
  sound.addEventListener('change', () => localStorage.setItem('hplua.sound', sound.checked ? 'on' : 'off'));
  const st = await api('GET', '/api/state');
  if (st.status !== 200) { setLink(`station answered ${st.status}`, 'down'); return; }
  station.pattern = st.doc.serial_pattern;
  try { station.regex = st.doc.serial_regex ? new RegExp(st.doc.serial_regex) : null; } catch { station.regex = null; }
  const many = st.doc.slots.length > 1;
  document.body.dataset.slots = String(st.doc.slots.length);
  for (const x of st.doc.slots) {
    const s = newSlot(x.slot);
    station.slots.push(s);
    const tile = makeTile(s, many);
    station.tiles.push(tile);
    $('#slots').append(tile);
  }
  if (many) {
    $('.all-slots').hidden = false;
    $('#start-all').addEventListener('click', startAll);
    $('#stop-all').addEventListener('click', stopAll);
  }
  drawStats(st.doc);
  draw();
  connect();
  refreshStats();
  if (typeof requestIdleCallback === 'function') requestIdleCallback(warmRows);
}

// The first rows a page lays out cost three to four times more than later ones (the
// fonts of the badge, the name, the figures and the output are set up then: 45-55 ms
// for a run's first 50 rows on a 2-core VM, 10-15 ms once done). The page lays out a
// hidden sample of each kind of row while it waits for the first run, so that cost is
// not paid in the first run's burst of events.
function warmRows() {
  const box = el('ol', 'tests warm-rows');
  box.setAttribute('aria-hidden', 'true');
  const sample = { id: 'warm::sample', name: 'sample 0000', status: 'passed', duration: 0.01, message: 'sample message',
    measurements: [{ name: 'v', value: 3.3, unit: 'V', min: 3.2, max: 3.4, status: 'marginal' }],
    output: [{ kind: 'proc', text: '▶ sample started' }, { kind: 'line', text: 'sample: 0123456789' }],
    attempt: 1, mrev: 1, orev: 1 };
  for (const status of ['queued', 'running', 'passed', 'failed', 'skipped', 'stopped']) {
    const li = testRow(sample);
    fillRow(li, { ...sample, status });
    box.append(li);
  }
  document.body.append(box);
  void box.offsetHeight; // lays the sample out now, in idle time
  box.remove();
}

main();
