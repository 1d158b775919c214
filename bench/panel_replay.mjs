// The panel's own cost, without the run and the station competing for the CPU:
// a 2,000-test run's event stream is recorded once from a real station, then replayed
// to the panel in Chromium by a small server of this script's, at the run's own pace
// (the events' times), in batches every 5 ms as the station sends them. Printed: how
// long each test_finished took from being sent to its row showing it (median, p99),
// and the renderer's main-thread time by kind (Chromium's Performance.getMetrics).
// The panel's files are served from web/ of the working tree, so a change to them is
// measured without a rebuild.
//   node bench/panel_replay.mjs HPLUA [--runs N] [--tests N] [--speed X] [--trace FILE] [--profile] [--smoke]
import http from 'node:http';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { startStation, launch, api, HERE } from '../tests/browser/lib.mjs';

const argv = process.argv.slice(2);
const opt = (name, dflt) => { const i = argv.indexOf(name); return i >= 0 ? Number(argv[i + 1]) : dflt; };
const HPLUA = path.resolve(argv[0] ?? 'build/hplua');
const SMOKE = argv.includes('--smoke'); // ctest: a 100-test run, once; every row must show its end
const RUNS = SMOKE ? 1 : opt('--runs', 3);
const TESTS = SMOKE ? 100 : opt('--tests', 2000);
const SPEED = opt('--speed', 1); // 2: the run's events twice as fast
const PROFILE = argv.includes('--profile'); // the panel's script functions by self time, first run
const TRACE = argv.includes('--trace') ? argv[argv.indexOf('--trace') + 1] : null; // a Chromium trace of the first run
const WEB = path.join(HERE, '..', '..', 'web');
const BATCH_MS = 5;

function pct(sorted, p) { return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]; }

// One run of a real station, as a panel receives it: the idle state and the frames.
async function record() {
  const st = await startStation(HPLUA);
  try {
    const state = (await api(st.url, 'GET', '/api/state')).doc;
    const runs = (await api(st.url, 'GET', '/api/runs?limit=20')).doc;
    let text = '';
    const req = http.get(new URL('/api/events', st.url), (res) => {
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
    });
    req.on('error', () => {});
    await new Promise((r) => setTimeout(r, 300));
    const serial = `N${TESTS}-replay`;
    const r = await api(st.url, 'POST', '/api/start', { serial });
    if (r.status !== 202) throw new Error(`start: ${r.status}`);
    for (;;) {
      if ((await api(st.url, 'GET', `/api/runs?serial=${serial}`)).doc.length) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    // the run's end reaches the stream once the run's process has exited (the station
    // holds it until then): wait for it, not for a fixed time (a slow build's station
    // may send it later than the run's record)
    for (let waited = 0; !text.includes('"type":"run_finished"'); waited += 50) {
      if (waited > 30000) throw new Error('the recorded stream has no run_finished');
      await new Promise((res) => setTimeout(res, 50));
    }
    await new Promise((res) => setTimeout(res, 100));
    req.destroy();
    // the SSE body, chunked: its frames are "id: ...\ndata: {...}\n\n"
    const frames = [...text.matchAll(/id: [^\n]*\ndata: [^\n]*\n\n/g)].map((m) => m[0]);
    const first = frames.findIndex((f) => f.includes('"type":"run_started"'));
    // the event's own time and run id become marks, set when the replay sends it (a
    // test's record holds times of its own: only the top-level member is the event's)
    const events = frames.slice(first).map((frame) => {
      const [, id, data] = frame.match(/^id: ([^\n]*)\ndata: ([^\n]*)\n\n$/);
      const ev = JSON.parse(data);
      const at = Date.parse(ev.time);
      ev.time = '@TIME@';
      ev.run_id = '@RUN@';
      return { frame: `id: ${id}\ndata: ${JSON.stringify(ev)}\n\n`, at };
    });
    const t0 = events[0].at;
    for (const e of events) e.at = Number.isNaN(e.at) ? 0 : (e.at - t0) / SPEED;
    return { state, runs, events };
  } finally {
    await st.stop();
  }
}

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml' };

// Serves web/ and the recorded API; /api/events replays the run when play() is called.
function server(rec) {
  const streams = new Set();
  const srv = http.createServer((req, res) => {
    const p = new URL(req.url, 'http://x').pathname;
    if (p === '/api/state') return res.end(JSON.stringify(rec.state));
    if (p === '/api/runs') return res.end(JSON.stringify(rec.runs));
    if (p === '/api/events') {
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store' });
      res.write('retry: 1000\n\n');
      streams.add(res);
      req.on('close', () => streams.delete(res));
      return undefined;
    }
    const file = path.join(WEB, p === '/' ? 'index.html' : path.normalize(p).replace(/^\/+/, ''));
    if (!file.startsWith(WEB)) { res.statusCode = 404; return res.end(); }
    try {
      res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'Cache-Control': 'no-store' });
      return res.end(readFileSync(file));
    } catch {
      res.statusCode = 404;
      return res.end();
    }
  });
  // plays the events at their pace, each with its own time set to when it is sent;
  // resolves with the count sent
  const play = (runId) => new Promise((resolve) => {
    const start = Date.now();
    let i = 0;
    const tick = () => {
      const now = Date.now();
      const stamp = new Date(now).toISOString().replace('Z', '+00:00');
      let out = '';
      while (i < rec.events.length && rec.events[i].at <= now - start) {
        out += rec.events[i].frame.replace('@TIME@', stamp).replace('@RUN@', runId);
        i++;
      }
      if (out) for (const s of streams) s.write(out);
      if (i < rec.events.length) setTimeout(tick, BATCH_MS); else resolve(i);
    };
    tick();
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve({ srv, play, url: `http://127.0.0.1:${srv.address().port}/` })));
}

