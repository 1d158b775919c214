// The hub's page: one GET /api/hub?days=N, drawn into three tables; refreshed every 30 s.
const $ = (sel) => document.querySelector(sel);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function pct(y) { return typeof y === 'number' ? `${(y * 100).toFixed(1)}%` : '—'; }

function yieldCell(y) {
  const td = el('td', 'yield', pct(y));
  if (typeof y === 'number') td.dataset.level = y >= 0.95 ? 'high' : y >= 0.8 ? 'mid' : 'low';
  return td;
}

function when(iso) {
  if (!iso) return '';
  const d = new Date(iso.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00'));
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

function draw(doc) {
  $('#database').textContent = doc.database;
  let runs = 0, passed = 0;
  for (const s of doc.stations) { runs += s.runs; passed += s.passed; }
  $('#stat-runs').textContent = runs;
  $('#stat-yield').textContent = runs ? pct(passed / runs) : '—';
  $('#stat-stations').textContent = doc.stations.length;
  const last = new Map();
  for (const r of doc.last_runs) {
    if (!last.has(r.station)) last.set(r.station, []);
    last.get(r.station).push(r);
  }
  $('#stations-empty').hidden = doc.stations.length > 0;
  $('#stations').replaceChildren(...doc.stations.map((s) => {
    const chips = el('td');
    for (const r of last.get(s.station) || []) {
      const c = el('span', 'run-chip', r.serial || r.run_id.slice(0, 8));
      c.dataset.status = r.status;
      c.title = `${r.status} ${when(r.started_at)}${r.caused_failure ? ` — ${r.caused_failure}` : ''}`;
      chips.append(c);
    }
    const tr = el('tr');
    const name = el('th', null, s.station);
    name.scope = 'row';
    tr.append(name, el('td', null, s.runs), yieldCell(s.yield), yieldCell(s.first_pass_yield), chips);
    return tr;
  }));
  $('#tests').replaceChildren(...doc.tests.map((t) => {
    const tr = el('tr');
    tr.append(el('td', 'serial-cell', t.test_id), el('td', null, t.runs), el('td', null, t.failed), yieldCell(t.yield));
    return tr;
  }));
  $('#failures-empty').hidden = doc.failures.length > 0;
  $('#failures').replaceChildren(...doc.failures.map((f) => {
    const tr = el('tr');
    tr.append(el('td', null, when(f.started_at)), el('td', null, f.station), el('td', 'serial-cell', f.serial || ''),
      el('td', null, f.test_id), el('td', 'error', f.error || ''));
    return tr;
  }));
}

async function refresh() {
  const days = $('#period').value;
  const link = $('#link');
  try {
    const res = await fetch(`/api/hub?days=${encodeURIComponent(days)}`, { credentials: 'same-origin' });
    const doc = await res.json();
    if (!res.ok) throw new Error(doc.error || `the hub answered ${res.status}`);
    $('#error').hidden = true;
    draw(doc);
    link.textContent = `updated ${new Date().toLocaleTimeString()}`;
    link.dataset.state = 'live';
  } catch (e) {
    $('#error').textContent = e.message;
    $('#error').hidden = false;
    link.textContent = 'database unreachable';
    link.dataset.state = 'down';
  }
}

$('#period').addEventListener('change', refresh);
refresh();
setInterval(refresh, 30000);
