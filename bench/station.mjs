// Station benchmarks (hplua serve), side by side:
//   1. event -> page DOM latency over an N-test run (median, p99), in Chromium
//   2. an N-test run's duration with no SSE client and with 20 (the quicker of two each), and
//      the station's RSS
//   3. the station's CPU while it idles
// node bench/station.mjs HPLUA [--smoke] [--floor]      (needs tests/browser's node_modules)
//   --floor: the latency with the least page any panel could be, in place of the panel (the
//   station's /, routed by the browser): it parses each event and sets its row's status at
//   once, with no frame, no text and no layout to speak of. What it measures is the way
//   there (run, station, socket, browser) on this machine, which no panel can go below.
import net from 'node:net';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { startStation, launch, api } from '../tests/browser/lib.mjs';

const HPLUA = path.resolve(process.argv[2] ?? 'build/hplua');
const SMOKE = process.argv.includes('--smoke');
const FLOOR = process.argv.includes('--floor');
const N = SMOKE ? 100 : 2000;
const CLIENTS = SMOKE ? 3 : 20;
const IDLE_S = SMOKE ? 1 : 10;
let runNo = 0;

function procStat(pid) {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime, clock ticks
}

function rssKb(pid, field = 'VmHWM') {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`${field}:\\s+(\\d+)`));
  return m ? Number(m[1]) : 0;
}

async function runOnce(st) {
  const serial = `N${N}-${++runNo}`;
  const t0 = Date.now();
  let r = await api(st.url, 'POST', '/api/start', { serial });
  // the last run is recorded a moment before its process has ended and the slot is free
  for (let i = 0; r.status === 409 && i < 50; i++) {
    await new Promise((res) => setTimeout(res, 100));
    r = await api(st.url, 'POST', '/api/start', { serial });
  }
  if (r.status !== 202) throw new Error(`start: ${r.status} ${JSON.stringify(r.doc)}`);
  for (;;) {
    const runs = (await api(st.url, 'GET', `/api/runs?serial=${serial}`)).doc;
    if (runs.length) return { wall: (Date.now() - t0) / 1000, duration: runs[0].duration, status: runs[0].status };
    await new Promise((res) => setTimeout(res, 100));
  }
}

function sseClients(url, n) {
  const u = new URL(url);
  const socks = [];
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const s = net.connect(Number(u.port), u.hostname);
    s.on('data', (d) => { bytes += d.length; });
    s.on('error', () => {});
    s.write(`GET /api/events HTTP/1.1\r\nHost: ${u.host}\r\n\r\n`);
    socks.push(s);
  }
  return { close: () => socks.forEach((s) => s.destroy()), bytes: () => bytes };
}

// One plain event-stream client, in a process of its own (this one is busy driving the
// browser): for each test_finished, the time from the event to its bytes on the socket
// (the run's sink, the station, the socket; no browser). Answers when its stdin closes.
const PLAIN = `
const net = require('node:net');
const u = new URL(process.argv[1]);
const s = net.connect(Number(u.port), u.hostname);
let lat = [], text = '';
s.setEncoding('utf8');
s.on('data', (d) => {
  const now = Date.now();
  text += d;
  const end = text.lastIndexOf('\\n');
  for (const m of text.slice(0, end).matchAll(/"time":"([^"]*)","type":"test_finished"/g)) lat.push(now - Date.parse(m[1]));
  text = text.slice(end + 1);
});
s.write('GET /api/events HTTP/1.1\\r\\nHost: ' + u.host + '\\r\\n\\r\\n');
process.stdin.on('data', () => { lat = []; });
process.stdin.on('end', () => { process.stdout.write(JSON.stringify(lat)); process.exit(0); });
`;

function sseLatency(url) {
  const p = spawn(process.execPath, ['-e', PLAIN, url], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  p.stdout.on('data', (d) => { out += d; });
  const done = new Promise((res) => p.on('exit', res));
  return {
    reset: () => p.stdin.write('\n'),
    result: async () => { p.stdin.end(); await done; return JSON.parse(out || '[]').sort((x, y) => x - y); },
  };
}

const FLOOR_PAGE = `<!doctype html><meta charset="utf-8"><title>floor</title>
<span id="link"></span><p class="verdict-word"></p><ul id="slots"></ul>
<script>
(async () => {
  const list = document.getElementById('slots');
  const rows = new Map();
  const r = await fetch('/api/events', { cache: 'no-store' });
  document.getElementById('link').textContent = 'live';
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let rest = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    const text = rest + value;
    const end = text.lastIndexOf('\\n\\n');
    if (end < 0) { rest = text; continue; }
    rest = text.slice(end + 2);
    for (const line of text.slice(0, end).split('\\n')) {
      if (!line.startsWith('data: ')) continue;
      const ev = JSON.parse(line.slice(6));
      if (ev.type === 'run_started') {
        rows.clear();
        list.replaceChildren(...(ev.selected || []).map((id) => {
          const li = document.createElement('li');
          li.dataset.id = id;
          rows.set(id, li);
          return li;
        }));
        document.querySelector('.verdict-word').textContent = '';
      } else if (ev.type === 'test_finished') {
        const li = rows.get(ev.test);
        if (li) { li.dataset.time = ev.time; li.dataset.status = ev.status; }
      } else if (ev.type === 'run_finished') {
        document.querySelector('.verdict-word').textContent = ev.status === 'passed' ? 'PASS' : 'FAIL';
      }
    }
  }
})();
</script>`;

function pct(sorted, p) { return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]; }

