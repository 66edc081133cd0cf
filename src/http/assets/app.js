// The Background Jobs page. Plain JS, no framework. Every piece of job data
// (args, errors, names, messages) is hostile text: it only ever reaches the
// page through textContent or an attribute value, never as HTML.
'use strict';

const state = {
  token: sessionStorage.getItem('porter-token') || '',
  me: null,
  tab: 'all',            // all | mine | queues
  filter: {},
  cursors: [],           // cursors of the pages before this one
  cursor: null,          // this page's cursor (null: newest)
  next: null,
  jobs: new Map(),       // id -> job shown on this page
  clockSkew: 0,          // server now - local now, ms
  stream: null,
  notified: new Set(),
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c != null) node.append(c);  // strings become text nodes
  return node;
}

// --- HTTP -------------------------------------------------------------------

async function api(method, path, body) {
  const headers = { 'X-Porter-Request': '1' };
  if (state.token) headers.Authorization = 'Bearer ' + state.token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await res.json().catch(() => ({}));
  if (res.status === 401) { showLogin('Please sign in.'); throw new Error('not signed in'); }
  if (!res.ok) throw new Error((data.error && data.error.message) || ('HTTP ' + res.status));
  return data;
}

function toast(text, bad) {
  const t = $('toast');
  t.textContent = text;
  t.className = 'toast' + (bad ? ' bad' : '');
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
}

// --- formatting ---------------------------------------------------------------

function fmtDuration(ms) {
  if (ms == null) return '';
  if (ms < 1000) return Math.round(ms) + ' ms';
  let s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  s %= 60;
  if (h) return h + 'h ' + String(m).padStart(2, '0') + 'm';
  if (m) return m + 'm ' + String(s).padStart(2, '0') + 's';
  return s + 's';
}

function fmtDate(ms) {
  if (ms == null) return '—';
  const d = new Date(ms), p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

const serverNow = () => Date.now() + state.clockSkew;

function runningMs(job) {
  if (job.state === 'running' && job.started_at != null) return serverNow() - job.started_at;
  return job.running_ms;
}

// --- sign in -------------------------------------------------------------------

function showLogin(message) {
  if (state.stream) state.stream.abort();
  $('app').hidden = true;
  $('logout').hidden = true;
  $('who').textContent = '';
  $('login').hidden = false;
  $('login-error').textContent = message || '';
}

async function signIn() {
  const res = await fetch('/api/me', { headers: state.token ? { Authorization: 'Bearer ' + state.token } : {} });
  if (!res.ok) return false;
  state.me = await res.json();
  $('login').hidden = true;
  $('app').hidden = false;
  $('logout').hidden = !state.token;
  $('title').textContent = state.me.title;
  document.title = state.me.title;
  $('who').textContent = state.me.user + (state.me.admin ? ' · superadmin' : '');
  $('tabs').hidden = !state.me.admin;           // a power user sees only their own list, no tabs
  $('owner-filter').hidden = !state.me.admin;
  state.tab = state.me.admin ? 'all' : 'mine';
  showTab(state.tab);
  startStream();
  return true;
}

// --- jobs list -----------------------------------------------------------------

function query() {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(state.filter)) if (v) q.set(k, v);
  if (state.tab === 'mine' && state.me.admin) q.set('owner', state.me.user);
  if (state.cursor != null) q.set('cursor', state.cursor);
  q.set('limit', '25');
  return q.toString();
}

async function loadJobs() {
  const page = await api('GET', '/api/jobs?' + query());
  state.clockSkew = page.now - Date.now();
  state.next = page.next;
  state.jobs = new Map(page.jobs.map((j) => [j.id, j]));
  const rows = $('job-rows');
  rows.replaceChildren(...page.jobs.map(jobRow));
  $('empty').hidden = page.jobs.length > 0;
  $('newer').disabled = state.cursors.length === 0;
  $('older').disabled = page.next == null;
  $('page-info').textContent = 'Page ' + (state.cursors.length + 1);
}

