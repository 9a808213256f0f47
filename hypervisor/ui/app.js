// The hypervisor's web UI: plain JavaScript, no build step, nothing from
// elsewhere. State comes from GET /api/events (server-sent events) and is
// never polled; every action is one call of the REST API
// (docs/protocol.md, "Hypervisor REST API").
'use strict';

const S = {
  csrf: '',
  visors: new Map(),  // pk → state, from the event stream
  labels: {},         // pk → label, for any key
  audit: [],          // newest first
  es: null,           // the EventSource
  live: false,
  sort: { key: 'label', dir: 1 },
  filter: '', stateFilter: '',
  cleanup: [],        // run when the view changes (aborts log follows, …)
  traffic: new Map(), // pk → {tpID → [{t, sent, recv}]}
};

const $ = (sel, root = document) => root.querySelector(sel);
const copyIcon = '<svg viewBox="0 0 16 16" width="13" height="13" aria-hidden="true"><rect x="5" y="5" width="9" height="9" rx="1.5" fill="none" stroke="currentColor" stroke-width="1.5"/><path d="M3 11V3.5A1.5 1.5 0 0 1 4.5 2H11" fill="none" stroke="currentColor" stroke-width="1.5"/></svg>';
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

function esc(v) {
  return String(v ?? '').replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}
