// Shared helpers of the panel's browser tests: start a station, start Chromium.
import { spawn } from 'node:child_process';
import { readFileSync, existsSync, readdirSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const HERE = path.dirname(new URL(import.meta.url).pathname);
export const SUITE = path.join(HERE, '..', 'station', 'suite');

export function chromiumPath() {
  for (const p of [process.env.CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser']) {
    if (p && existsSync(p)) return p;
  }
  return null;
}

// Starts `hplua serve --port 0 ...args`; resolves { url, proc, stop() } once it listens.
export function startStation(hplua, args = [SUITE], env = {}) {
  return new Promise((resolve, reject) => {
    // the runs record their history in a private file, not the user's
    const history = path.join(mkdtempSync(path.join(tmpdir(), 'hplua-panel-')), 'history.db');
    const proc = spawn(hplua, ['serve', '--port', '0', ...args], { env: { ...process.env, HPLUA_HISTORY: history, ...env },
      stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stderr.on('data', (d) => { err += d; });
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/http:\/\/[^\s/]+\//);
      if (m && !proc.url) {
        proc.url = m[0];
        const stop = async () => {
          const code = await stopStation(proc);
          rmSync(path.dirname(history), { recursive: true, force: true });
          return code;
        };
        resolve({ url: m[0], proc, stop, output: () => out + err });
      }
    });
    proc.on('exit', (code) => { if (!proc.url) reject(new Error(`station exited ${code}: ${err}`)); });
  });
}

function stopStation(proc) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null) { resolve(proc.exitCode); return; }
    proc.on('exit', (code) => resolve(code));
    proc.kill('SIGINT');
  });
}

export async function launch() {
  const executablePath = chromiumPath();
  const args = ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--autoplay-policy=no-user-gesture-required'];
  return chromium.launch({ executablePath, headless: true, args });
}

export function children(pid) {
  const out = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid) out.push(Number(d));
    } catch { /* gone */ }
  }
  return out;
}

export function alive(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch { return false; }
}

export function shotsDir() {
  const dir = process.env.SCREENSHOTS ?? path.join(process.cwd(), 'screenshots');
  mkdirSync(dir, { recursive: true });
  return dir;
}

let failures = 0;
export function check(cond, what) {
  if (cond) console.log(`ok: ${what}`);
  else { failures++; console.log(`FAIL: ${what}`); }
}
export function failed() { return failures; }

export async function api(url, method, p, body) {
  const r = await fetch(url + p.replace(/^\//, ''), { method, headers: { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: r.status, doc: await r.json().catch(() => null) };
}