function statusBadge(job) {
  let label = job.state;
  if (job.scheduled) label = 'scheduled';
  if (job.state === 'running' && job.cancel_requested) label = 'aborting';
  return el('span', { class: 'badge ' + label, text: label });
}

function progressCell(job) {
  const pct = job.progress.percent;
  if (pct == null && job.state !== 'running') return el('span', { class: 'muted', text: job.state === 'completed' ? '100%' : '' });
  const shown = pct == null ? 0 : pct;
  const bar = el('div', { class: 'bar' + (pct == null ? ' unknown' : ''), role: 'progressbar',
    'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': String(Math.round(shown)) },
  el('div', { class: 'fill ' + job.state, style: '' }));
  bar.firstChild.style.width = shown.toFixed(1) + '%';
  const text = pct == null ? 'working…' : Math.floor(pct) + '%';
  const msg = job.progress.message ? el('div', { class: 'progress-msg', text: job.progress.message }) : null;
  return el('div', { class: 'progress' }, el('div', { class: 'progress-line' }, bar, el('span', { class: 'pct', text })), msg);
}

function errorsCell(job) {
  const n = job.error_count + job.item_error_count;
  if (!n) return el('span', { class: 'muted', text: '—' });
  return el('button', { class: 'errors', title: 'Show the errors', onclick: () => openDetails(job.id) },
    el('span', { class: 'bang', text: '!' }), String(n));
}

function actionsCell(job) {
  const cell = el('div', { class: 'actions' });
  const final = ['completed', 'failed', 'cancelled'].includes(job.state);
  if (state.me.notify && !final) {
    const done = state.notified.has(job.id);
    cell.append(el('button', { class: 'notify' + (done ? ' done' : ''), disabled: done ? '' : null,
      text: done ? '✓ Notify me when finished' : 'Notify me when finished', onclick: () => notify(job) }));
  }
  if (!final && !job.cancel_requested)
    cell.append(el('button', { class: 'abort', title: 'Abort this job', 'aria-label': 'Abort job ' + job.id,
      text: '✕', onclick: () => confirmAbort(job) }));
  if (job.state === 'failed' || job.state === 'cancelled')
    cell.append(el('button', { class: 'small', text: 'Retry', onclick: () => act(job, 'retry') }));
  if (final) cell.append(el('button', { class: 'small subtle', text: 'Discard', onclick: () => act(job, 'discard') }));
  return cell;
}

function jobRow(job) {
  const title = job.description || job.kind;
  const meta = [job.kind, 'queue ' + job.queue, job.owner ? 'by ' + job.owner : 'no owner'].join(' · ');
  return el('tr', { id: 'job-' + job.id, 'data-state': job.state },
    el('td', { class: 'desc' },
      el('button', { class: 'link title', text: title, onclick: () => openDetails(job.id) }),
      el('div', { class: 'meta', text: '#' + job.id + ' · ' + meta })),
    el('td', { class: 'date', text: fmtDate(job.created_at) }),
    el('td', { class: 'date', text: fmtDate(job.started_at) }),
    el('td', {}, statusBadge(job)),
    el('td', {}, progressCell(job)),
    el('td', { class: 'runtime', text: fmtDuration(runningMs(job)) }),
    el('td', {}, errorsCell(job)),
    el('td', {}, actionsCell(job)));
}

function updateJob(job) {
  if (!state.jobs.has(job.id)) return;
  state.jobs.set(job.id, job);
  const old = $('job-' + job.id);
  if (old) old.replaceWith(jobRow(job));
}

function tick() {  // running time, live
  for (const job of state.jobs.values()) {
    if (job.state !== 'running') continue;
    const cell = document.querySelector('#job-' + job.id + ' .runtime');
    if (cell) cell.textContent = fmtDuration(runningMs(job));
  }
}