const short = pk => pk ? pk.slice(0, 8) + '…' + pk.slice(-4) : '';
function fmtBytes(n) {
  if (!(n >= 1024)) return Math.round(n || 0) + ' B';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  const i = Math.min(u.length - 1, Math.floor(Math.log(n) / Math.log(1024)));
  return (n / 1024 ** i).toFixed(1) + ' ' + u[i];
}
const fmtRate = n => fmtBytes(n) + '/s';
function fmtDur(s) {
  if (s == null || isNaN(s)) return '—';
  s = Math.max(0, Math.floor(s));
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m`;
  return `${s}s`;
}
const fmtAgo = t => t ? fmtDur((Date.now() - Date.parse(t)) / 1000) + ' ago' : '—';
const fmtTime = t => t ? new Date(t).toLocaleString() : '—';
const fmtMS = ms => ms ? (ms < 10 ? ms.toFixed(2) : ms.toFixed(1)) + ' ms' : '—';
const labelOf = pk => S.labels[pk] || '';
const uptimeOf = v => v.state === 'online' && v.info && v.info.started_at ? (Date.now() - Date.parse(v.info.started_at)) / 1000 : null;

// toast shows a short message; errors stay longer.
function toast(msg, bad) {
  const el = document.createElement('div');
  el.className = 'toast' + (bad ? ' bad' : '');
  el.textContent = msg;
  $('#toasts').append(el);
  setTimeout(() => el.remove(), bad ? 9000 : 3500);
}

// api calls the REST API; a failure throws an Error whose message is the
// server's (it names what failed).
async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: 'same-origin' };
  if (method !== 'GET') {
    opts.headers['X-CSRF-Token'] = S.csrf;
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body ?? {});
  }
  let r;
  try {
    r = await fetch(path, opts);
  } catch (e) {
    throw new Error(`${method} ${path}: the hypervisor cannot be reached (${e.message})`);
  }
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!r.ok) {
    if (r.status === 401 && !path.startsWith('/api/login') && !path.startsWith('/api/setup')) loggedOut();
    const msg = data && data.error ? data.error.message : `HTTP ${r.status} ${text.slice(0, 200)}`;
    const err = new Error(msg);
    err.status = r.status;
    throw err;
  }
  return data;
}
const visorAPI = (pk, method, op, body) => api(method, `/api/visors/${pk}/v1/${op}`, body);

// follow reads a streaming admin operation (ndjson), calling fn with each
// item, until the returned abort is called.
function follow(pk, op, body, fn, onEnd) {
  const ctl = new AbortController();
  (async () => {
    try {
      const r = await fetch(`/api/visors/${pk}/v1/${op}`, {
        method: 'POST', signal: ctl.signal, credentials: 'same-origin',
        headers: { 'X-CSRF-Token': S.csrf, 'Content-Type': 'application/json' }, body: JSON.stringify(body),
      });
      if (!r.ok) {
        const d = await r.json().catch(() => null);
        throw new Error(d && d.error ? d.error.message : `HTTP ${r.status}`);
      }
      const rd = r.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await rd.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (!line) continue;
          const m = JSON.parse(line);
          if (m.error) throw new Error(m.error.message);
          fn(m.item);
        }
      }
      onEnd && onEnd(null);
    } catch (e) {
      if (e.name !== 'AbortError') onEnd && onEnd(e);
    }
  })();
  return () => ctl.abort();
}

// ---- session ----

async function boot() {
  $('#logout').onclick = logout;
  // A page left behind must give its streams back at once: a browser holds
  // only six HTTP/1.1 connections per host (HTTPS with HTTP/2 shares one).
  window.addEventListener('pagehide', () => { runCleanup(); if (S.es) { S.es.close(); S.es = null; } });
  window.addEventListener('pageshow', ev => { if (ev.persisted && S.csrf) connect(); });
  window.addEventListener('hashchange', render);
  // Logged in already? Then no ping: straight to the data.
  try {
    const s = await fetch('/api/session', { credentials: 'same-origin' });
    if (s.ok) {
      S.csrf = (await s.json()).csrf_token;
      return start();
    }
  } catch { /* the ping below says what is wrong */ }
  let ping;
  try {
    ping = await api('GET', '/api/ping');
  } catch (e) {
    $('#main').innerHTML = `<div class="panel login"><p class="error">${esc(e.message)}</p></div>`;
    return;
  }
  if (!ping.password_set) return setupView();
  loginView();
}

function loggedOut() {
  if (S.es) { S.es.close(); S.es = null; }
  if (!S.csrf && $('#login-form')) return; // already there: keep what the user is typing
  S.csrf = '';
  $('#top').hidden = true;
  loginView('Your session ended: log in again.');
}

async function logout() {
  try { await api('POST', '/api/logout'); } catch { /* gone anyway */ }
  loggedOut();
}

function loginView(note) {
  runCleanup();
  $('#top').hidden = true;
  $('#main').innerHTML = `
    <form class="panel login" id="login-form">
      <span class="logo">◆</span>
      <h1>Skywire hypervisor</h1>
      <label><span>Password</span><input type="password" id="password" autocomplete="current-password" required autofocus></label>
      <p class="error" id="login-error">${esc(note || '')}</p>
      <button type="submit" id="login-button">Log in</button>
      <p class="muted">Forgot it? Stop the hypervisor and run <code>skywire hypervisor passwd</code>.</p>
    </form>`;
  $('#login-form').onsubmit = async ev => {
    ev.preventDefault();
    $('#login-button').disabled = true;
    try {
      const s = await api('POST', '/api/login', { password: $('#password').value });
      S.csrf = s.csrf_token;
      start();
    } catch (e) {
      $('#login-error').textContent = e.message;
      $('#login-button').disabled = false;
    }
  };
}

function setupView() {
  $('#top').hidden = true;
  $('#main').innerHTML = `
    <form class="panel login" id="setup-form">
      <span class="logo">◆</span>
      <h1>Set the password</h1>
      <p class="muted">This hypervisor has no password yet. Enter the one-time setup code it printed when it started,
      and choose a password (at least 8 characters).</p>
      <label><span>Setup code</span><input id="setup-code" autocomplete="off" placeholder="XXXX-XXXX-XXXX" required autofocus></label>
      <label><span>New password</span><input type="password" id="setup-password" autocomplete="new-password" minlength="8" required></label>
      <label><span>Again</span><input type="password" id="setup-password2" autocomplete="new-password" minlength="8" required></label>
      <p class="error" id="setup-error"></p>
      <button type="submit" id="setup-button">Set the password and log in</button>
    </form>`;
  $('#setup-form').onsubmit = async ev => {
    ev.preventDefault();
    if ($('#setup-password').value !== $('#setup-password2').value) {
      $('#setup-error').textContent = 'The two passwords differ.';
      return;
    }
    try {
      const s = await api('POST', '/api/setup', { code: $('#setup-code').value, password: $('#setup-password').value });
      S.csrf = s.csrf_token;
      toast('Password set.');
      start();
    } catch (e) {
      $('#setup-error').textContent = e.message;
    }
  };
}

// start connects the event stream and shows the page the URL names.
async function start() {
  $('#top').hidden = false;
  connect(); // the labels come while the stream connects
  try { Object.assign(S.labels, await api('GET', '/api/labels')); } catch { /* shown without labels */ }
  if (!location.hash || location.hash === '#/' || location.hash.startsWith('#/login')) location.hash = '#/visors';
  else render();
}

function connect() {
  if (S.es) S.es.close();
  const es = new EventSource('/api/events');
  S.es = es;
  const setLive = on => { S.live = on; $('#live').classList.toggle('on', on); $('#live').title = on ? 'live updates' : 'reconnecting…'; };
  es.addEventListener('snapshot', ev => {
    setLive(true);
    S.visors = new Map(JSON.parse(ev.data).map(v => [v.pk, v]));
    for (const v of S.visors.values()) if (v.label) S.labels[v.pk] = v.label;
    changed(null);
  });
  es.addEventListener('visor', ev => {
    const v = JSON.parse(ev.data);
    const old = S.visors.get(v.pk);
    S.visors.set(v.pk, v);
    if (v.label) S.labels[v.pk] = v.label; else if (old && old.label) delete S.labels[v.pk];
    noteTraffic(v);
    changed(v.pk);
  });
  es.addEventListener('visor-removed', ev => {
    S.visors.delete(JSON.parse(ev.data).pk);
    changed(null);
  });
  es.addEventListener('audit', ev => {
    S.audit.unshift(JSON.parse(ev.data));
    if (S.audit.length > 1000) S.audit.length = 1000;
    if (view().name === 'audit') renderAuditRows();
  });
  es.addEventListener('logout', () => loggedOut());
  es.onerror = async () => {
    setLive(false);
    try { await api('GET', '/api/session'); } catch { /* loggedOut ran on 401 */ }
  };
}

// ---- routing ----

function view() {
  const parts = location.hash.replace(/^#\/?/, '').split('/');
  return { name: parts[0] || 'visors', pk: parts[1], tab: parts[2] || 'overview' };
}

function runCleanup() {
  for (const f of S.cleanup.splice(0)) f();
}

function render() {
  if (!S.csrf) return;
  runCleanup();
  const v = view();
  $$('nav a').forEach(a => a.classList.toggle('on', a.dataset.nav === v.name || (v.name === 'visor' && a.dataset.nav === 'visors')));
  switch (v.name) {
    case 'visor': return visorView(v.pk, v.tab);
    case 'audit': return auditView();
    case 'settings': return settingsView();
    default: return visorsView();
  }
}

// changed re-renders what shows visor pk (null: all), once per frame.
let pending = null;
function changed(pk) {
  if (pending === null) {
    pending = new Set();
    requestAnimationFrame(() => {
      const set = pending;
      pending = null;
      const v = view();
      if (v.name === 'visors' || v.name === '') renderVisorRows();
      else if (v.name === 'visor' && (set.has(null) || set.has(v.pk))) refreshVisor(v.pk, v.tab);
    });
  }
  pending.add(pk);
}

// setRows shows items in tbody, one row each, keyed by key(item): a row is
// rebuilt only when its HTML changed, so that a live update does not
// replace the button under the pointer.
function setRows(tbody, items, key, html, init) {
  const rows = tbody.__rows || (tbody.__rows = new Map());
  const keep = new Set();
  let prev = null;
  for (const it of items) {
    const k = key(it);
    keep.add(k);
    const h = html(it);
    let row = rows.get(k);
    if (!row) {
      const tr = document.createElement('tr');
      tr.dataset.key = k;
      if (init) init(tr, it);
      row = { html: '', tr };
      rows.set(k, row);
    }
    if (row.html !== h) { row.tr.innerHTML = h; row.html = h; }
    const want = prev ? prev.nextSibling : tbody.firstChild;
    if (want !== row.tr) tbody.insertBefore(row.tr, want);
    prev = row.tr;
  }
  for (const [k, row] of rows) if (!keep.has(k)) { row.tr.remove(); rows.delete(k); }
}

// ---- visors list ----

const columns = [
  { key: 'state', title: 'State', val: v => ({ online: 0, connecting: 1, offline: 2 }[v.state]) },
  { key: 'label', title: 'Label', val: v => (labelOf(v.pk) || '\uffff').toLowerCase() },
  { key: 'pk', title: 'Public key', val: v => v.pk },
  { key: 'version', title: 'Version', val: v => v.info ? v.info.version : '' },
  { key: 'uptime', title: 'Uptime', num: true, val: v => uptimeOf(v) ?? -1 },
  { key: 'transports', title: 'Transports', num: true, val: v => v.transports.length },
  { key: 'apps', title: 'Apps running', num: true, val: v => v.apps.filter(a => a.state === 'running').length },
  { key: 'latency', title: 'Latency', num: true, val: v => v.state === 'online' ? v.latency_ms : 1e9 },
  { key: 'seen', title: 'Last seen', val: v => -Date.parse(v.last_seen || 0) },
];

function visorsView() {
  $('#main').innerHTML = `
    <div class="row spread"><h1>Visors</h1><span class="muted" id="visor-counts"></span></div>
    <div class="cards" id="visor-cards"></div>
    <div class="panel">
      <div class="row toolbar">
        <input id="filter" class="grow" placeholder="Filter by label, key or version" value="${esc(S.filter)}">
        <select id="state-filter">
          <option value="">All states</option><option value="online">Online</option>
          <option value="connecting">Connecting</option><option value="offline">Offline</option>
        </select>
        <button class="ghost" id="forget-offline" title="forget every offline visor">Remove offline</button>
      </div>
      <div class="scroll"><table id="visors">
        <thead><tr>${columns.map(c => `<th class="sort${c.num ? ' num' : ''}" data-key="${c.key}">${c.title} <span class="dir"></span></th>`).join('')}<th></th></tr></thead>
        <tbody></tbody>
      </table></div>
      <p class="empty" id="no-visors" hidden></p>
    </div>`;
  $('#state-filter').value = S.stateFilter;
  $('#filter').oninput = e => { S.filter = e.target.value; renderVisorRows(); };
  $('#state-filter').onchange = e => { S.stateFilter = e.target.value; renderVisorRows(); };
  $$('#visors th.sort').forEach(th => th.onclick = () => {
    S.sort = { key: th.dataset.key, dir: S.sort.key === th.dataset.key ? -S.sort.dir : 1 };
    renderVisorRows();
  });
  $('#forget-offline').onclick = async () => {
    const off = [...S.visors.values()].filter(v => v.state === 'offline');
    if (!off.length) return toast('No visor is offline.');
    if (!confirm(`Forget ${off.length} offline visor(s)? They reappear when they link again.`)) return;
    for (const v of off) {
      try { await api('DELETE', `/api/visors/${v.pk}`); } catch (e) { toast(`Removing ${short(v.pk)}: ${e.message}`, true); }
    }
  };
  $('#visors tbody').addEventListener('click', onVisorRowClick);
  renderVisorRows();
  const t = setInterval(renderVisorRows, 30000); // uptimes and "ago" move on
  S.cleanup.push(() => clearInterval(t));
}

function visorRowHTML(v) {
  const label = labelOf(v.pk);
  return `<td><span class="dot ${v.state}"></span><span class="state">${v.state}</span>${v.local ? ' <span class="badge" title="this hypervisor runs in this visor">this</span>' : ''}</td>
    <td>${label ? esc(label) : '<span class="muted">—</span>'} <button class="copy edit-label" data-pk="${v.pk}" title="edit the label">✎</button></td>
    <td><span class="pk" title="${v.pk}">${short(v.pk)}</span><button class="copy" data-copy="${v.pk}" title="copy the key">${copyIcon}</button></td>
    <td>${esc(v.info ? v.info.version : '—')}</td>
    <td class="num">${fmtDur(uptimeOf(v))}</td>
    <td class="num">${v.state === 'offline' ? '—' : v.transports.length}</td>
    <td class="num">${v.state === 'offline' ? '—' : v.apps.filter(a => a.state === 'running').length + '/' + v.apps.length}</td>
    <td class="num">${v.state === 'online' ? fmtMS(v.latency_ms) : '—'}</td>
    <td>${v.state === 'offline' ? fmtAgo(v.last_seen) : 'now'}</td>
    <td><a href="#/visor/${v.pk}">Open →</a> <a class="muted term-link" href="/terminal.html#${v.pk}" target="_blank" rel="noopener" title="open a terminal on this visor in a new tab">Terminal ↗</a></td>`;
}

function renderVisorRows() {
  const tbody = $('#visors tbody');
  if (!tbody) return;
  const all = [...S.visors.values()];
  const q = S.filter.trim().toLowerCase();
  const list = all.filter(v => (!S.stateFilter || v.state === S.stateFilter) &&
    (!q || v.pk.includes(q) || labelOf(v.pk).toLowerCase().includes(q) || (v.info && v.info.version.toLowerCase().includes(q))));
  const col = columns.find(c => c.key === S.sort.key) || columns[1];
  list.sort((a, b) => {
    const x = col.val(a), y = col.val(b);
    return (x < y ? -1 : x > y ? 1 : a.pk < b.pk ? -1 : 1) * S.sort.dir;
  });
  $$('#visors th .dir').forEach(s => s.textContent = s.parentElement.dataset.key === col.key ? (S.sort.dir > 0 ? '▲' : '▼') : '');
  setRows(tbody, list, v => v.pk, visorRowHTML, (tr, v) => { tr.className = 'link'; tr.dataset.pk = v.pk; });
  const counts = { online: 0, connecting: 0, offline: 0 };
  all.forEach(v => counts[v.state]++);
  $('#visor-cards').innerHTML = `
    <div class="card"><b>${all.length}</b><span>visors</span></div>
    <div class="card"><b>${counts.online}</b><span><span class="dot online"></span>online</span></div>
    <div class="card"><b>${counts.connecting}</b><span><span class="dot connecting"></span>connecting</span></div>
    <div class="card"><b>${counts.offline}</b><span><span class="dot offline"></span>offline</span></div>`;
  $('#visor-counts').textContent = list.length === all.length ? '' : `${list.length} of ${all.length} shown`;
  const none = $('#no-visors');
  none.hidden = list.length > 0;
  none.innerHTML = all.length ? 'No visor matches the filter.' :
    'No visor has linked yet. A visor links when its config lists this hypervisor\'s key in <code>hypervisors</code>.';
}

function onVisorRowClick(ev) {
  const copy = ev.target.closest('[data-copy]');
  if (copy) { ev.stopPropagation(); return copyText(copy.dataset.copy); }
  const edit = ev.target.closest('.edit-label');
  if (edit) { ev.stopPropagation(); return editLabel(edit.dataset.pk); }
  if (ev.target.closest('a')) return;
  const tr = ev.target.closest('tr[data-pk]');
  if (tr) location.hash = `#/visor/${tr.dataset.pk}`;
}

