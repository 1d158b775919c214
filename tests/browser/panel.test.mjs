// Browser tests of the station panel: Debian's Chromium driven by playwright-core.
//   node panel.test.mjs HPLUA [SCREENSHOT_DIR]
// Every wait is on what the operator sees (locators), never a fixed sleep.
import path from 'node:path';
import { startStation, launch, check, failed, alive, children, api, shotsDir, SUITE } from './lib.mjs';

const HPLUA = path.resolve(process.argv[2] ?? 'build/hplua');
if (process.argv[3]) process.env.SCREENSHOTS = process.argv[3];
const SHOTS = shotsDir();
const T = 45000;

async function row(page, name) {
  return page.locator('li.test', { has: page.locator('.name', { hasText: new RegExp(`^${name}`) }) });
}

async function statusOf(page, name) {
  return (await row(page, name)).getAttribute('data-status', { timeout: T });
}

async function waitStatus(page, name, status) {
  await page.locator(`li.test[data-status="${status}"]`, { has: page.locator('.name', { hasText: new RegExp(`^${name}`) }) })
    .waitFor({ timeout: T });
}

// The dialog of that kind, once it has the focus (as an operator looks before typing:
// the card of the dialog answered just before may still be shown, and hold it, for a frame)
async function dialog(page, kind) {
  const d = page.locator(`.dialog[data-kind="${kind}"]`);
  await d.waitFor({ timeout: T });
  await page.waitForFunction((k) => document.activeElement?.closest('.dialog')?.dataset.kind === k, kind, { timeout: T });
  return d;
}

async function snapshot(page) {
  return page.evaluate(() => ({
    tests: [...document.querySelectorAll('li.test')].map((li) => `${li.dataset.id}=${li.dataset.status}`).join(','),
    dialogs: [...document.querySelectorAll('.dialog')].map((d) => d.dataset.id).join(','),
    serial: document.querySelector('.run-serial')?.textContent,
  }));
}