// --- actions ---------------------------------------------------------------------

function confirmAbort(job) {
  $('confirm-text').textContent = `Abort "${job.description || job.kind}" (#${job.id})? This cannot be undone.`;
  const dialog = $('confirm');
  $('confirm-yes').onclick = async () => { dialog.close(); await act(job, 'cancel'); };
  $('confirm-no').onclick = () => dialog.close();
  dialog.showModal();
}

async function act(job, action) {
  try {
    const r = await api('POST', `/api/jobs/${job.id}/${action}`);
    toast(`Job #${job.id}: ${r.result.replace('_', ' ')}`);
    if (action === 'discard') await loadJobs();
    else updateJob(summaryOf(await api('GET', '/api/jobs/' + job.id)));
  } catch (e) { toast(e.message, true); }
}

async function notify(job) {
  try {
    await api('POST', `/api/jobs/${job.id}/notify`);
    state.notified.add(job.id);
    updateJob(state.jobs.get(job.id));
  } catch (e) { toast(e.message, true); }
}

const summaryOf = (details) => details;  // details carry every summary field

// --- details dialog ------------------------------------------------------------------

function section(title, ...content) { return el('section', { class: 'detail-section' }, el('h3', { text: title }), ...content); }

async function openDetails(id) {
  let job;
  try { job = await api('GET', '/api/jobs/' + id); } catch (e) { toast(e.message, true); return; }
  $('details-title').textContent = (job.description || job.kind) + ' · #' + job.id;
  const facts = el('dl', { class: 'facts' });
  const fact = (k, v) => facts.append(el('dt', { text: k }), el('dd', { text: v == null || v === '' ? '—' : String(v) }));
  fact('Status', job.state); fact('Kind', job.kind); fact('Queue', job.queue); fact('Owner', job.owner);
  fact('Attempt', `${job.attempt} of ${job.max_attempts}`); fact('Created', fmtDate(job.created_at));
  fact('Started', fmtDate(job.started_at)); fact('Finished', fmtDate(job.finished_at));
  fact('Running time', fmtDuration(runningMs(job))); fact('Lease held by', job.lease && job.lease.worker);
  const errors = el('ol', { class: 'error-list' },
    ...job.errors.map((e) => el('li', {},
      el('div', { class: 'error-head', text: `Attempt ${e.attempt} · ${fmtDate(e.at)}${e.permanent ? ' · permanent' : ''}` }),
      el('pre', { class: 'error-msg', text: e.message }))));
  const items = el('table', { class: 'grid items' },
    el('thead', {}, el('tr', {}, el('th', { text: 'Item' }), el('th', { text: 'Error' }))),
    el('tbody', {}, ...job.item_errors.map((e) => el('tr', {}, el('td', { text: e.item }), el('td', { text: e.message })))));
  const more = job.item_error_count > job.item_errors.length
    ? el('p', { class: 'muted', text: `${job.item_error_count - job.item_errors.length} more item errors not stored` }) : null;
  const body = $('details-body');
  body.replaceChildren(...[facts,
    section(`Errors (${job.errors.length})`, job.errors.length ? errors : el('p', { class: 'muted', text: 'None' })),
    section(`Item errors (${job.item_error_count})`, job.item_errors.length ? items : el('p', { class: 'muted', text: 'None' }), more),
    section('Arguments', el('pre', { class: 'args', text: job.args })),
    job.children.length ? section(`Children (${job.children.length})`, el('ul', {},
      ...job.children.map((c) => el('li', { text: `#${c.id} ${c.kind} · ${c.state}` })))) : null,
    job.result ? section('Result', el('pre', { class: 'args', text: job.result })) : null].filter(Boolean));
  $('details').showModal();
}

// --- live updates (Server-Sent Events over fetch, so the token stays in a header) --