async function copyText(s) {
  try { await navigator.clipboard.writeText(s); toast('Copied.'); } catch { prompt('Copy:', s); }
}

async function editLabel(pk) {
  const label = prompt(`Label for ${pk}`, labelOf(pk));
  if (label === null) return;
  try {
    const r = await api('PUT', `/api/labels/${pk}`, { label });
    if (r.label) S.labels[pk] = r.label; else delete S.labels[pk];
    changed(pk);
    render();
  } catch (e) { toast(`Setting the label: ${e.message}`, true); }
}

// ---- one visor ----

const tabs = [['overview', 'Overview'], ['transports', 'Transports'], ['routes', 'Routes'], ['apps', 'Apps'], ['ping', 'Ping'], ['log', 'Visor log']];

function visorView(pk, tab) {
  const v = S.visors.get(pk);
  if (!v) {
    $('#main').innerHTML = `<div class="panel"><p>No visor <span class="pk">${esc(pk)}</span> has linked to this hypervisor.</p><a href="#/visors">← All visors</a></div>`;
    return;
  }
  $('#main').innerHTML = `
    <p><a href="#/visors">← All visors</a></p>
    <div class="row spread">
      <h1 id="visor-title"></h1>
      <div class="row"><a class="button ghost" id="visor-terminal" href="/terminal.html#${pk}" target="_blank" rel="noopener" title="a shell on this visor, in a new tab (the visor's dmsgpty.hypervisors must be on)">Terminal ↗</a><button class="ghost" id="visor-label">Edit label</button></div>
    </div>
    <div class="tabs">${tabs.map(([k, t]) => `<a href="#/visor/${pk}/${k}" class="${k === tab ? 'on' : ''}" data-tab="${k}">${t}</a>`).join('')}</div>
    <div id="tab"></div>`;
  $('#visor-label').onclick = () => editLabel(pk);
  const fill = { overview: overviewTab, transports: transportsTab, routes: routesTab, apps: appsTab, ping: pingTab, log: logTab }[tab] || overviewTab;
  fill(pk);
  refreshVisor(pk, tab);
}