async function main() {
  const rec = await record();
  const { srv, play, url } = await server(rec);
  const browser = await launch();
  const rows = [];
  try {
    for (let run = 0; run < RUNS; run++) {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const cdp = await page.context().newCDPSession(page);
      await cdp.send('Performance.enable');
      await page.goto(url);
      await page.locator('#link', { hasText: 'live' }).waitFor();
      await page.evaluate(() => {
        window.__lat = [];
        new MutationObserver((muts) => {
          const now = Date.now();
          for (const m of muts) {
            const li = m.target;
            if (li.dataset.status === 'passed' && li.dataset.time && li.matches('li.test')) window.__lat.push(now - Date.parse(li.dataset.time));
          }
        }).observe(document.querySelector('#slots'), { subtree: true, attributes: true, attributeFilter: ['data-status'] });
      });
      const metrics = async () => Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value]));
      if (TRACE && run === 0) await browser.startTracing(page, { path: TRACE, categories: ['devtools.timeline', 'disabled-by-default-devtools.timeline', 'toplevel', 'blink', 'v8', 'cc'] });
      if (PROFILE && run === 0) { await cdp.send('Profiler.enable'); await cdp.send('Profiler.setSamplingInterval', { interval: 100 }); await cdp.send('Profiler.start'); }
      const m0 = await metrics();
      const t0 = Date.now();
      await play(`replay-${run}`);
      await page.waitForFunction(() => document.querySelector('.verdict-word')?.textContent === 'PASS', null,
        { polling: 250, timeout: 120000 });
      const wall = Date.now() - t0;
      const m1 = await metrics();
      if (TRACE && run === 0) await browser.stopTracing();
      if (PROFILE && run === 0) {
        const { profile } = await cdp.send('Profiler.stop');
        const self = new Map();
        const dt = profile.timeDeltas;
        const byId = new Map(profile.nodes.map((n) => [n.id, n]));
        profile.samples.forEach((id, i) => {
          const n = byId.get(id);
          const k = `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.split('/').pop()}:${n.callFrame.lineNumber + 1}`;
          self.set(k, (self.get(k) ?? 0) + (dt[i] ?? 0));
        });
        for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`${(v / 1000).toFixed(1).padStart(8)} ms  ${k}`);
      }
      const lat = (await page.evaluate(() => window.__lat)).sort((a, b) => a - b);
      const d = (k) => Math.round((m1[k] - m0[k]) * 1000);
      rows.push({ tests: lat.length, median_ms: pct(lat, 50), p99_ms: pct(lat, 99), wall_ms: wall,
        task_ms: d('TaskDuration'), script_ms: d('ScriptDuration'), layout_ms: d('LayoutDuration'),
        style_ms: d('RecalcStyleDuration') });
      await page.close();
    }
  } finally {
    await browser.close();
    srv.close();
  }
  const last = rec.events.length ? rec.events[rec.events.length - 1].at : 0;
  console.log(`panel replay: ${rec.events.length} events of a ${TESTS}-test run over ${Math.round(last)} ms, ${RUNS} runs`);
  console.log('median_ms p99_ms  task_ms script_ms layout_ms style_ms  (the renderer\'s main thread)');
  for (const r of rows) {
    console.log(`${String(r.median_ms).padStart(9)} ${String(r.p99_ms).padStart(6)} ${String(r.task_ms).padStart(8)} ${String(r.script_ms).padStart(9)} ${String(r.layout_ms).padStart(9)} ${String(r.style_ms).padStart(8)}  (${r.tests} rows)`);
  }
  // the suite's N quick tests and its 3 others: every row seen passing once
  const bad = rows.filter((r) => r.tests !== TESTS + 3);
  if (bad.length) {
    console.log(`FAILED: ${bad.map((r) => r.tests).join(', ')} rows seen passing, not ${TESTS + 3}`);
    process.exit(1);
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
