'use strict';
// The hypervisor's web terminal: a shell on one visor, over the WebSocket
// GET /pty/{pk} (docs/protocol.md, "Hypervisor REST API"). The page is
// opened as terminal.html#<visor key>; closing it ends the shell.

const $ = s => document.querySelector(s);
// What the page's Content-Security-Policy blocked (tests read it: none).
window.cspViolations = [];
document.addEventListener('securitypolicyviolation', e => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
const pk = decodeURIComponent(location.hash.slice(1));
let ws = null;

function setState(cls, text) {
  const s = $('#state');
  s.className = 'state ' + cls;
  s.textContent = text;
}

function note(text, link) {
  const n = $('#note');
  n.textContent = text + (link ? ' ' : '');
  if (link) {
    const a = document.createElement('a');
    a.href = link.href;
    a.textContent = link.text;
    n.appendChild(a);
  }
  n.hidden = false;
}

async function label() {
  try {
    const r = await fetch('/api/labels', { credentials: 'same-origin' });
    if (r.ok) return (await r.json())[pk] || '';
  } catch { /* the key alone will do */ }
  return '';
}

async function main() {
  if (!/^0[23][0-9a-f]{64}$/.test(pk)) {
    setState('failed', 'no visor');
    note('This page opens a terminal on one visor: open it from the hypervisor\'s visor page.', { href: '/', text: 'To the hypervisor' });
    return;
  }
  const t = $('#title');
  t.textContent = 'Terminal on ';
  const name = await label();
  const k = document.createElement('span');
  k.className = 'pk';
  k.textContent = pk.slice(0, 8) + '…' + pk.slice(-4);
  k.title = pk;
  if (name) t.append(name + ' ');
  t.append(k);
  document.title = `${name || pk.slice(0, 8)} — terminal`;

  const s = await fetch('/api/session', { credentials: 'same-origin' });
  if (!s.ok) {
    setState('failed', 'not logged in');
    note('Log in to the hypervisor first, then open the terminal again.', { href: '/', text: 'Log in' });
    return;
  }
  const csrf = (await s.json()).csrf_token;

  const term = new Terminal({
    cursorBlink: true, fontSize: 14, scrollback: 5000, allowProposedApi: false,
    fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace',
    theme: { background: '#0f1218', foreground: '#d8dee9', cursor: '#5b8cff', selectionBackground: '#3b4a6b' },
  });
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open($('#term'));
  fit.fit();
  window.TERM = term; // for tests and the console
  connect(term, fit, csrf);
  window.addEventListener('resize', () => fit.fit());
  $('#again').onclick = () => { term.reset(); $('#again').hidden = true; $('#note').hidden = true; connect(term, fit, csrf); };
}

function connect(term, fit, csrf) {
  setState('connecting', 'connecting…');
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const q = new URLSearchParams({ csrf, rows: term.rows, cols: term.cols });
  ws = new WebSocket(`${proto}//${location.host}/pty/${pk}?${q}`);
  ws.binaryType = 'arraybuffer';
  const enc = new TextEncoder();
  let ended = false;
  const subs = [
    term.onData(d => { if (ws.readyState === WebSocket.OPEN) ws.send(enc.encode(d)); }),
    term.onBinary(d => { if (ws.readyState === WebSocket.OPEN) ws.send(Uint8Array.from(d, c => c.charCodeAt(0))); }),
    term.onResize(({ rows, cols }) => { if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'resize', rows, cols })); }),
  ];
  const finish = (cls, text) => {
    if (ended) return;
    ended = true;
    subs.forEach(s => s.dispose());
    setState(cls, text);
    $('#again').hidden = false;
  };
  ws.onmessage = ev => {
    if (typeof ev.data !== 'string') {
      term.write(new Uint8Array(ev.data));
      return;
    }
    const m = JSON.parse(ev.data);
    if (m.type === 'ready') {
      setState('open', 'connected');
      fit.fit();
      term.focus();
    } else if (m.type === 'exit') {
      term.write(`\r\n\x1b[2m[the shell exited${m.code ? ' with status ' + m.code : ''}${m.reason ? ': ' + m.reason : ''}]\x1b[0m\r\n`);
      finish('ended', 'ended');
    } else if (m.type === 'error') {
      note(m.message);
      finish('failed', 'failed');
    }
  };
  ws.onclose = ev => {
    if (!ended) {
      if (ev.code !== 1000) note(`The connection to the hypervisor closed (${ev.code}${ev.reason ? ': ' + ev.reason : ''}).`);
      finish('ended', 'disconnected');
    }
  };
}

window.addEventListener('pagehide', () => { if (ws) ws.close(); });
main();