async function main() {
  const station = await startStation(HPLUA);
  const browser = await launch();
  const alerts = [];
  try {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await ctx.newPage();
    page.on('dialog', (d) => { alerts.push(d.message()); d.dismiss(); });
    page.on('pageerror', (e) => { check(false, `no script error in the page: ${e.message}`); });
    await page.goto(station.url);
    await page.locator('#link', { hasText: 'live' }).waitFor({ timeout: T });
    check(await page.locator('.serial').evaluate((e) => e === document.activeElement), 'the serial field has the focus');
    await page.screenshot({ path: path.join(SHOTS, 'idle.png') });

    // A malformed serial is refused in the page.
    await page.keyboard.type('BAD SERIAL');
    await page.keyboard.press('Enter');
    await page.locator('.form-error', { hasText: 'not a valid serial' }).waitFor({ timeout: T });
    check(true, 'a serial that does not match the pattern is refused in the page');
    await page.keyboard.press('Control+A');

    // Keyboard wedge: characters then Enter start the run.
    await page.keyboard.type('ALL-1', { delay: 5 });
    await page.keyboard.press('Enter');
    await waitStatus(page, 'power', 'passed');
    check(true, 'tests go live after a scanned serial + Enter');
    const msg = page.locator('li.test .message', { hasText: '<script>alert(1)</script>' });
    await msg.waitFor({ timeout: T });
    check(true, 'test output with <script> shows as text');
    const icc = page.locator('.measurement', { hasText: 'icc' });
    await icc.waitFor({ timeout: T });
    check(await icc.getAttribute('data-status') === 'marginal' && (await icc.textContent()).includes('MARGINAL'),
      'a marginal measurement is marked');
    check((await page.locator('.measurement', { hasText: 'vcc' }).textContent()).includes('3.2 … 3.4'),
      'measurement limits are shown as people write them');

    // confirm: the Yes button has the focus; Enter answers.
    const confirm = await dialog(page, 'confirm');
    await page.screenshot({ path: path.join(SHOTS, 'dialog.png') });
    check(await confirm.locator('.yes').evaluate((e) => e === document.activeElement), 'confirm dialog: Yes has the focus');

    // A second page and a reload mid-run show the same live state.
    const page2 = await ctx.newPage();
    await page2.goto(station.url);
    await page2.locator('.dialog[data-kind="confirm"]').waitFor({ timeout: T });
    await page.reload();
    await page.locator('.dialog[data-kind="confirm"]').waitFor({ timeout: T });
    const [a, b] = [await snapshot(page), await snapshot(page2)];
    check(a.tests === b.tests && a.dialogs === b.dialogs && a.tests.includes('passed'),
      'reload and a second page mid-run show the same state');
    await page.screenshot({ path: path.join(SHOTS, 'running.png') });

    await page.keyboard.press('Enter');
    await page2.locator('.dialog[data-kind="confirm"]').waitFor({ state: 'detached', timeout: T });
    check(true, 'an answer in one page clears the dialog in the other');

    // text
    await dialog(page, 'text');
    await page.keyboard.type('looks fine');
    await page.keyboard.press('Enter');
    // number: out of range is refused in the page, then a fitting one
    const num = await dialog(page, 'number');
    check((await num.textContent()).includes('1 … 5'), 'number dialog shows its range');
    await page.keyboard.type('9');
    await page.keyboard.press('Enter');
    await num.locator('.dialog-error', { hasText: 'At most 5' }).waitFor({ timeout: T });
    await page.keyboard.press('Control+A');
    await page.keyboard.type('3');
    await page.keyboard.press('Enter');
    // choice: arrow keys pick, Enter answers
    await dialog(page, 'choice');
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('Enter');
    // multi: space toggles, Tab moves
    await dialog(page, 'multi');
    await page.keyboard.press('Space');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Space');
    await page.keyboard.press('Enter');
    // image: the picture is served by the station; y answers
    const img = await dialog(page, 'image');
    await page.waitForFunction(() => document.querySelector('.dialog-image')?.naturalWidth > 0, null, { timeout: T });
    check(true, 'image dialog shows the suite image');
    check((await api(station.url, 'GET', '/api/dialogs/nope/image')).status === 404, 'no image without a pending dialog');
    await img.locator('.yes').focus();
    await page.keyboard.press('y');

    await page.locator('.verdict-word', { hasText: 'PASS' }).waitFor({ timeout: T });
    await page2.locator('.verdict-word', { hasText: 'PASS' }).waitFor({ timeout: T });
    check(true, 'PASS verdict in both pages');
    const answers = await page.locator('li.test .message').allTextContents();
    for (const want of ['answer: true', 'answer: looks fine', 'answer: 3', 'answer: green', 'answer: red,blue']) {
      check(answers.some((t) => t.includes(want)), `dialog answer arrived: ${want}`);
    }
    check(await page.locator('.serial').evaluate((e) => e === document.activeElement), 'after the verdict the serial field has the focus');
    await page.screenshot({ path: path.join(SHOTS, 'verdict-pass.png') });

    // FAIL: names the failing test and its message; a retest is marked.
    await page.keyboard.type('FAIL-1');
    await page.keyboard.press('Enter');
    await page.locator('.verdict-word', { hasText: 'FAIL' }).waitFor({ timeout: T });
    const detail = await page.locator('.verdict-detail').textContent();
    check(detail.includes('power') && detail.includes('vcc'), `FAIL names the test and its message (${detail})`);
    // the row of a test seen in the previous run shows this run's values, not the old ones
    const vcc = await page.locator('.measurement', { hasText: 'vcc' }).textContent();
    check(vcc.includes('2.9 V') && !vcc.includes('3.31'), `this run's measurement is shown (${vcc})`);
    await page.screenshot({ path: path.join(SHOTS, 'verdict-fail.png') });
    await page.keyboard.type('FAIL-1');
    await page.keyboard.press('Enter');
    await page.locator('.retest:visible').waitFor({ timeout: T });
    await page.locator('.verdict-word', { hasText: 'FAIL' }).waitFor({ timeout: T });
    check(true, 'a serial seen before is marked RETEST');
    await page.locator('#runs tr').nth(2).waitFor({ timeout: T });
    check((await page.locator('#stat-fpy').textContent()).includes('%'), 'recent runs and first-pass yield shown');

    // Stop mid-run, keyboard only: Tab from the serial field to Stop.
    await page.keyboard.type('SLOW-1');
    await page.keyboard.press('Enter');
    await waitStatus(page, 'soak', 'running');
    const st = (await api(station.url, 'GET', '/api/state')).doc;
    const pid = st.slots[0].pid;
    check(pid && alive(pid), 'the run child is running');
    await page.locator('.stop-button:enabled').waitFor({ timeout: T });
    await page.locator('.serial').focus();
    await page.keyboard.press('Tab'); // Start (disabled while running: skipped)
    if (!(await page.locator('.stop-button').evaluate((e) => e === document.activeElement))) await page.keyboard.press('Tab');
    check(await page.locator('.stop-button').evaluate((e) => e === document.activeElement), 'Stop is reachable with Tab');
    await page.keyboard.press('Enter');
    await page.locator('.verdict-word', { hasText: 'STOPPED' }).waitFor({ timeout: T });
    await page2.locator('.verdict-word', { hasText: 'STOPPED' }).waitFor({ timeout: T });
    // the verdict comes with the run's last event; the station records the run once its process is gone
    for (let i = 0; i < 200 && (await api(station.url, 'GET', '/api/state')).doc.slots[0].state === 'running'; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    check(!alive(pid), 'Stop leaves no run process (/proc)');
    const kids = children(station.proc.pid).filter((k) => k !== pid);
    check(kids.every((k) => !alive(k) || readCmd(k).includes('serve')), 'no process left but the engine watchdog');
    await page.screenshot({ path: path.join(SHOTS, 'verdict-stopped.png') });

    // A long list scrolls by itself: the running test stays in view (300 steps of 0.1 s: still
    // running when Stop is pressed, however far the page lags behind)
    await page.locator('.serial').fill('STEPS300-1');
    await page.locator('.serial').press('Enter');
    // (each step runs 0.1 s: too short to wait for one to show running)
    await page.waitForFunction(() => document.querySelector('li.test[data-id="1_board::step 030"]')?.dataset.status === 'passed',
      null, { timeout: T });
    const follow = [];
    for (let i = 0; i < 5; i++) {
      follow.push(await page.evaluate(() => {
        const li = document.querySelector('li.test[data-status="running"]');
        const list = document.querySelector('.tests');
        if (!li) return 'none running';
        const a = li.getBoundingClientRect();
        const l = list.getBoundingClientRect();
        if (a.top >= l.top - 1 && a.bottom <= l.bottom + 1) return 'in view';
        // a test that has just started, its row not scrolled to yet (a page behind a
        // loaded machine): the rows up to it are at most two rows past the view
        if (a.top >= l.top - 1 && a.top <= l.bottom + 2 * a.height) return 'in view (next)';
        return `${li.dataset.id} out of view`;
      }));
      await new Promise((r) => setTimeout(r, 350));
    }
    // a list that did not follow would leave the running test tens of rows below the view
    check(follow.filter((f) => f.startsWith('in view')).length >= 3 && (await page.locator('.tests').evaluate((e) => e.scrollTop)) > 0,
      `the running test is kept in view (${follow.join(', ')})`);
    // the rows sit in chunks drawn when needed: scrolled to the end mid-run, the rows of
    // tests not reached yet are there (queued, named) within a few frames, not a blank
    const atEnd = await page.evaluate(async () => {
      const list = document.querySelector('.tests');
      list.scrollTop = list.scrollHeight;
      const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
      for (let i = 0; i < 10; i++) {
        await frame();
        const rows = [...list.querySelectorAll('li.test')].slice(-3); // the list's last rows
        const all = list.querySelectorAll('li.test').length;
        if (rows.length && rows.at(-1).getAttribute('aria-posinset') === rows.at(-1).getAttribute('aria-setsize')) {
          return { frames: i + 1, rows: all, last: rows.map((li) => `${li.dataset.id}=${li.dataset.status}`).join(' '),
            named: rows.every((li) => { const n = li.querySelector('.name').textContent; return n !== '' && li.dataset.id.endsWith(`::${n}`); }) };
        }
      }
      return null;
    });
    check(atEnd && atEnd.named && atEnd.last.endsWith('=queued'),
      `scrolled to the end mid-run, the list shows its last rows (${JSON.stringify(atEnd)})`);
    await page.locator('.stop-button:enabled').click();
    await page.locator('.verdict-word', { hasText: 'STOPPED' }).waitFor({ timeout: T });
    check(alerts.length === 0, 'no alert() ever ran (test text is never HTML)');
  } finally {
    await browser.close();
    const code = await station.stop();
    check(code === 0, 'the station stops cleanly');
  }
  await slotsPanel();
  await resumePanel();
  if (failed()) { console.log(`${failed()} check(s) failed`); process.exit(1); }
  console.log('all checks passed');
}

// Two slots (serve --slots 2): one tile each, Start all starts every slot with a serial
// entered, Stop all stops them together.
async function slotsPanel() {
  const station = await startStation(HPLUA, ['--slots', '2', SUITE]);
  const browser = await launch();
  try {
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    page.on('pageerror', (e) => { check(false, `no script error in the slots page: ${e.message}`); });
    await page.goto(station.url);
    await page.locator('#link', { hasText: 'live' }).waitFor({ timeout: T });
    check(await page.locator('section.slot').count() === 2, 'slots: one tile per slot');
    await page.locator('#serial-1').fill('SLOW-A');
    await page.locator('#serial-2').fill('SLOW-B');
    await page.locator('#start-all').click();
    for (const n of [1, 2]) {
      await page.locator(`section.slot[data-slot="${n}"] li.test[data-status="running"]`).waitFor({ timeout: T });
    }
    const st = (await api(station.url, 'GET', '/api/state')).doc;
    check(st.slots.every((x) => x.state === 'running'), 'slots: Start all started both slots');
    check(st.slots[0].serial === 'SLOW-A' && st.slots[1].serial === 'SLOW-B', 'slots: each slot has its own serial');
    await page.locator('#stop-all:enabled').click();
    for (const n of [1, 2]) {
      await page.locator(`section.slot[data-slot="${n}"] .verdict-word`, { hasText: 'STOPPED' }).waitFor({ timeout: T });
    }
    check(true, 'slots: Stop all stopped both slots (each tile shows STOPPED)');
    // two tiles side by side fit the page: nothing scrolls sideways (a wide page hid the
    // header and the second tile's right edge)
    for (const width of [1280, 800, 400]) {
      await page.setViewportSize({ width, height: 900 });
      const wide = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      check(wide <= 0, `slots: the page fits ${width} px without sideways scrolling (${wide} px over)`);
    }
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.screenshot({ path: path.join(SHOTS, 'slots-stopped.png') });
  } finally {
    await browser.close();
    check(await station.stop() === 0, 'the slots station stops cleanly');
  }
}

// A page that falls behind is dropped by the station (here a 6 KiB queue: the first
// event of a 300-test run is over it) and reconnects with Last-Event-ID, as EventSource
// would; it still shows every test of the run, once.
async function resumePanel() {
  const station = await startStation(HPLUA, [SUITE], { HPLUA_SERVE_SSE_LIMIT: '6144' });
  const browser = await launch();
  try {
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    page.on('pageerror', (e) => { check(false, `no script error in the resuming page: ${e.message}`); });
    await page.addInitScript(() => {
      window.__streams = []; // the Last-Event-ID of each connection to /api/events
      const fetch0 = window.fetch;
      window.fetch = (input, init) => {
        if (String(input).endsWith('/api/events')) window.__streams.push(new Headers(init?.headers).get('Last-Event-ID'));
        return fetch0(input, init);
      };
    });
    await page.goto(station.url);
    await page.locator('#link', { hasText: 'live' }).waitFor({ timeout: T });
    // a first run of small events: the page has an event id when it is dropped
    await page.locator('.serial').fill('OK-1');
    await page.locator('.serial').press('Enter');
    await page.locator('.verdict-serial', { hasText: 'OK-1' }).waitFor({ timeout: T });
    await page.locator('.serial').fill('N300-resume');
    await page.locator('.serial').press('Enter');
    await page.locator('.verdict-serial', { hasText: 'N300-resume' }).waitFor({ timeout: T });
    check(await page.locator('.verdict-word').textContent() === 'PASS', 'the resumed page shows the verdict');
    const streams = await page.evaluate(() => window.__streams);
    check(streams[0] === null && streams.slice(1).some((id) => /^1:\d+$/.test(id ?? '')),
      `a dropped page reconnects with Last-Event-ID (${streams.map((id) => id ?? 'none').join(', ')})`);
    const rows = await page.locator('li.test').evaluateAll((lis) => lis.map((li) => li.dataset.status));
    check(rows.length === 303 && rows.every((st) => st === 'passed'),
      `the resumed page shows every test of the run once, passed (${rows.length} rows)`);
    check(await page.locator('.progress-text').textContent() === '303 / 303 tests', 'the resumed page counts 303 / 303');
  } finally {
    await browser.close();
    check(await station.stop() === 0, 'the resume station stops cleanly');
  }
}

import { readFileSync } from 'node:fs';
function readCmd(pid) {
  try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8'); } catch { return 'serve'; }
}

main().catch((e) => { console.error(e); process.exit(1); });
