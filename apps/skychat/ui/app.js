'use strict';
// skychat's page: conversations on the left, one conversation on the
// right, everything new pushed over server-sent events. Text is only ever
// set as text (textContent), never parsed as HTML.
const $ = s => document.querySelector(s);
let me = '', current = '', convs = [], messages = [];
// early holds the open conversation's events that come while it loads: they
// are applied over what the load returns, not lost under it.
let early = null;
// rank orders a sent message's states: a late "sent" never hides "delivered".
const rank = { sending: 0, sent: 1, delivered: 2, failed: 2 };
const short = pk => pk.slice(0, 8) + '…' + pk.slice(-4);

async function api(method, path, body) {
  const opt = { method, headers: {} };
  if (body !== undefined) { opt.headers['Content-Type'] = 'application/json'; opt.headers['X-Skychat'] = '1'; opt.body = JSON.stringify(body); }
  const r = await fetch(path, opt);
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.error || r.statusText);
  return data;
}

function nameOf(pk) { const c = convs.find(c => c.peer === pk); return c && c.label ? c.label : short(pk); }

function renderConvs() {
  const ul = $('#convs');
  ul.replaceChildren(...convs.map(c => {
    const li = document.createElement('li');
    li.dataset.peer = c.peer;
    li.className = c.peer === current ? 'on' : '';
    const name = document.createElement('div'); name.className = 'name'; name.textContent = c.label || short(c.peer);
    const last = document.createElement('div'); last.className = 'last';
    last.textContent = c.last ? (c.last.out ? 'you: ' : '') + c.last.text : 'no messages yet';
    li.append(name, last);
    li.onclick = () => open(c.peer);
    return li;
  }));
  $('#no-convs').hidden = convs.length > 0;
}

function stateText(m) {
  if (!m.out) return '';
  return m.state === 'failed' ? 'failed: ' + (m.error || '') : m.state;
}

function renderMessage(li, m) {
  li.className = 'msg ' + (m.out ? 'out' : 'in');
  li.dataset.id = m.id;
  const text = document.createElement('span'); text.className = 'text'; text.textContent = m.text;
  const meta = document.createElement('span'); meta.className = 'meta';
  meta.textContent = new Date(m.time).toLocaleTimeString() + (m.out ? ' · ' : '');
  const st = document.createElement('span'); st.className = 'state ' + m.state; st.textContent = stateText(m);
  meta.append(st);
  li.replaceChildren(text, meta);
}

function renderMessages() {
  const ol = $('#messages');
  ol.replaceChildren(...messages.map(m => { const li = document.createElement('li'); renderMessage(li, m); return li; }));
  ol.scrollTop = ol.scrollHeight;
}

async function loadConvs() { convs = await api('GET', '/api/conversations'); renderConvs(); }

async function open(pk) {
  current = pk;
  location.hash = pk;
  $('#empty').hidden = true; $('#chat').hidden = false; document.querySelector('main').classList.add('open');
  $('#peer-name').textContent = nameOf(pk);
  $('#peer-key').textContent = pk;
  $('#compose-error').hidden = true;
  const mine = early = [];
  let got;
  try { got = await api('GET', '/api/messages?peer=' + pk); }
  catch (e) { if (early === mine) early = null; throw e; }
  if (early !== mine) return; // opened again meanwhile: that load wins
  early = null;
  messages = got;
  renderMessages(); renderConvs();
  mine.forEach(onEvent);
  $('#text').focus();
}

function onEvent(m) {
  const c = convs.find(c => c.peer === m.peer);
  if (c) { if (!c.last || c.last.id === m.id || Date.parse(m.time) >= Date.parse(c.last.time)) c.last = m; }
  else convs.unshift({ peer: m.peer, last: m, messages: 1 });
  convs.sort((a, b) => (b.last ? Date.parse(b.last.time) : 0) - (a.last ? Date.parse(a.last.time) : 0));
  renderConvs();
  if (m.peer !== current) return;
  if (early) { early.push(m); return; }
  const i = messages.findIndex(x => x.id === m.id);
  const ol = $('#messages');
  if (i >= 0) {
    if ((rank[m.state] || 0) < (rank[messages[i].state] || 0)) return;
    messages[i] = m;
    const li = ol.querySelector(`li[data-id="${m.id}"]`);
    if (li) renderMessage(li, m);
  } else {
    messages.push(m);
    const li = document.createElement('li'); renderMessage(li, m); ol.append(li);
    ol.scrollTop = ol.scrollHeight;
  }
}

function listen() {
  const es = new EventSource('/api/events');
  es.onopen = () => { $('#live').classList.add('on'); loadConvs(); if (current) open(current); };
  es.onerror = () => $('#live').classList.remove('on');
  es.onmessage = ev => onEvent(JSON.parse(ev.data));
  addEventListener('pagehide', () => es.close());
}

$('#new-chat').onsubmit = ev => {
  ev.preventDefault();
  const pk = $('#new-peer').value.trim().toLowerCase();
  if (pk === me) { alert('That is this visor\'s own key.'); return; }
  if (!convs.some(c => c.peer === pk)) convs.unshift({ peer: pk, messages: 0 });
  $('#new-peer').value = '';
  open(pk);
};

$('#compose').onsubmit = async ev => {
  ev.preventDefault();
  const text = $('#text').value;
  if (!text.trim()) return;
  try {
    await api('POST', '/api/send', { peer: current, text });
    $('#text').value = ''; $('#compose-error').hidden = true;
  } catch (e) { $('#compose-error').textContent = 'Not sent: ' + e.message; $('#compose-error').hidden = false; }
};
$('#text').onkeydown = ev => { if (ev.key === 'Enter' && !ev.shiftKey) { ev.preventDefault(); $('#compose').requestSubmit(); } };

$('#back').onclick = () => { early = null; document.querySelector('main').classList.remove('open'); current = ''; location.hash = ''; renderConvs(); };

$('#rename').onclick = async () => {
  const label = prompt('A name for ' + current + ' (empty: none)', nameOf(current) === short(current) ? '' : nameOf(current));
  if (label === null) return;
  try { await api('POST', '/api/label', { peer: current, label: label.trim() }); await loadConvs(); $('#peer-name').textContent = nameOf(current); }
  catch (e) { alert(e.message); }
};

(async () => {
  const info = await api('GET', '/api/info');
  me = info.pk;
  $('#me').textContent = 'you are ' + me;
  $('#text').maxLength = info.max_text;
  await loadConvs();
  const want = location.hash.slice(1);
  if (/^[0-9a-f]{66}$/.test(want)) open(want);
  listen();
})();