async function startStream() {
  if (state.stream) state.stream.abort();
  const ctrl = new AbortController();
  state.stream = ctrl;
  const live = $('live');
  while (!ctrl.signal.aborted) {
    try {
      const headers = state.token ? { Authorization: 'Bearer ' + state.token } : {};
      const res = await fetch('/api/events', { headers, signal: ctrl.signal });
      if (!res.ok) throw new Error('HTTP ' + res.status);
      live.textContent = 'live'; live.className = 'live on';
      const reader = res.body.getReader(), decoder = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf('\n\n')) >= 0) { onEvent(buf.slice(0, cut)); buf = buf.slice(cut + 2); }
      }
    } catch (e) { if (ctrl.signal.aborted) return; }
    live.textContent = 'reconnecting'; live.className = 'live';
    await new Promise((r) => setTimeout(r, 2000));
  }
}

let reloadTimer = null;
function reloadSoon() {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(() => { if (state.tab !== 'queues') loadJobs().catch(() => {}); }, 500);
}

function onEvent(block) {
  let type = 'message', data = '';
  for (const line of block.split('\n')) {
    if (line.startsWith('event: ')) type = line.slice(7);
    else if (line.startsWith('data: ')) data += line.slice(6);
  }
  if (type === 'job') updateJob(JSON.parse(data));
  else if ((type === 'new' && state.cursor == null) || type === 'resync') reloadSoon();
}

// --- queues view -------------------------------------------------------------------

function card(label, value, bad) {
  return el('div', { class: 'card' + (bad ? ' bad' : '') }, el('div', { class: 'card-value', text: value }), el('div', { class: 'card-label', text: label }));
}

async function loadQueues() {
  const [stats, tp] = await Promise.all([api('GET', '/api/stats'), api('GET', '/api/throughput')]);
  const totals = stats.queues.reduce((a, q) => ({ pending: a.pending + q.pending, running: a.running + q.running, failed: a.failed + q.failed }), { pending: 0, running: 0, failed: 0 });
  const finished = stats.kinds.reduce((a, k) => a + k.completed + k.failed, 0);
  const failed = stats.kinds.reduce((a, k) => a + k.failed, 0);
  $('cards').replaceChildren(
    card('Pending', String(totals.pending)), card('Running', String(totals.running)),
    card('Failure rate, 5 min', finished ? (100 * failed / finished).toFixed(1) + '%' : '—', failed > 0),
    card('Oldest lease', stats.oldest_lease_age_ms == null ? '—' : fmtDuration(stats.oldest_lease_age_ms)),
    card('Expired leases', String(stats.expired_leases), stats.expired_leases > 0));
  $('queues').tBodies[0].replaceChildren(...stats.queues.map((q) => el('tr', {},
    el('td', {}, el('strong', { text: q.name }), q.paused ? el('span', { class: 'badge paused', text: 'paused' }) : null),
    ...['pending', 'scheduled', 'running', 'waiting', 'completed', 'failed', 'cancelled'].map((k) => el('td', { class: 'num', text: String(q[k]) })),
    el('td', {}, el('button', { class: 'small', text: q.paused ? 'Resume' : 'Pause',
      onclick: async () => { try { await api('POST', `/api/queues/${encodeURIComponent(q.name)}/${q.paused ? 'resume' : 'pause'}`); await loadQueues(); } catch (e) { toast(e.message, true); } } })))));
  $('kinds').tBodies[0].replaceChildren(...stats.kinds.map((k) => el('tr', {},
    el('td', { text: k.kind }), el('td', { class: 'num', text: String(k.completed) }), el('td', { class: 'num', text: String(k.failed) }),
    el('td', { class: 'num', text: (100 * k.failure_rate).toFixed(1) + '%' }), el('td', { class: 'num', text: String(k.retried) }),
    ...[k.p50_ms, k.p95_ms, k.p99_ms, k.latency_p50_ms, k.latency_p95_ms].map((v) => el('td', { class: 'num', text: fmtDuration(v) })))));
  drawChart($('chart-done'), tp.samples.map((s) => s.completed), '#2f7d4f');
  drawChart($('chart-failed'), tp.samples.map((s) => s.failed), '#c0392b');
}