function refreshVisor(pk, tab) {
  const v = S.visors.get(pk);
  if (!v || !$('#visor-title')) return;
  const label = labelOf(pk);
  $('#visor-title').innerHTML = `<span class="dot ${v.state}"></span>${label ? esc(label) : 'Visor'} <span class="pk muted">${short(pk)}</span> <span class="badge">${v.state}</span>`;
  const f = { overview: renderOverview, transports: renderTransports, apps: renderApps }[tab];
  if (f) f(pk, v);
}

function offlineNote(v) {
  return v.state === 'online' ? '' : `<p class="error">This visor is ${v.state}${v.error ? ': ' + esc(v.error) : ''}. What shows is its last known state (seen ${fmtAgo(v.last_seen)}).</p>`;
}

function overviewTab(pk) {
  $('#tab').innerHTML = `<div id="overview-note"></div><div class="cards" id="overview-cards"></div>
    <div class="panel"><h2>Info</h2><dl class="info" id="overview-info"></dl></div>
    <div class="panel"><div class="row spread"><h2>Traffic</h2><span class="muted">bytes/s per transport, up to the last 5 minutes</span></div>
      <canvas class="chart" id="chart"></canvas><div class="legend" id="legend"></div></div>`;
  api('GET', `/api/visors/${pk}/traffic`).then(t => {
    const m = new Map();
    for (const [id, s] of Object.entries(t || {})) m.set(id, s.map(x => ({ t: x.t, sent: x.sent, recv: x.recv })));
    S.traffic.set(pk, m);
    drawChart(pk);
  }).catch(e => toast(`Traffic: ${e.message}`, true));
  const onResize = () => drawChart(pk);
  window.addEventListener('resize', onResize);
  S.cleanup.push(() => window.removeEventListener('resize', onResize));
}

function renderOverview(pk, v) {
  const i = v.info || {};
  const up = v.transports.reduce((a, t) => a + t.sent, 0), down = v.transports.reduce((a, t) => a + t.received, 0);
  $('#overview-note').innerHTML = offlineNote(v);
  $('#overview-cards').innerHTML = `
    <div class="card"><b>${fmtDur(uptimeOf(v))}</b><span>uptime</span></div>
    <div class="card"><b>${v.transports.length}</b><span>transports</span></div>
    <div class="card"><b>${v.routes}</b><span>routing rules</span></div>
    <div class="card"><b>${v.apps.filter(a => a.state === 'running').length}/${v.apps.length}</b><span>apps running</span></div>
    <div class="card"><b>${v.state === 'online' ? fmtMS(v.latency_ms) : '—'}</b><span>latency to the hypervisor</span></div>
    <div class="card"><b>${fmtBytes(up)}</b><span>sent over its transports</span></div>
    <div class="card"><b>${fmtBytes(down)}</b><span>received</span></div>`;
  const listening = Object.entries(i.listening || {}).map(([t, a]) => `${esc(t)} ${esc(a)}`).join('<br>') || '—';
  $('#overview-info').innerHTML = `
    <dt>Public key</dt><dd><span class="pk">${pk}</span><button class="copy" data-copy="${pk}" title="copy">${copyIcon}</button></dd>
    <dt>Label</dt><dd>${esc(labelOf(pk)) || '<span class="muted">none</span>'}</dd>
    <dt>Version</dt><dd>${esc(i.version || '—')}${i.build && i.build.commit ? ` <span class="muted">(${esc(i.build.commit.slice(0, 12))})</span>` : ''}</dd>
    <dt>Started</dt><dd>${fmtTime(i.started_at)}</dd>
    <dt>Listening</dt><dd class="mono">${listening}</dd>
    <dt>dmsg servers</dt><dd class="mono">${(i.dmsg_servers || []).map(s => `${esc(s)}${labelOf(s) ? ' (' + esc(labelOf(s)) + ')' : ''}`).join('<br>') || '—'}</dd>
    <dt>Config file</dt><dd class="mono">${esc(i.config_path || '—')}</dd>
    <dt>Local state</dt><dd class="mono">${esc(i.local_path || '—')}</dd>
    <dt>Admin API</dt><dd class="mono">${esc(i.cli_addr || '—')}</dd>
    <dt>Linked</dt><dd>${v.state === 'offline' ? 'no, last seen ' + fmtTime(v.last_seen) : fmtTime(v.linked_at)}</dd>
    <dt>First seen</dt><dd>${fmtTime(v.first_seen)}</dd>`;
  $$('#overview-info [data-copy]').forEach(b => b.onclick = () => copyText(b.dataset.copy));
  drawChart(pk);
}

