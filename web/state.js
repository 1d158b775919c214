// The panel's model: the run state of each slot, folded from the event stream
// (API section 6). No DOM here. Every change marks what the view must redraw.

export function newSlot(n) {
  return {
    slot: n, runId: null, serial: null, state: 'idle', status: null, lastSeq: 0,
    tests: new Map(), order: [], current: null, dialogs: new Map(), errors: [], verdict: null,
    retest: false, started: null, dirty: new Set(['all']), done: 0,
  };
}

function testOf(s, id) {
  let t = s.tests.get(id);
  if (!t) {
    t = { id, name: id.includes('::') ? id.slice(id.indexOf('::') + 2) : id, status: 'queued', duration: null,
          message: null, measurements: [], output: [], attempt: 1, time: null, mrev: 0, orev: 0 };
    s.tests.set(id, t);
    s.order.push(id);
    s.dirty.add('list');
  }
  return t;
}

// Every status change goes through here, which keeps the count of tests done (the
// progress line is drawn every frame: counting there would be O(tests) per frame).
const DONE = (status) => status !== 'queued' && status !== 'running';
function setStatus(s, t, status) {
  s.done += DONE(status) - DONE(t.status);
  t.status = status;
}

function resetFor(s, ev) {
  const n = s.slot;
  Object.assign(s, newSlot(n));
  s.runId = ev.run_id;
  s.state = 'running';
  s.serial = ev.serial ?? null;
  s.started = ev.time;
}

// Applies one event. Returns 'resync' when it shows that events were missed
// (a run whose start this page never saw): the caller reconnects from scratch.
export function apply(s, ev) {
  if (ev.run_id !== s.runId) {
    if (ev.type !== 'run_started') return ev.seq > 1 ? 'resync' : null;
    resetFor(s, ev);
  } else if (ev.seq <= s.lastSeq) {
    return null; // seen already (a replay after reconnecting)
  }
  s.lastSeq = ev.seq;
  const t = ev.test ? testOf(s, ev.test) : null;
  if (t) { t.time = ev.time; s.dirty.add(ev.test); }
  switch (ev.type) {
    case 'run_started':
      for (const id of ev.selected ?? []) testOf(s, id);
      s.dirty.add('head');
      break;
    case 'test_started':
      setStatus(s, t, 'running'); t.attempt = ev.attempt ?? 1; t.message = null; t.duration = null;
      if (ev.name) t.name = ev.name;
      if (t.attempt > 1) { t.measurements = []; t.output = []; t.mrev++; t.orev++; }
      s.current = ev.test;
      s.dirty.add('head');
      break;
    case 'message':
      if (t) t.message = ev.text;
      else { s.runMessage = ev.text; s.dirty.add('head'); }
      break;
    case 'measurement': {
      const i = t.measurements.findIndex((m) => m.name === ev.name);
      if (i >= 0) t.measurements[i] = ev; else t.measurements.push(ev);
      t.mrev++;
      break;
    }
    case 'process_started':
      if (t) { t.output.push({ kind: 'proc', text: `▶ ${ev.name} started (pid ${ev.pid})` }); t.orev++; }
      break;
    case 'process_output':
      if (t) {
        t.output.push({ kind: 'line', text: `${ev.name}: ${ev.line ?? ev.text ?? ''}` });
        if (t.output.length > 200) t.output.splice(0, t.output.length - 200);
        t.orev++;
      }
      break;
    case 'process_ended': {
      const how = ev.signal ? `signal ${ev.signal}` : `exit ${ev.exit_code}`;
      const line = { kind: 'proc', text: `■ ${ev.name} ended: ${how}${ev.timed_out ? ', timed out' : ''}` +
        (typeof ev.duration === 'number' ? ` (${ev.duration.toFixed(2)} s)` : '') };
      if (t) { t.output.push(line); t.orev++; }
      break;
    }
    case 'dialog_requested':
      s.dialogs.set(ev.id, ev);
      s.dirty.add('dialogs');
      break;
    case 'dialog_answered':
      s.dialogs.delete(ev.id);
      s.dirty.add('dialogs');
      if (t) t.message = `answered ${Array.isArray(ev.value) ? ev.value.join(', ') : String(ev.value)}`;
      break;
    case 'test_finished':
      setStatus(s, t, ev.status); t.duration = ev.duration ?? null;
      if (ev.error?.message) t.message = ev.error.message;
      else if (ev.skip_reason) t.message = ev.skip_reason;
      if (s.current === ev.test) s.current = null;
      s.dirty.add('head');
      break;
    case 'collection_error':
      s.errors.push(`${ev.file ?? '?'}:${ev.line ?? 0}: ${ev.message}`);
      s.dirty.add('errors');
      break;
    case 'run_error':
      s.errors.push(ev.file ? `${ev.file}:${ev.line ?? 0}: ${ev.message}` : ev.message);
      s.dirty.add('errors');
      break;
    case 'info':
      if (ev.dut?.serial) s.serial = ev.dut.serial;
      s.dirty.add('head');
      break;
    case 'run_finished':
      s.state = 'finished'; s.status = ev.status; s.verdict = ev; s.current = null;
      s.dialogs.clear();
      for (const x of s.tests.values()) {
        if (x.status === 'running' && ev.status === 'stopped') { setStatus(s, x, 'stopped'); s.dirty.add(x.id); }
      }
      s.dirty.add('head'); s.dirty.add('dialogs'); s.dirty.add('verdict');
      break;
    default:
      break;
  }
  return ev.type;
}

// The verdict as the operator reads it: word, the failing test and its message.
export function verdictOf(s) {
  const v = s.verdict;
  if (!v) return null;
  if (v.status === 'passed') return { word: 'PASS', cls: 'pass', detail: '' };
  if (v.status === 'stopped') return { word: 'STOPPED', cls: 'stopped', detail: v.message ?? 'stopped by the operator' };
  const id = v.caused_failure;
  const t = id ? s.tests.get(id) : null;
  let detail = t ? `${t.name}: ${t.message ?? 'failed'}` : (s.errors[0] ?? v.message ?? 'the run failed');
  if (!t && id) detail = id;
  return { word: 'FAIL', cls: 'fail', detail };
}

export function counts(s) {
  return { done: s.done, total: s.tests.size };
}