function drawChart(canvas, values, color) {
  const g = canvas.getContext('2d'), w = canvas.width, h = canvas.height, pad = 18;
  g.clearRect(0, 0, w, h);
  const max = Math.max(1, ...values);
  g.strokeStyle = '#e3e6ea'; g.lineWidth = 1;
  g.beginPath(); g.moveTo(pad, h - pad + 0.5); g.lineTo(w, h - pad + 0.5); g.stroke();
  g.fillStyle = '#6b7280'; g.font = '11px system-ui, sans-serif';
  g.fillText(String(max), 2, 12); g.fillText('0', 2, h - pad);
  if (!values.length) { g.fillText('no samples yet', w / 2 - 35, h / 2); return; }
  const step = (w - pad) / Math.max(1, values.length);
  g.fillStyle = color;
  values.forEach((v, i) => {
    const bh = (h - 2 * pad) * v / max;
    g.fillRect(pad + i * step + 1, h - pad - bh, Math.max(1, step - 2), bh);
  });
}

async function maintenance(path, body) {
  try {
    const r = await api('POST', path, body);
    $('maintenance-result').textContent = `${r.count} job(s) affected`;
    await loadQueues();
  } catch (e) { toast(e.message, true); }
}

// --- tabs and wiring ------------------------------------------------------------------

let queueTimer = null;
function showTab(tab) {
  state.tab = tab;
  for (const b of document.querySelectorAll('.tab')) b.classList.toggle('active', b.dataset.tab === tab);
  $('jobs-view').hidden = tab === 'queues';
  $('queues-view').hidden = tab !== 'queues';
  clearInterval(queueTimer);
  state.cursors = []; state.cursor = null;
  if (tab === 'queues') { loadQueues().catch((e) => toast(e.message, true)); queueTimer = setInterval(() => loadQueues().catch(() => {}), 5000); }
  else loadJobs().catch((e) => toast(e.message, true));
}

function wire() {
  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    state.token = $('token').value.trim();
    if (await signIn()) sessionStorage.setItem('porter-token', state.token);
    else { state.token = ''; showLogin('That token was not accepted.'); }
  });
  $('logout').addEventListener('click', () => { sessionStorage.removeItem('porter-token'); state.token = ''; showLogin(); });
  for (const b of document.querySelectorAll('.tab')) b.addEventListener('click', () => showTab(b.dataset.tab));
  $('filters').addEventListener('submit', (ev) => {
    ev.preventDefault();
    state.filter = Object.fromEntries(new FormData(ev.target));
    state.cursors = []; state.cursor = null;
    loadJobs().catch((e) => toast(e.message, true));
  });
  $('filters').addEventListener('reset', () => { state.filter = {}; state.cursors = []; state.cursor = null; setTimeout(() => loadJobs().catch(() => {})); });
  $('older').addEventListener('click', () => { state.cursors.push(state.cursor); state.cursor = state.next; loadJobs().catch((e) => toast(e.message, true)); });
  $('newer').addEventListener('click', () => { state.cursor = state.cursors.pop() ?? null; loadJobs().catch((e) => toast(e.message, true)); });
  $('details-close').addEventListener('click', () => $('details').close());
  $('expire-stuck').addEventListener('click', (ev) => {
    if (ev.target.id === 'stuck-minutes') return;
    maintenance('/api/maintenance/expire-stuck', { older_than_s: 60 * Number($('stuck-minutes').value || 60) });
  });
  $('clear-locks').addEventListener('click', () => maintenance('/api/maintenance/clear-stale-locks', {}));
  setInterval(tick, 1000);
}

wire();
signIn().then((ok) => { if (!ok) showLogin(); });