// noteTraffic adds a visor's transport counters to its chart history.
function noteTraffic(v) {
  const m = S.traffic.get(v.pk);
  if (!m) return;
  const now = Date.now();
  for (const t of v.transports) {
    let s = m.get(t.id);
    if (!s) m.set(t.id, s = []);
    const last = s[s.length - 1];
    if (last && now - last.t < 900) continue;
    if (last && last.sent === t.sent && last.recv === t.received && now - last.t < 5000) continue;
    s.push({ t: now, sent: t.sent, recv: t.received });
    if (s.length > 300) s.shift();
  }
}

const palette = ['#2f6fed', '#1f9d55', '#d08a00', '#d64545', '#8e44ad', '#16a2b8', '#e8590c', '#6b7385'];

function drawChart(pk) {
  const cv = $('#chart');
  if (!cv) return;
  const v = S.visors.get(pk);
  const m = S.traffic.get(pk) || new Map();
  const dpr = window.devicePixelRatio || 1;
  const w = cv.clientWidth, h = cv.clientHeight;
  cv.width = w * dpr; cv.height = h * dpr;
  const g = cv.getContext('2d');
  g.scale(dpr, dpr);
  const css = getComputedStyle(document.documentElement);
  const ink = css.getPropertyValue('--muted'), line = css.getPropertyValue('--line');
  // The window grows with the history, from one minute to five.
  let first = Infinity;
  for (const s of m.values()) if (s.length) first = Math.min(first, s[0].t);
  const now = Date.now(), left = 74, bottom = 20;
  const span = Math.min(5 * 60e3, Math.max(60e3, now - first));
  const series = [];
  let peak = 1024; // the axis shows at least 1 KiB/s
  const live = new Set((v ? v.transports : []).map(t => t.id));
  [...m.keys()].forEach((id, idx) => {
    if (!live.has(id)) return;
    const s = m.get(id), up = [], down = [];
    for (let i = 1; i < s.length; i++) {
      const dt = (s[i].t - s[i - 1].t) / 1000;
      if (dt <= 0) continue;
      up.push([s[i].t, Math.max(0, (s[i].sent - s[i - 1].sent) / dt)]);
      down.push([s[i].t, Math.max(0, (s[i].recv - s[i - 1].recv) / dt)]);
    }
    up.concat(down).forEach(p => { if (p[1] > peak) peak = p[1]; });
    series.push({ id, n: idx % palette.length, color: palette[idx % palette.length], up, down });
  });
  g.font = '11px system-ui, sans-serif';
  g.fillStyle = ink; g.strokeStyle = line; g.lineWidth = 1;
  for (let k = 0; k <= 4; k++) {
    const y = 6 + (h - bottom - 6) * k / 4;
    g.beginPath(); g.moveTo(left, y); g.lineTo(w, y); g.stroke();
    g.fillText(fmtRate(peak * (4 - k) / 4), 4, y + 4);
  }
  for (let k = 0; k <= 5; k++) {
    const x = left + (w - left) * k / 5, ago = span * (5 - k) / 5 / 1000;
    g.fillText(k === 5 ? 'now' : ago >= 120 ? `-${Math.round(ago / 60)}m` : `-${Math.round(ago)}s`, x - (k === 5 ? 20 : 10), h - 4);
  }
  const X = t => left + (w - left) * (1 - (now - t) / span), Y = r => 6 + (h - bottom - 6) * (1 - r / peak);
  for (const s of series) {
    for (const [pts, dash] of [[s.up, []], [s.down, [4, 3]]]) {
      g.strokeStyle = s.color; g.lineWidth = 1.6; g.setLineDash(dash);
      g.beginPath();
      pts.filter(p => now - p[0] <= span).forEach((p, i) => i ? g.lineTo(X(p[0]), Y(p[1])) : g.moveTo(X(p[0]), Y(p[1])));
      g.stroke();
    }
  }
  g.setLineDash([]);
  const legend = $('#legend');
  if (legend) {
    legend.innerHTML = series.length ? series.map(s => {
      const t = v.transports.find(x => x.id === s.id);
      const who = t ? (labelOf(t.remote_pk) || short(t.remote_pk)) + ' ' + t.type : s.id.slice(0, 8);
      return `<span><i class="c${s.n}"></i>${esc(who)}</span>`;
    }).join('') + '<span>solid: sent · dashed: received</span>' : '<span>No traffic yet.</span>';
  }
}

function transportsTab(pk) {
  $('#tab').innerHTML = `<div id="tp-note"></div>
    <form class="panel" id="add-tp">
      <h2>Add a transport</h2>
      <div class="row">
        <input id="tp-pk" class="grow mono" placeholder="remote visor's public key (66 hex characters)" required pattern="[0-9a-fA-F]{66}">
        <select id="tp-type"><option value="">any type</option></select>
        <label class="inline"><input type="checkbox" id="tp-persistent"> persistent</label>
        <button type="submit" id="tp-add">Add</button>
      </div>
    </form>
    <div class="panel"><h2>Transports</h2><div class="scroll"><table id="transports">
      <thead><tr><th>Type</th><th>Remote</th><th>Direction</th><th class="num">Sent</th><th class="num">Received</th><th class="num">RTT</th><th class="num">Age</th><th>Persistent</th><th>ID</th><th></th></tr></thead>
      <tbody></tbody></table></div><p class="empty" id="no-tps" hidden>No transports.</p></div>`;
  visorAPI(pk, 'GET', 'transport-types').then(ts => {
    $('#tp-type').innerHTML = '<option value="">any type</option>' + ts.map(t => `<option>${esc(t)}</option>`).join('');
  }).catch(() => {});
  $('#add-tp').onsubmit = async ev => {
    ev.preventDefault();
    const btn = $('#tp-add');
    btn.disabled = true;
    btn.textContent = 'Adding…';
    const req = { pk: $('#tp-pk').value.trim().toLowerCase(), type: $('#tp-type').value, persistent: $('#tp-persistent').checked };
    try {
      const tp = await visorAPI(pk, 'POST', 'transports', req);
      toast(`Transport ${tp.type} to ${short(tp.remote_pk)} is up.`);
      $('#tp-pk').value = '';
    } catch (e) {
      toast(`Adding a transport to ${short(req.pk)}: ${e.message}`, true);
    }
    btn.disabled = false;
    btn.textContent = 'Add';
  };
  const tick = setInterval(() => { const v = S.visors.get(pk); if (v) renderTransports(pk, v); }, 5000); // ages move on
  S.cleanup.push(() => clearInterval(tick));
  $('#transports').addEventListener('click', async ev => {
    const b = ev.target.closest('[data-rm]');
    if (!b) return;
    if (!confirm('Remove this transport?' + (b.dataset.persistent === 'true' ? ' It is persistent: it stops being kept up.' : ''))) return;
    try {
      await visorAPI(pk, 'POST', 'transports/remove', { id: b.dataset.rm });
      toast('Transport removed.');
    } catch (e) { toast(`Removing the transport: ${e.message}`, true); }
  });
}