async function main() {
  const st = await startStation(HPLUA);
  const pid = st.proc.pid;
  const out = {};
  try {
    // 1. latency in the browser
    const browser = await launch();
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    // when each test_finished reached the page's script (the panel reads the stream with
    // fetch): splits the latency into the way there (run, station, socket) and the page's part
    await page.addInitScript(() => {
      window.__arrived = new Map();
      const fetch0 = window.fetch;
      window.fetch = async (...args) => {
        const r = await fetch0(...args);
        if (!String(args[0]).endsWith('/api/events') || !r.body) return r;
        const dec = new TextDecoder();
        const seen = new TransformStream({
          transform(chunk, ctl) {
            const now = Date.now();
            for (const m of dec.decode(chunk, { stream: true }).matchAll(/"test":"([^"\\]*)","time":"[^"]*","type":"test_finished"/g)) {
              window.__arrived.set(m[1], now);
            }
            ctl.enqueue(chunk);
          },
        });
        return new Response(r.body.pipeThrough(seen), { status: r.status, headers: r.headers });
      };
    });
    if (FLOOR) await page.route((u) => u.pathname === '/', (route) => route.fulfill({ contentType: 'text/html', body: FLOOR_PAGE }));
    await page.goto(st.url);
    await page.locator('#link', { hasText: 'live' }).waitFor();
    await page.evaluate(() => {
      window.__lat = [];
      window.__way = [];
      window.__page = [];
      new MutationObserver((muts) => {
        const now = Date.now();
        for (const m of muts) {
          const li = m.target;
          if (m.attributeName === 'data-status' && li.dataset.status === 'passed' && li.dataset.time) {
            const at = Date.parse(li.dataset.time);
            window.__lat.push(now - at);
            const arrived = window.__arrived.get(li.dataset.id);
            if (arrived) { window.__way.push(arrived - at); window.__page.push(now - arrived); }
          }
        }
      }).observe(document.querySelector('#slots'), { subtree: true, attributes: true, attributeFilter: ['data-status'] });
    });
    const plain = sseLatency(st.url);
    await new Promise((res) => setTimeout(res, 500));
    plain.reset();
    const withPage = await runOnce(st);
    // polled 4 times a second: a locator's wait would query the page every frame, adding its
    // own work to the page being measured
    await page.waitForFunction(() => document.querySelector('.verdict-word')?.textContent === 'PASS', null,
      { polling: 250, timeout: 120000 });
    const got = await page.evaluate(() => ({ lat: window.__lat, way: window.__way, page: window.__page }));
    const lat = got.lat.sort((a, b) => a - b);
    const part = (a) => { a.sort((x, y) => x - y); return { median_ms: pct(a, 50), p99_ms: pct(a, 99) }; };
    out.latency = { tests: lat.length, median_ms: pct(lat, 50), p99_ms: pct(lat, 99), max_ms: lat[lat.length - 1],
      // the event's time to its bytes on a plain socket, and in the page's script; from there to the DOM
      to_socket: part(await plain.result()), to_page: part(got.way), in_page: part(got.page) };
    out.run_with_page = withPage;
    await browser.close();

    // 2. run time with no client and with CLIENTS clients, twice each, alternating: the
    // machine is shared, and the quicker of two runs is the one less disturbed by others
    const none = [];
    const many = [];
    let streamed = 0;
    for (let round = 0; round < 2; round++) {
      none.push((await runOnce(st)).duration);
      const c = sseClients(st.url, CLIENTS);
      // let every client take its replay (the last runs) before the measured run
      for (let last = -1; c.bytes() !== last;) {
        last = c.bytes();
        await new Promise((res) => setTimeout(res, 500));
      }
      const replayed = c.bytes();
      many.push((await runOnce(st)).duration);
      streamed = c.bytes() - replayed;
      c.close();
    }
    out.run = { tests: N, none_s: none, clients: CLIENTS, with_clients_s: many,
      ratio: Math.min(...many) / Math.min(...none), streamed_mb: streamed / 1048576 };
    out.rss = { peak_mb: rssKb(pid) / 1024, now_mb: rssKb(pid, 'VmRSS') / 1024 };

    // 3. idle CPU
    await new Promise((res) => setTimeout(res, 500));
    const t0 = procStat(pid);
    await new Promise((res) => setTimeout(res, IDLE_S * 1000));
    const ticks = procStat(pid) - t0;
    out.idle = { seconds: IDLE_S, cpu_percent: (100 * ticks) / 100 / IDLE_S };
  } finally {
    await st.stop();
  }
  console.log(JSON.stringify(out, null, 2));
  const goals = [
    ['event -> DOM median <= 50 ms', out.latency.median_ms <= 50],
    ['event -> DOM p99 <= 200 ms', out.latency.p99_ms <= 200],
    [`run with ${CLIENTS} clients <= 1.2x`, out.run.ratio <= 1.2],
    ['station RSS < 50 MB', out.rss.peak_mb < 50],
    ['idle CPU < 1%', out.idle.cpu_percent < 1],
  ];
  for (const [what, ok] of goals) console.log(`${ok ? 'met' : 'MISSED'}: ${what}`);
  // smoke mode checks that the bench runs; the goals are judged on full-size runs
  if (!SMOKE && goals.some(([, ok]) => !ok)) process.exitCode = 1;
}

main().catch((e) => { console.error(e); process.exit(1); });