function renderTransports(pk, v) {
  $('#tp-note').innerHTML = offlineNote(v);
  setRows($('#transports tbody'), v.transports, t => t.id, t => `
    <td>${esc(t.type)}</td>
    <td><span class="pk" title="${t.remote_pk}">${short(t.remote_pk)}</span>${labelOf(t.remote_pk) ? ' ' + esc(labelOf(t.remote_pk)) : ''}</td>
    <td>${t.dialer ? 'outgoing' : 'incoming'}</td>
    <td class="num">${fmtBytes(t.sent)}</td><td class="num">${fmtBytes(t.received)}</td>
    <td class="num">${fmtMS(t.rtt_ms)}</td><td class="num">${fmtDur(t.created ? (Date.now() - Date.parse(t.created)) / 1000 : t.age_seconds)}</td>
    <td>${t.persistent ? 'yes' : 'no'}</td>
    <td class="mono muted">${t.id.slice(0, 8)}</td>
    <td><button class="danger small" data-rm="${t.id}" data-persistent="${t.persistent}" ${v.state === 'online' ? '' : 'disabled'}>Remove</button></td>`);
  $('#no-tps').hidden = v.transports.length > 0;
}

function routesTab(pk) {
  $('#tab').innerHTML = `<div class="panel"><div class="row spread"><h2>Routing rules</h2><button class="ghost" id="routes-reload">Reload</button></div>
    <div class="scroll"><table id="routes"><thead><tr><th>ID</th><th>Kind</th><th>From</th><th>To</th><th>Local</th><th>Remote</th><th class="num">Idle</th><th></th></tr></thead><tbody></tbody></table></div>
    <p class="empty" id="no-routes" hidden>No routing rules.</p><p class="error" id="routes-error"></p></div>`;
  const load = async () => {
    try {
      const rs = await visorAPI(pk, 'GET', 'routes');
      $('#routes-error').textContent = '';
      $('#routes tbody').innerHTML = rs.map(r => `<tr>
        <td class="mono">${r.id}</td><td>${esc(r.kind)}${r.pending ? ' <span class="badge">pending</span>' : ''}</td>
        <td><span class="pk">${short(r.in_remote)}</span> ${esc(r.in_type)}</td>
        <td>${r.out_remote ? `<span class="pk">${short(r.out_remote)}</span> #${r.out_id}` : '—'}</td>
        <td class="mono">${esc(r.local || '—')}</td><td class="mono">${esc(r.remote || '—')}</td>
        <td class="num">${fmtDur(r.idle_seconds)}</td>
        <td><button class="danger small" data-rm="${r.id}">Remove</button></td></tr>`).join('');
      $('#no-routes').hidden = rs.length > 0;
    } catch (e) { $('#routes-error').textContent = `Reading the rules: ${e.message}`; }
  };
  $('#routes-reload').onclick = load;
  $('#routes').addEventListener('click', async ev => {
    const b = ev.target.closest('[data-rm]');
    if (!b) return;
    try {
      await visorAPI(pk, 'POST', 'routes/remove', { id: Number(b.dataset.rm) });
      toast(`Rule ${b.dataset.rm} removed.`);
      load();
    } catch (e) { toast(`Removing rule ${b.dataset.rm}: ${e.message}`, true); }
  });
  load();
  // The rule count comes with the events: reload when it moves.
  let count = (S.visors.get(pk) || {}).routes;
  const t = setInterval(() => { const v = S.visors.get(pk); if (v && v.routes !== count) { count = v.routes; load(); } }, 1000);
  S.cleanup.push(() => clearInterval(t));
}

function appsTab(pk) {
  vpnKey = '';
  $('#tab').innerHTML = `<div id="apps-note"></div>
    <div class="panel"><h2>Apps</h2><div class="scroll"><table id="apps"><thead><tr><th>Name</th><th>State</th><th class="num">Port</th><th>Auto start</th><th>Status / last error</th><th></th></tr></thead><tbody></tbody></table></div>
    <p class="empty" id="no-apps" hidden>No apps are configured.</p></div>
    <div class="panel" id="vpn-panel" hidden></div>
    <div class="panel" id="app-settings" hidden></div>
    <div class="panel" id="app-log-panel" hidden><div class="row spread"><h2 id="app-log-title">Log</h2><button class="ghost" id="app-log-close">Close</button></div><pre class="log" id="app-log"></pre></div>`;
  $('#apps').addEventListener('click', async ev => {
    const b = ev.target.closest('button[data-act]');
    if (!b) return;
    const name = b.dataset.app, act = b.dataset.act;
    if (act === 'logs') return openAppLog(pk, name);
    if (act === 'settings') return openAppSettings(pk, name);
    b.disabled = true;
    try {
      if (act === 'start') await visorAPI(pk, 'POST', 'apps/start', { name });
      if (act === 'stop') await visorAPI(pk, 'POST', 'apps/stop', { name });
      toast(`${name}: ${act === 'start' ? 'started' : 'stopped'}.`);
    } catch (e) { toast(`${act} ${name}: ${e.message}`, true); b.disabled = false; }
  });
  $('#apps').addEventListener('change', async ev => {
    const c = ev.target.closest('input[data-autostart]');
    if (!c) return;
    try {
      await visorAPI(pk, 'POST', 'apps/autostart', { name: c.dataset.autostart, on: c.checked });
      toast(`${c.dataset.autostart}: auto start ${c.checked ? 'on' : 'off'}.`);
    } catch (e) { toast(`Auto start of ${c.dataset.autostart}: ${e.message}`, true); c.checked = !c.checked; }
  });
  $('#app-log-close').onclick = () => { closeLog(); $('#app-log-panel').hidden = true; };
}

const appSettings = {
  'skysocks': { title: 'skysocks server', fields: [['passcode', 'Passcode clients must give (empty: none)', 'password']],
    save: (pk, f) => visorAPI(pk, 'POST', 'apps/passcode', { name: 'skysocks', passcode: f.passcode }) },
  'skysocks-client': { title: 'skysocks-client (SOCKS5 proxy)', fields: [['server', 'Server visor\'s public key', 'text'], ['passcode', 'The server\'s passcode, if it has one', 'password'], ['addr', 'Local SOCKS5 address (empty: as configured)', 'text']],
    save: (pk, f) => visorAPI(pk, 'POST', 'proxy/start', { server: f.server.trim().toLowerCase(), passcode: f.passcode, addr: f.addr.trim() }) },
};

function renderApps(pk, v) {
  $('#apps-note').innerHTML = offlineNote(v);
  const on = v.state === 'online';
  setRows($('#apps tbody'), v.apps, a => a.name, a => `
    <td><b>${esc(a.name)}</b></td>
    <td><span class="badge ${esc(a.state)}">${esc(a.state)}</span></td>
    <td class="num">${a.port}</td>
    <td><label class="inline"><input type="checkbox" data-autostart="${esc(a.name)}" ${a.auto_start ? 'checked' : ''} ${on ? '' : 'disabled'}> on</label></td>
    <td class="wrap">${a.error ? `<span class="error">${esc(a.error)}</span>` : esc(a.status || '')}</td>
    <td><div class="row actions">
      ${a.state === 'running' ? `<button class="ghost small" data-act="stop" data-app="${esc(a.name)}" ${on ? '' : 'disabled'}>Stop</button>` : `<button class="small" data-act="start" data-app="${esc(a.name)}" ${on ? '' : 'disabled'}>Start</button>`}
      <button class="ghost small" data-act="logs" data-app="${esc(a.name)}" ${on ? '' : 'disabled'}>Log</button>
      ${appSettings[a.name] ? `<button class="ghost small" data-act="settings" data-app="${esc(a.name)}" ${on ? '' : 'disabled'}>Settings</button>` : ''}
    </div></td>`, (tr, a) => { tr.dataset.app = a.name; });
  $('#no-apps').hidden = v.apps.length > 0;
  const vc = v.apps.find(a => a.name === 'vpn-client');
  const key = vc ? vc.state + '|' + (vc.status || '') + '|' + (vc.error || '') : '';
  if (vc && key !== vpnKey) { vpnKey = key; renderVPN(pk, on); }
  $('#vpn-panel').hidden = !vc;
}

// The VPN panel: vpn-client's state (GET /v1/vpn, read again whenever the
// app's reported status changes), start and stop.
let vpnKey = '';
async function renderVPN(pk, on) {
  const panel = $('#vpn-panel');
  let st;
  try { st = await visorAPI(pk, 'GET', 'vpn'); } catch (e) { panel.innerHTML = `<p class="error">VPN status: ${esc(e.message)}</p>`; return; }
  const state = st.connected ? 'connected' : st.app.state === 'running' ? 'connecting' : 'not connected';
  const rows = [['State', `<span class="badge ${st.connected ? 'running' : ''}">${state}</span>`], ['Server', st.server ? `<span class="pk">${esc(labelOf(st.server) || short(st.server))}</span>` : '—']];
  if (st.connected) {
    rows.push(['Tunnel address', esc(st.address)], ['Since', fmtTime(st.since)], ['Up / down', `${fmtBytes(st.up)} / ${fmtBytes(st.down)}`],
      ['Rate', `${fmtRate(st.up_rate)} up, ${fmtRate(st.down_rate)} down`], ['Latency', fmtMS(st.latency_ms)]);
  }
  rows.push(['Kill switch', st.killswitch ? 'on' : 'off']);
  if (st.last_error) rows.push(['Last error', `<span class="error">${esc(st.last_error)}</span>`]);
  panel.innerHTML = `<div class="row spread"><h2>VPN</h2>${st.app.state === 'running' ? `<button class="danger" id="vpn-stop" ${on ? '' : 'disabled'}>Stop the VPN</button>` : ''}</div>
    <dl class="info">${rows.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join('')}</dl>
    <form id="vpn-form" class="row toolbar"><input name="server" class="grow mono" placeholder="vpn-server's visor key" value="${esc(st.server || '')}" required pattern="[0-9a-fA-F]{66}">
      <input name="passcode" type="password" placeholder="passcode (if any)" autocomplete="off">
      <input name="dns" placeholder="DNS, e.g. 1.1.1.1">
      <label class="inline"><input type="checkbox" name="killswitch" ${st.killswitch ? 'checked' : ''}> kill switch</label>
      <button type="submit" ${on ? '' : 'disabled'}>${st.app.state === 'running' ? 'Reconnect' : 'Start the VPN'}</button></form>`;
  const stop = $('#vpn-stop');
  if (stop) stop.onclick = async () => {
    try { const r = await visorAPI(pk, 'POST', 'vpn/stop'); toast(r.restored ? 'VPN stopped; the host restored.' : 'VPN stopped.'); } catch (e) { toast(`Stopping the VPN: ${e.message}`, true); }
  };
  $('#vpn-form').onsubmit = async ev => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    const req = { server: f.get('server').trim().toLowerCase(), passcode: f.get('passcode'), killswitch: f.get('killswitch') === 'on',
      dns: f.get('dns').split(',').map(x => x.trim()).filter(Boolean) };
    try { await visorAPI(pk, 'POST', 'vpn/start', req); toast('VPN starting.'); } catch (e) { toast(`Starting the VPN: ${e.message}`, true); }
  };
}

let closeLog = () => {};
function openAppLog(pk, name) {
  closeLog();
  $('#app-log-panel').hidden = false;
  $('#app-log-title').textContent = `${name}: log (live)`;
  const pre = $('#app-log');
  pre.textContent = '';
  closeLog = streamInto(pre, pk, 'apps/logs/follow', { name, lines: 500 });
  S.cleanup.push(() => closeLog());
}

// streamInto follows a log into pre, keeping it scrolled to the end.
function streamInto(pre, pk, op, req) {
  let lines = 0;
  return follow(pk, op, req, line => {
    const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
    pre.append(line + '\n');
    if (++lines > 5000) { pre.firstChild && pre.firstChild.remove(); }
    if (stick) pre.scrollTop = pre.scrollHeight;
  }, err => { pre.append(err ? `\n[the log stopped: ${err.message}]\n` : '\n[the log ended]\n'); });
}

function openAppSettings(pk, name) {
  const s = appSettings[name];
  const panel = $('#app-settings');
  panel.hidden = false;
  panel.innerHTML = `<form id="settings-form"><h2>${esc(s.title)} settings</h2>
    ${s.fields.map(([k, t, type]) => `<label><span>${esc(t)}</span><input name="${k}" type="${type}" autocomplete="off" class="full"></label>`).join('')}
    <div class="row"><button type="submit">Save and restart</button><button type="button" class="ghost" id="settings-cancel">Cancel</button></div>
    <p class="muted">Saved in the visor's config file. Secrets are never shown back.</p></form>`;
  $('#settings-cancel').onclick = () => { panel.hidden = true; };
  $('#settings-form').onsubmit = async ev => {
    ev.preventDefault();
    const f = Object.fromEntries(new FormData(ev.target).entries());
    try {
      await s.save(pk, f);
      toast(`${name}: settings saved.`);
      panel.hidden = true;
    } catch (e) { toast(`${name} settings: ${e.message}`, true); }
  };
}

function pingTab(pk) {
  $('#tab').innerHTML = `<form class="panel" id="ping-form"><h2>Ping a visor over a route</h2>
    <div class="row"><input id="ping-pk" class="grow mono" placeholder="public key of the visor to reach" required pattern="[0-9a-fA-F]{66}">
    <label class="inline">hops ≥ <input id="ping-hops" type="number" min="0" max="16" value="0" class="narrow"></label>
    <button type="submit" id="ping-go">Ping</button></div></form>
    <div class="panel" id="ping-result" hidden></div>`;
  $('#ping-form').onsubmit = async ev => {
    ev.preventDefault();
    const target = $('#ping-pk').value.trim().toLowerCase();
    const out = $('#ping-result');
    out.hidden = false;
    out.innerHTML = '<p class="muted">Setting up a route and pinging…</p>';
    $('#ping-go').disabled = true;
    try {
      const r = await visorAPI(pk, 'POST', 'ping', { pk: target, count: 4, min_hops: Number($('#ping-hops').value) || 0 });
      const rtts = r.rtts_ms || [];
      const avg = rtts.reduce((a, b) => a + b, 0) / (rtts.length || 1);
      out.innerHTML = `<h2>Path</h2><div class="hops"><span class="hop">${esc(labelOf(pk) || short(pk))}</span>
        ${r.hops.map(h => `<span class="arrow">— ${esc(h.type)} ${fmtMS(h.rtt_ms)} →</span><span class="hop" title="${h.pk}">${esc(labelOf(h.pk) || short(h.pk))}</span>`).join('')}</div>
        <p>Route set up in ${fmtMS(r.setup_ms)}. Round trips: ${rtts.map(fmtMS).join(', ') || '—'} (average ${fmtMS(avg)}).</p>`;
    } catch (e) {
      out.innerHTML = `<p class="error">Ping ${esc(short(target))}: ${esc(e.message)}</p>`;
    }
    $('#ping-go').disabled = false;
  };
}

function logTab(pk) {
  $('#tab').innerHTML = `<div class="panel"><div class="row spread"><h2>The visor's own log (live)</h2></div><pre class="log" id="visor-log"></pre></div>`;
  const stop = streamInto($('#visor-log'), pk, 'log/follow', { name: '', lines: 500 });
  S.cleanup.push(stop);
}

// ---- audit log ----

async function auditView() {
  $('#main').innerHTML = `<h1>Audit log</h1><div class="panel"><p class="muted">Every change made through this hypervisor: who, when, on which visor, what, and how it ended.</p>
    <div class="scroll"><table id="audit"><thead><tr><th>Time</th><th>Session</th><th>From</th><th>Visor</th><th>Action</th><th>Detail</th><th>Result</th></tr></thead><tbody></tbody></table></div>
    <p class="empty" id="no-audit" hidden>Nothing yet.</p></div>`;
  try {
    S.audit = await api('GET', '/api/audit?n=500');
  } catch (e) { toast(`Reading the audit log: ${e.message}`, true); }
  renderAuditRows();
}

function renderAuditRows() {
  const tb = $('#audit tbody');
  if (!tb) return;
  tb.innerHTML = S.audit.map(e => `<tr>
    <td>${fmtTime(e.time)}</td><td class="mono">${esc(e.session || '—')}</td><td class="mono">${esc(e.addr || 'shell')}</td>
    <td>${e.visor ? `<a href="#/visor/${esc(e.visor)}" class="pk">${esc(labelOf(e.visor) || short(e.visor))}</a>` : '—'}</td>
    <td>${esc(e.action)}</td><td class="mono wrap">${esc(e.detail || '')}</td>
    <td>${e.status === 200 ? '<span class="badge running">ok</span>' : `<span class="badge errored">${e.status}</span> ${esc(e.error || '')}`}</td></tr>`).join('');
  $('#no-audit').hidden = S.audit.length > 0;
}

// ---- settings ----

function settingsView() {
  $('#main').innerHTML = `<h1>Settings</h1>
    <form class="panel narrow-panel" id="pw-form"><h2>Change the password</h2>
      <label><span>Current password</span><input type="password" id="pw-old" autocomplete="current-password" required class="full"></label>
      <label><span>New password (at least 8 characters)</span><input type="password" id="pw-new" autocomplete="new-password" minlength="8" required class="full"></label>
      <label><span>Again</span><input type="password" id="pw-new2" autocomplete="new-password" minlength="8" required class="full"></label>
      <p class="error" id="pw-error"></p><button type="submit">Change the password</button>
      <p class="muted">Every other session is logged out.</p></form>
    <div class="panel"><h2>Labels</h2><div class="scroll"><table id="labels"><thead><tr><th>Key</th><th>Label</th><th></th></tr></thead><tbody></tbody></table></div>
    <p class="empty" id="no-labels" hidden>No labels yet: label a visor from the list.</p></div>`;
  $('#pw-form').onsubmit = async ev => {
    ev.preventDefault();
    if ($('#pw-new').value !== $('#pw-new2').value) { $('#pw-error').textContent = 'The two new passwords differ.'; return; }
    try {
      const s = await api('POST', '/api/password', { old_password: $('#pw-old').value, new_password: $('#pw-new').value });
      S.csrf = s.csrf_token;
      connect();
      ev.target.reset();
      $('#pw-error').textContent = '';
      toast('Password changed.');
    } catch (e) { $('#pw-error').textContent = e.message; }
  };
  const entries = Object.entries(S.labels).sort((a, b) => a[1].localeCompare(b[1]));
  $('#labels tbody').innerHTML = entries.map(([pk, l]) => `<tr><td class="pk">${pk}</td><td>${esc(l)}</td>
    <td><button class="ghost small" data-edit="${pk}">Edit</button> <button class="danger small" data-del="${pk}">Delete</button></td></tr>`).join('');
  $('#no-labels').hidden = entries.length > 0;
  $('#labels').addEventListener('click', async ev => {
    const e = ev.target.closest('[data-edit]'), d = ev.target.closest('[data-del]');
    if (e) return editLabel(e.dataset.edit);
    if (d) {
      try { await api('PUT', `/api/labels/${d.dataset.del}`, { label: '' }); delete S.labels[d.dataset.del]; render(); } catch (err) { toast(err.message, true); }
    }
  });
}

boot();
