// The console's one script. Every page is a shell the server draws; this
// fills it from the JSON API (docs/API.md), keeps it live from /api/events,
// and says in the status line what is happening on every action that takes
// time. No framework: plain DOM, so the box serves one small file.
(function () {
  'use strict';

  // ---------- small helpers ----------

  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  // el builds an element: el('td', {class: 'x', 'data-label': 'Name'}, 'text', child...)
  function el(tag, attrs, ...kids) {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') n.className = v;
      else if (k === 'text') n.textContent = v;
      else if (k.startsWith('on')) n.addEventListener(k.slice(2), v);
      else n.setAttribute(k, v === true ? '' : String(v));
    }
    for (const kid of kids.flat()) {
      if (kid === undefined || kid === null || kid === false) continue;
      n.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return n;
  }

  // td is a table cell whose content sits in one box, so on a phone (where
  // rows become cards) its label and its content line up side by side.
  function td(label, cls, ...kids) {
    return el('td', { 'data-label': label, class: cls }, el('div', { class: 'cell' }, ...kids));
  }

  function badge(state, label) {
    return el('span', { class: 'badge', 'data-state': state }, label || state);
  }

  function duration(s) {
    s = Math.max(0, Math.floor(s || 0));
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60), sec = s % 60;
    if (d) return d + ' d ' + h + ' h';
    if (h) return h + ' h ' + m + ' min';
    if (m) return m + ' min ' + sec + ' s';
    return sec + ' s';
  }

  function bytes(n) {
    if (!n) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + ' ' + units[i];
  }

  function ago(iso) {
    if (!iso) return '–';
    const t = Date.parse(iso);
    if (isNaN(t) || t <= 0) return '–';
    const s = (Date.now() - t) / 1000;
    if (s < 5) return 'just now';
    return duration(s) + ' ago';
  }

  function rate(x) {
    if (x === undefined || x === null) return '–';
    return x >= 100 ? String(Math.round(x)) : (Math.round(x * 10) / 10).toString();
  }

  // ---------- the status line ----------

  const statusLine = () => $('#status');
  // say shows what is happening: kind is busy, ok, error or info.
  function say(msg, kind) {
    const s = statusLine();
    if (!s) return;
    s.textContent = msg || '';
    s.dataset.kind = kind || 'info';
  }

  // busy runs fn with the button disabled and the status saying msg.
  async function busy(button, msg, fn) {
    const buttons = Array.isArray(button) ? button : [button];
    buttons.forEach(b => { if (b) { b.disabled = true; b.setAttribute('aria-busy', 'true'); } });
    say(msg, 'busy');
    try {
      return await fn();
    } finally {
      buttons.forEach(b => { if (b) { b.disabled = false; b.removeAttribute('aria-busy'); } });
    }
  }

  // ask shows the page's confirmation dialog before something that drops
  // clients or data; it resolves true only when the owner presses okLabel.
  // Cancel is focused first, so Enter alone never confirms.
  function ask(title, text, okLabel) {
    const d = $('#confirm');
    $('#confirm-title').textContent = title;
    $('#confirm-text').textContent = text;
    $('#confirm-ok').textContent = okLabel;
    d.returnValue = '';
    return new Promise(resolve => {
      d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
      d.showModal();
      $('#confirm-cancel').focus();
    });
  }

  // A message kept across one page change (e.g. "bridge saved").
  function flash(msg, kind) { sessionStorage.setItem('gw-flash', JSON.stringify([msg, kind])); }
  function showFlash() {
    const f = sessionStorage.getItem('gw-flash');
    if (!f) return;
    sessionStorage.removeItem('gw-flash');
    try { const [m, k] = JSON.parse(f); say(m, k); } catch (e) { /* ignore a bad value */ }
  }

  // ---------- the API ----------

  let csrf = '';

  class APIError extends Error {
    constructor(status, body, retryAfter) {
      super((body && body.error) || ('the box answered ' + status));
      this.status = status;
      this.body = body || {};
      this.retryAfter = retryAfter;
    }
    get unavailable() { return this.status === 503 || this.status === 0; }
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    let payload;
    if (body instanceof FormData) payload = body;
    else if (body instanceof Blob) { headers['Content-Type'] = 'application/octet-stream'; payload = body; }
    else if (body !== undefined) { headers['Content-Type'] = 'application/json'; payload = JSON.stringify(body); }
    if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
    let res;
    try {
      res = await fetch(path, { method, headers, body: payload, credentials: 'same-origin', cache: 'no-store' });
    } catch (e) {
      throw new APIError(0, { error: 'the box did not answer (' + e.message + ')' });
    }
    const text = await res.text();
    let data = null;
    if (text) { try { data = JSON.parse(text); } catch (e) { data = { error: text.trim() }; } }
    if (res.status === 401 && data && data.login) {
      goLogin();
      throw new APIError(401, data);
    }
    if (!res.ok) throw new APIError(res.status, data, res.headers.get('Retry-After'));
    return data;
  }

  function goLogin() {
    location.assign('/login?next=' + encodeURIComponent(location.pathname + location.search));
  }

  // nextPath is where to go after login: only a path of this site.
  function nextPath() {
    const n = new URLSearchParams(location.search).get('next') || '/';
    return (n.startsWith('/') && !n.startsWith('//') && !n.startsWith('/\\')) ? n : '/';
  }

  // unavailable draws "X is not running" where a part is missing.
  function unavailableRow(tbody, cols, err) {
    tbody.replaceChildren(el('tr', {}, el('td', { colspan: cols }, badge('unavailable', 'unavailable'), ' ', err.message)));
  }

  // ---------- live events ----------

  const listeners = {};
  function on(name, fn) { (listeners[name] = listeners[name] || []).push(fn); }

  function startEvents() {
    const live = $('#live');
    if (!window.EventSource) { if (live) live.textContent = 'live updates need a newer browser'; return; }
    const es = new EventSource('/api/events');
    const mark = (state, text) => { if (live) { live.dataset.state = state; live.textContent = text; } };
    es.onopen = () => mark('up', 'live');
    es.onerror = () => mark('down', es.readyState === EventSource.CLOSED ? 'not live (reload the page)' : 'reconnecting…');
    for (const name of ['app', 'stats', 'flow', 'devices']) {
      es.addEventListener(name, ev => {
        let data;
        try { data = JSON.parse(ev.data); } catch (e) { return; }
        (listeners[name] || []).forEach(fn => fn(data));
      });
    }
    window.addEventListener('pagehide', () => es.close());
  }

  // every runs fn now and then every ms while the page is shown.
  function every(ms, fn) {
    let timer = null;
    const tick = async () => {
      try { await fn(); } finally { timer = setTimeout(tick, ms); }
    };
    tick();
    window.addEventListener('pagehide', () => clearTimeout(timer));
  }

  // ---------- the config-change flow, shown step by step ----------

  const stepNames = {
    check: 'Check the new file',
    write: 'Write it, keeping the earlier version',
    restart: 'Restart the broker',
    wait: 'Wait until the broker is ready',
    rollback: 'Put the previous file back and restart',
    done: 'Done',
  };

  // Flow follows one change through check → write → restart → wait, from
  // the flow events while the request runs and from its answer at the end.
  class Flow {
    constructor(kinds) {
      this.card = $('#steps-card');
      this.list = $('#steps');
      this.errBox = $('#broker-error');
      this.kinds = kinds;
      this.id = null;
      this.active = false;
      this.items = {};
      on('flow', ev => this.event(ev));
    }

    start() {
      this.id = null;
      this.active = true;
      this.items = {};
      this.list.replaceChildren();
      for (const k of ['check', 'write', 'restart', 'wait']) this.add(k);
      this.errBox.hidden = true;
      this.errBox.textContent = '';
      this.card.hidden = false;
      this.set('check', 'running');
    }

    add(step) {
      const li = el('li', { 'data-step': step, 'data-state': 'pending' }, el('span', {}, stepNames[step]), el('span', { class: 'detail' }));
      this.items[step] = li;
      this.list.append(li);
      return li;
    }

    set(step, state, detail) {
      const li = this.items[step] || this.add(step);
      li.dataset.state = state;
      if (detail !== undefined) $('.detail', li).textContent = detail;
      if (state === 'running') say(stepNames[step] + '…', 'busy');
    }

    event(ev) {
      if (!this.active || !this.kinds.includes(ev.kind)) return;
      if (this.id === null) this.id = ev.flow;
      if (ev.flow !== this.id) return;
      if (ev.step === 'done') return;
      const state = ev.status === 'ok' ? 'done' : ev.status === 'failed' ? 'failed' : 'running';
      // Steps before this one are over once it runs.
      if (state === 'running') {
        for (const [k, li] of Object.entries(this.items)) {
          if (k === ev.step) break;
          if (li.dataset.state === 'running') li.dataset.state = 'done';
        }
      }
      this.set(ev.step, state, ev.message || '');
    }

    // finish draws the answer: res on success, err on failure.
    finish(res, err) {
      this.active = false;
      const running = Object.keys(this.items).find(k => this.items[k].dataset.state === 'running');
      if (!err) {
        // A step whose own "ok" event was not seen still shows its running
        // text ("waiting for mqtt…"): the answer says it ended well.
        const doneText = { check: 'the change checks', write: 'written', restart: 'restarted', wait: 'the broker is ready' };
        for (const [k, li] of Object.entries(this.items)) {
          if (res && res.unchanged && k !== 'check') this.set(k, 'skipped', 'nothing changed');
          else if (li.dataset.state !== 'failed' && li.dataset.state !== 'done') this.set(k, 'done', doneText[k]);
        }
        return;
      }
      const b = err.body || {};
      if (err.status === 422) {
        this.set('check', 'failed', err.message);
        for (const k of ['write', 'restart', 'wait']) this.set(k, 'skipped', 'nothing was written');
      } else if (b.rolled_back) {
        const failed = (running && running !== 'rollback') ? running : 'wait';
        this.set(failed, 'failed', 'the broker did not come up');
        this.set('rollback', 'done', 'the previous file is back in force');
        this.errBox.textContent = [b.broker_error || '', ...(b.log || [])].filter(Boolean).join('\n');
        this.errBox.hidden = !this.errBox.textContent;
      } else {
        this.set(running || 'check', 'failed', err.message);
      }
    }

    // run sends one change through the flow and tells the outcome.
    async run(button, what, send) {
      this.start();
      try {
        const res = await busy(button, what + '…', send);
        this.finish(res, null);
        return res;
      } catch (err) {
        this.finish(null, err);
        throw err;
      }
    }
  }

  // flowMessage says how a change through the flow ended.
  function flowMessage(err) {
    const b = err.body || {};
    if (b.rolled_back) return 'Not saved: the broker did not start with it, so the previous file is back in force. The broker said: ' + (b.broker_error || err.message);
    if (err.status === 422) return 'Not saved: ' + err.message;
    return 'Not saved: ' + err.message;
  }

  // ---------- setup and login ----------

  function pageSetup() {
    const form = $('#setup-form');
    const errP = $('#setup-error');
    $('#setup-password').focus();
    form.addEventListener('submit', async e => {
      e.preventDefault();
      errP.textContent = '';
      const pw = $('#setup-password'), again = $('#setup-confirm');
      pw.removeAttribute('aria-invalid'); again.removeAttribute('aria-invalid');
      if (pw.value.length < 8) {
        pw.setAttribute('aria-invalid', 'true'); errP.textContent = 'The password needs at least 8 characters.'; pw.focus(); return;
      }
      if (pw.value !== again.value) {
        again.setAttribute('aria-invalid', 'true'); errP.textContent = 'The two passwords are not the same.'; again.focus(); return;
      }
      try {
        const res = await busy($('button[type=submit]', form), 'Setting the password…', () => api('POST', '/api/setup', { password: pw.value }));
        csrf = res.csrf_token || '';
        flash('The admin password is set and you are logged in.', 'ok');
        location.assign('/');
      } catch (err) {
        say('', 'info');
        errP.textContent = err.message;
      }
    });
  }

  function pageLogin() {
    const form = $('#login-form');
    const errP = $('#login-error');
    const pw = $('#login-password');
    pw.focus();
    form.addEventListener('submit', async e => {
      e.preventDefault();
      errP.textContent = '';
      try {
        const res = await busy($('button[type=submit]', form), 'Logging in…', () => api('POST', '/api/login', { password: pw.value, keep: $('#login-keep').checked }));
        csrf = res.csrf_token || '';
        location.assign(nextPath());
      } catch (err) {
        say('', 'info');
        if (err.status === 409 && err.body.setup_needed) { location.assign('/setup'); return; }
        errP.textContent = err.status === 429
          ? 'Too many wrong passwords: try again in ' + (err.retryAfter || 'a few') + ' seconds.'
          : err.message;
        pw.select();
        pw.focus();
      }
    });
  }

  // ---------- overview ----------

  function pageOverview() {
    const graph = new RateGraph($('#rate-graph'), $('#rate-desc'));
    const tile = id => $('#' + id + ' dd');

    function drawStats(s) {
      const b = s.broker || {};
      // No figures is not a broker down: the box's own client may be the
      // one refused. The tile says which.
      tile('t-broker').replaceChildren(b.up ? badge('up', 'up') : b.error ? badge('unknown', 'no figures') : badge('down', 'down'),
        !b.up && b.error ? el('div', { class: 'small muted', id: 't-broker-why' }, b.error) : '');
      // The owner's figures where the broker tells them apart (a plain
      // Mosquitto does not: its totals are shown, and said to be totals).
      const split = b.up && b.split;
      tile('t-clients').textContent = b.up ? String((split ? b.owner_clients : b.clients_connected) ?? '–') : '–';
      $('#t-clients-box').textContent = !b.up ? '' : split ? '+ ' + b.box_clients + ' of the box' : 'all clients';
      const inS = split ? b.owner_in_per_s : b.messages_in_per_s, outS = split ? b.owner_out_per_s : b.messages_out_per_s;
      tile('t-rate').textContent = b.up ? rate(inS || 0) + ' in · ' + rate(outS || 0) + ' out' : '–';
      $('#t-rate-box').textContent = !b.up ? '' : split
        ? '$SYS ' + rate((b.sys_in_per_s || 0) + (b.sys_out_per_s || 0)) + ' · box ' + rate((b.box_in_per_s || 0) + (b.box_out_per_s || 0))
        : 'all messages, $SYS included';
      tile('t-retained').textContent = b.up ? String(b.retained ?? '–') : '–';
      const br = s.bridges;
      if (!br) tile('t-bridges').replaceChildren(badge('unavailable', 'unavailable'));
      else if (!br.total) tile('t-bridges').textContent = 'none';
      else if (br.unknown) tile('t-bridges').replaceChildren(el('span', {}, br.unknown + ' unknown'), el('span', { class: 'small' }, ' · no figures'));
      else tile('t-bridges').replaceChildren(el('span', {}, br.up + ' up'), br.down ? el('span', { class: 'small' }, ' · ' + br.down + ' down') : '');
      if (s.devices === null || s.devices === undefined) tile('t-devices').replaceChildren(badge('unavailable', 'unavailable'));
      else tile('t-devices').textContent = String(s.devices);
      graph.set(s.history || [], b);
    }

    api('GET', '/api/broker/stats').then(drawStats, err => {
      for (const id of ['t-broker', 't-clients', 't-rate', 't-retained', 't-bridges', 't-devices']) {
        tile(id).replaceChildren(badge('unavailable', 'unavailable'));
      }
      graph.caption.textContent = 'Broker figures are unavailable: ' + err.message;
    });
    on('stats', drawStats);
    on('devices', d => { tile('t-devices').textContent = String(d.count); });

    const list = $('#ov-apps');
    const apps = new Map();
    function drawApps() {
      if (!apps.size) { list.replaceChildren(el('li', { class: 'muted' }, 'No apps are declared.')); return; }
      list.replaceChildren(...Array.from(apps.values()).map(a => el('li', { 'data-app': a.name },
        el('a', { class: 'grow', href: '/apps/' + encodeURIComponent(a.name) }, a.name),
        badge(a.status),
        a.status === 'online' ? el('span', { class: 'muted small' }, 'up ' + duration(a.uptime_s)) : '',
        a.last_error && a.status !== 'online' ? el('span', { class: 'muted small' }, a.last_error) : '')));
    }
    api('GET', '/api/apps').then(list0 => { (list0 || []).forEach(a => apps.set(a.name, a)); drawApps(); },
      err => list.replaceChildren(el('li', {}, badge('unavailable', 'unavailable'), ' ', err.message)));
    on('app', a => { apps.set(a.name, a); drawApps(); });
  }

  // RateGraph draws messages per second over the last 10 minutes as SVG.
  class RateGraph {
    constructor(svg, caption) {
      this.svg = svg;
      this.caption = caption;
      this.points = [];
      window.addEventListener('resize', () => this.draw());
    }

    set(history, broker) {
      this.points = history.map(p => ({ t: Date.parse(p.t), in: +p.in_per_s || 0, out: +p.out_per_s || 0 })).filter(p => !isNaN(p.t));
      this.broker = broker;
      this.draw();
    }

    draw() {
      const NS = 'http://www.w3.org/2000/svg';
      const svg = this.svg;
      const W = Math.max(200, Math.round(svg.clientWidth || 600)), H = 160, padL = 34, padB = 18, padT = 8;
      svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
      svg.setAttribute('preserveAspectRatio', 'none');
      const s = (tag, attrs) => { const n = document.createElementNS(NS, tag); for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v); return n; };
      const now = this.points.length ? Math.max(Date.now(), this.points[this.points.length - 1].t) : Date.now();
      const t0 = now - 10 * 60 * 1000;
      const pts = this.points.filter(p => p.t >= t0);
      let max = Math.max(1, ...pts.map(p => Math.max(p.in, p.out)));
      const mag = Math.pow(10, Math.floor(Math.log10(max)));
      max = Math.ceil(max / mag) * mag;
      const x = t => padL + (W - padL - 4) * (t - t0) / (now - t0);
      const y = v => padT + (H - padT - padB) * (1 - v / max);
      const kids = [];
      for (const f of [0, 0.5, 1]) {
        kids.push(s('line', { class: 'grid', x1: padL, x2: W - 4, y1: y(max * f), y2: y(max * f) }));
        const lbl = s('text', { x: padL - 4, y: y(max * f) + 4, 'text-anchor': 'end' });
        lbl.textContent = rate(max * f);
        kids.push(lbl);
      }
      for (const [m, anchor] of [[10, 'start'], [5, 'middle'], [0, 'end']]) {
        const lbl = s('text', { x: x(now - m * 60000), y: H - 4, 'text-anchor': anchor });
        lbl.textContent = m ? '−' + m + ' min' : 'now';
        kids.push(lbl);
      }
      if (pts.length > 1) {
        const line = key => pts.map((p, i) => (i ? 'L' : 'M') + x(p.t).toFixed(1) + ' ' + y(p[key]).toFixed(1)).join(' ');
        kids.push(s('path', { class: 'area', d: line('in') + ` L${x(pts[pts.length - 1].t).toFixed(1)} ${y(0)} L${x(pts[0].t).toFixed(1)} ${y(0)} Z` }));
        kids.push(s('path', { class: 'line', d: line('in') }));
        kids.push(s('path', { class: 'line', d: line('out'), 'stroke-dasharray': '4 3', style: 'stroke-opacity:.6' }));
      }
      svg.replaceChildren(...kids);
      const b = this.broker || {};
      if (!b.up) { this.caption.textContent = b.error ? 'No figures: ' + b.error + '.' : 'The broker is down: no figures.'; return; }
      // The graph is the owner's traffic where the broker tells it apart.
      const inS = b.split ? b.owner_in_per_s : b.messages_in_per_s, outS = b.split ? b.owner_out_per_s : b.messages_out_per_s;
      if (pts.length < 2) { this.caption.textContent = 'Collecting figures… now ' + rate(inS) + ' in/s, ' + rate(outS) + ' out/s.'; return; }
      const peak = Math.max(...pts.map(p => p.in));
      this.caption.textContent = 'Now ' + rate(inS) + ' in/s (solid) and ' + rate(outS) + ' out/s (dashed); peak ' + rate(peak) + ' in/s in the last 10 minutes.';
    }
  }

  // ---------- apps ----------

  // appFacts are an app's figures as shown; uptime counts on between updates.
  function uptimeOf(a) {
    if (a.status !== 'online' && a.status !== 'launching') return '–';
    return duration((a.uptime_s || 0) + (Date.now() - (a._at || Date.now())) / 1000);
  }
  function stamp(a) { a._at = Date.now(); return a; }
  const secs = s => (s < 10 && s % 1 ? s.toFixed(1) : Math.round(s)) + ' s';

  // isBroker tells the broker's app (gatewayd broker) from the others: its
  // stop drops every client on the box.
  const isBroker = a => a && (a.args || [])[0] === 'broker' && /gatewayd$/.test(a.command || '');

  // confirmAction asks before a stop or restart, saying what it drops.
  function confirmAction(a, name, action) {
    if (action === 'start') return Promise.resolve(true);
    const verb = action === 'stop' ? 'Stop' : 'Restart';
    const what = isBroker(a)
      ? (action === 'stop'
        ? 'It is the broker: every connected client and device is disconnected, and nothing can publish until it is started again.'
        : 'It is the broker: every connected client and device is disconnected for a moment and has to reconnect.')
      : (action === 'stop' ? name + ' stops until you start it again.' : name + ' is stopped and started again.');
    return ask(verb + ' ' + name + '?', what, verb + ' ' + name);
  }

  async function appAction(button, name, action, app) {
    const words = { start: ['Starting', 'started'], stop: ['Stopping', 'stopped'], restart: ['Restarting', 'restarted'] }[action];
    if (!await confirmAction(app, name, action)) { say(words[0] + ' ' + name + ' cancelled.', 'info'); return null; }
    try {
      const res = await busy(button, words[0] + ' ' + name + '…', () => api('POST', '/api/apps/' + encodeURIComponent(name) + '/' + action));
      const st = (res || []).find(a => a.name === name);
      say(name + ' ' + words[1] + (st ? ': now ' + st.status : '') + '.', 'ok');
      return (res || []).map(stamp);
    } catch (err) {
      say('Could not ' + action + ' ' + name + ': ' + err.message, 'error');
      return null;
    }
  }

  function pageApps() {
    const tbody = $('#apps-table tbody');
    const apps = new Map();
    function row(a) {
      const name = a.name;
      const buttons = ['start', 'stop', 'restart'].map(act => el('button', {
        type: 'button', 'data-action': act, 'aria-label': act[0].toUpperCase() + act.slice(1) + ' ' + name,
        onclick: async e => { const r = await appAction(e.currentTarget, name, act, apps.get(name)); if (r) { r.forEach(x => apps.set(x.name, x)); draw(); } },
      }, act[0].toUpperCase() + act.slice(1)));
      return el('tr', { 'data-app': name },
        td('App', null, el('a', { href: '/apps/' + encodeURIComponent(name) }, name)),
        td('Status', null, badge(a.status), a.last_error && a.status !== 'online' ? el('div', { class: 'muted small' }, a.last_error) : ''),
        td('Uptime', 'uptime', uptimeOf(a)),
        td('Restarts', null, String(a.restarts ?? 0)),
        td('Memory', null, bytes(a.memory_bytes)),
        td('Actions', null, el('div', { class: 'actions' }, buttons)));
    }
    function draw() {
      // Redraw only rows that changed, so keyboard focus stays put.
      const want = Array.from(apps.values());
      if (!want.length) { tbody.replaceChildren(el('tr', {}, el('td', { colspan: 6 }, 'No apps are declared in gateway.yaml.'))); return; }
      const have = new Map($$('tr[data-app]', tbody).map(tr => [tr.dataset.app, tr]));
      if (have.size !== want.length) tbody.replaceChildren();
      for (const a of want) {
        const fresh = row(a);
        const old = have.get(a.name);
        if (!old || !old.isConnected) { tbody.append(fresh); continue; }
        // Swap every cell but the actions, which keep focus.
        const oc = old.children, nc = fresh.children;
        for (let i = 0; i < nc.length - 1; i++) old.replaceChild(nc[i].cloneNode(true), oc[i]);
      }
    }
    api('GET', '/api/apps').then(l => { (l || []).forEach(a => apps.set(a.name, stamp(a))); draw(); },
      err => unavailableRow(tbody, 6, err));
    on('app', a => { apps.set(a.name, stamp(a)); draw(); });
    setInterval(() => $$('tr[data-app]', tbody).forEach(tr => {
      const a = apps.get(tr.dataset.app);
      const c = $('.uptime .cell', tr);
      if (a && c) c.textContent = uptimeOf(a);
    }), 1000);
  }

  function pageApp(name) {
    const facts = $('#app-facts');
    let app = null;
    function draw() {
      const a = app;
      const f = [
        ['Status', badge(a.status)],
        ['Ready', a.ready ? 'yes' : 'no'],
        ['Uptime', el('span', { id: 'app-uptime' }, uptimeOf(a))],
        ['PID', a.pid ? String(a.pid) : '–'],
        ['Restarts', String(a.restarts ?? 0) + (a.unstable_restarts ? ' (' + a.unstable_restarts + ' unstable)' : '')],
        ['Memory', bytes(a.memory_bytes)],
        ['CPU', a.cpu_percent !== undefined ? rate(a.cpu_percent) + ' %' : '–'],
        ['Last exit', a.last_exit_at ? (a.last_signal ? 'signal ' + a.last_signal : 'code ' + a.last_exit_code) + ', ' + ago(a.last_exit_at) : '–'],
        ['Last error', a.last_error || '–'],
        ['Next restart', a.next_restart_in_s == null ? '–' : 'in ' + secs(a.next_restart_in_s) + ' (backoff ' + secs(a.restart_delay_s) + ')'],
        ['Restart policy', a.restart ? 'delay ' + secs(a.restart.delay_s) + ', backoff up to ' + secs(a.restart.backoff_max_s) + ', stable after ' + secs(a.restart.min_uptime_s) : '–'],
        ['Max memory', a.max_memory_bytes ? bytes(a.max_memory_bytes) : 'no limit'],
        ['Ready check', a.ready_check || '–'],
        ['Command', el('code', {}, [a.command, ...(a.args || [])].join(' '))],
      ];
      if (a.restart_reason) f.splice(9, 0, ['Last restart', a.restart_reason]);
      facts.replaceChildren(...f.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
    }
    const set = a => { app = stamp(a); draw(); };
    const path = '/api/apps/' + encodeURIComponent(name);
    // The broker login the box made for this app (Home Assistant's).
    api('GET', path + '/mqtt').then(l => {
      $('#app-mqtt').replaceChildren(...[['Broker', l.host + ':' + l.port], ['Username', l.username], ['Password', l.password]]
        .flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, el('code', {}, v))]));
      $('#app-mqtt-card').hidden = false;
    }, () => {});
    api('GET', path).then(set, err => {
      facts.replaceChildren(el('dt', {}, 'Status'), el('dd', {}, badge('unavailable', 'unavailable'), ' ', err.message));
      $$('#app-actions button').forEach(b => { b.disabled = true; });
    });
    on('app', a => { if (a.name === name) set(a); });
    setInterval(() => { const u = $('#app-uptime'); if (u && app) u.textContent = uptimeOf(app); }, 1000);
    for (const b of $$('#app-actions button')) {
      b.addEventListener('click', async () => {
        const r = await appAction(b, name, b.dataset.action, app);
        const st = r && r.find(x => x.name === name);
        if (st) set(st);
      });
    }

    // The log tail: the last lines, then whatever is written since.
    const pre = $('#log');
    const follow = $('#log-follow');
    let offset = null;
    let lines = [];
    const MAX = 2000;
    function append(newLines, reset) {
      if (reset) lines = [];
      lines = lines.concat(newLines);
      if (lines.length > MAX) lines = lines.slice(lines.length - MAX);
      pre.textContent = lines.length ? lines.join('\n') : '(nothing printed yet)';
      if (follow.checked) pre.scrollTop = pre.scrollHeight;
    }
    every(2000, async () => {
      if (offset !== null && !follow.checked) return;
      try {
        const q = offset === null ? '?n=200' : '?since=' + offset;
        const res = await api('GET', path + '/logs' + q);
        $('#log-file').textContent = res.file || '';
        if (offset === null || res.rotated) append(res.lines || [], true);
        else if ((res.lines || []).length) append(res.lines, false);
        offset = res.offset;
      } catch (err) {
        if (offset === null) pre.textContent = 'The log is unavailable: ' + err.message;
      }
    });
  }

  // ---------- broker config ----------

  // Editor keeps a textarea, its line-number gutter and the backdrop that
  // shows each line's error or warning beside it, in step.
  class Editor {
    constructor() {
      this.ta = $('#conf');
      this.gutter = $('#gutter');
      this.backdrop = $('#backdrop');
      this.marks = new Map(); // line → {kind, messages, text}
      this.ta.addEventListener('input', () => {
        // The list of the last Check is about the text as it was.
        const d = $('#diag');
        if (d) d.hidden = true;
        this.draw();
      });
      this.ta.addEventListener('scroll', () => this.sync());
      this.draw();
    }
    get text() { return this.ta.value; }
    set text(v) { this.ta.value = v; this.draw(); }
    setMarks(errors, warnings) {
      this.marks = new Map();
      const lines = this.ta.value.split('\n');
      const add = (d, kind) => {
        if (!d.line) return;
        // A mark holds its line's text: once the line is edited, it goes.
        const m = this.marks.get(d.line) || { kind, messages: [], text: lines[d.line - 1] };
        if (kind === 'err') m.kind = 'err';
        m.messages.push(d.message);
        this.marks.set(d.line, m);
      };
      (warnings || []).forEach(d => add(d, 'warn'));
      (errors || []).forEach(d => add(d, 'err'));
      this.draw();
    }
    draw() {
      const lines = this.ta.value.split('\n');
      const g = [], b = [];
      lines.forEach((line, i) => {
        const n = i + 1;
        let m = this.marks.get(n);
        if (m && m.text !== line) m = null;
        g.push(el('div', { class: m ? m.kind : null, title: m ? m.messages.join('; ') : null, 'data-line': n }, String(n)));
        b.push(el('div', { class: m ? m.kind : null, 'data-line': n }, el('span', {}, line),
          m ? el('span', { class: 'msg' }, '   ◀ ' + (m.kind === 'err' ? 'error: ' : 'warning: ') + m.messages.join('; ')) : ''));
      });
      this.gutter.replaceChildren(...g);
      this.backdrop.replaceChildren(...b);
      this.sync();
    }
    sync() {
      this.gutter.style.transform = `translateY(${-this.ta.scrollTop}px)`;
      this.backdrop.style.transform = `translate(${-this.ta.scrollLeft}px, ${-this.ta.scrollTop}px)`;
    }
    // goTo puts the caret at the start of line n and scrolls it into view.
    goTo(n) {
      goToLine(this.ta, n);
      const lh = parseFloat(getComputedStyle(this.ta).lineHeight) || 21;
      this.ta.scrollTop = Math.max(0, (n - 3) * lh);
      this.sync();
    }
  }

  function pageConfig() {
    const ed = new Editor();
    const flow = new Flow(['config', 'restore']);
    const checkBtn = $('#check'), saveBtn = $('#save'), revertBtn = $('#revert');
    let onDisk = '';
    let file = 'mosquitto.conf';

    function showDiag(res) {
      const errors = res.errors || [], warnings = res.warnings || [];
      // Marks go beside lines of this file only; an included file's are listed.
      const base = file.split('/').pop();
      const mine = d => !d.file || d.file === base || d.file === file;
      ed.setMarks(errors.filter(mine), warnings.filter(mine));
      // The editor shows the first error's line (or the first warning's);
      // the others are marked beside their lines and listed below.
      const first = [...errors.filter(mine), ...warnings.filter(mine)].filter(d => d.line)
        .sort((a, b) => (errors.includes(b) - errors.includes(a)) || a.line - b.line)[0];
      if (first) ed.goTo(first.line);
      const items = [...errors.map(d => [d, 'err']), ...warnings.map(d => [d, 'warn'])]
        .sort((a, b) => (a[0].line || 0) - (b[0].line || 0));
      const box = $('#diag');
      box.hidden = false;
      if (!items.length) {
        $('#diag-list').replaceChildren(el('li', {}, badge('up', 'ok'), ' No errors or warnings.'));
        return;
      }
      $('#diag-list').replaceChildren(...items.map(([d, kind]) => {
        const where = (mine(d) ? '' : d.file + ' ') + (d.line ? 'line ' + d.line : '');
        const text = (kind === 'err' ? 'Error' : 'Warning') + (where ? ' on ' + where : '') + ': ' + d.message;
        return el('li', { class: kind }, mine(d) && d.line
          ? el('button', { type: 'button', onclick: () => ed.goTo(d.line) }, text)
          : el('span', {}, text));
      }));
    }

    async function load() {
      const res = await api('GET', '/api/broker/config');
      onDisk = res.text || '';
      file = res.file || file;
      ed.text = onDisk;
      ed.ta.disabled = false;
    }

    load().catch(err => {
      ed.text = '';
      say('The broker config is unavailable: ' + err.message, 'error');
      [checkBtn, saveBtn].forEach(b => { b.disabled = true; });
    });
    loadHistory();

    checkBtn.addEventListener('click', async () => {
      try {
        const res = await busy([checkBtn, saveBtn], 'Checking…', () => api('POST', '/api/broker/config/check', { text: ed.text }));
        showDiag(res);
        const ne = (res.errors || []).length, nw = (res.warnings || []).length;
        if (res.ok && !nw) say('Check passed: no errors or warnings.', 'ok');
        else if (res.ok) say('Check passed with ' + nw + ' warning' + (nw > 1 ? 's' : '') + ': see beside the lines.', 'ok');
        else say(ne + ' error' + (ne > 1 ? 's' : '') + (nw ? ' and ' + nw + ' warning' + (nw > 1 ? 's' : '') : '') + ': the editor shows the first; all are marked beside their lines.', 'error');
      } catch (err) {
        say('Could not check: ' + err.message, 'error');
      }
    });

    saveBtn.addEventListener('click', async () => {
      try {
        const res = await flow.run([checkBtn, saveBtn, revertBtn], 'Saving', () => api('PUT', '/api/broker/config', { text: ed.text }));
        onDisk = ed.text;
        ed.setMarks([], []);
        $('#diag').hidden = true;
        say(res.unchanged ? 'Nothing to save: the file on the box is the same.' : 'Saved: the broker runs on the new file.', 'ok');
        loadHistory();
      } catch (err) {
        if (err.status === 422) showDiag({ errors: err.body.errors || [], warnings: [] });
        say(flowMessage(err).replace(/\.?$/, '.') + (err.body.rolled_back ? ' Your edits are still in the editor.' : ''), 'error');
        if (err.body.rolled_back) loadHistory();
      }
    });

    revertBtn.addEventListener('click', () => {
      ed.text = onDisk;
      ed.setMarks([], []);
      $('#diag').hidden = true;
      say('Your edits are undone: the editor shows the file on the box.', 'info');
    });

    let chosen = null;
    async function loadHistory() {
      const ul = $('#history');
      try {
        const list = await api('GET', '/api/broker/config/history');
        if (!list || !list.length) { ul.replaceChildren(el('li', { class: 'muted' }, 'No earlier versions yet: one is kept at each save.')); return; }
        ul.replaceChildren(...list.map(h => el('li', { 'data-id': h.id },
          el('span', { class: 'grow' }, new Date(h.time).toLocaleString(),
            h.outcome === 'rolled back' ? el('span', {}, ' ', badge('errored', 'rolled back')) : '',
            el('span', { class: 'muted small' }, ' · ' + bytes(h.size) + (h.reason ? ' · ' + h.reason : '')),
            h.change ? el('div', { class: 'small change' }, (h.outcome === 'rolled back' ? 'Tried, then undone: ' : 'Then changed: ') + h.change) : ''),
          el('button', { type: 'button', 'aria-label': 'Show changes of the version of ' + new Date(h.time).toLocaleString(), onclick: e => showVersion(h, e.currentTarget) }, 'Show changes'))));
      } catch (err) {
        ul.replaceChildren(el('li', {}, badge('unavailable', 'unavailable'), ' ', err.message));
      }
    }

    async function showVersion(h, button) {
      try {
        const v = await busy(button, 'Loading the version of ' + new Date(h.time).toLocaleString() + '…', () => api('GET', '/api/broker/config/history/' + encodeURIComponent(h.id)));
        chosen = v;
        const d = diffLines(onDisk.split('\n'), (v.text || '').split('\n'));
        $('#diff-title').textContent = 'Restoring the version of ' + new Date(h.time).toLocaleString() + ' would change the file like this';
        $('#diff').replaceChildren(...(d.length && d.some(x => x[0] !== ' ') ? d.map(([op, line]) => el('span', { class: op === '+' ? 'add' : op === '-' ? 'del' : 'same' }, op + ' ' + line)) : [el('span', { class: 'same' }, 'No difference from the current file.')]));
        $('#diff-box').hidden = false;
        say('Showing the changes; nothing is restored until you press Restore.', 'info');
        $('#diff').focus();
      } catch (err) {
        say('Could not load that version: ' + err.message, 'error');
      }
    }

    $('#restore').addEventListener('click', async () => {
      if (!chosen) return;
      try {
        await flow.run([$('#restore'), saveBtn, checkBtn], 'Restoring', () => api('POST', '/api/broker/config/history/' + encodeURIComponent(chosen.id) + '/restore'));
        await load();
        ed.setMarks([], []);
        $('#diff-box').hidden = true;
        say('Restored: the broker runs on the earlier version.', 'ok');
        loadHistory();
      } catch (err) {
        say(flowMessage(err), 'error');
      }
    });
  }

  // diffLines is a line diff (longest common subsequence): [[op, line]],
  // op ' ', '-' (only in a) or '+' (only in b).
  function diffLines(a, b) {
    const n = a.length, m = b.length;
    if (n * m > 4e6) return [...a.map(l => ['-', l]), ...b.map(l => ['+', l])];
    const L = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
    for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) {
      L[i][j] = a[i] === b[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
    }
    const out = [];
    let i = 0, j = 0;
    while (i < n && j < m) {
      if (a[i] === b[j]) { out.push([' ', a[i]]); i++; j++; } else if (L[i + 1][j] >= L[i][j + 1]) out.push(['-', a[i++]]); else out.push(['+', b[j++]]);
    }
    while (i < n) out.push(['-', a[i++]]);
    while (j < m) out.push(['+', b[j++]]);
    return out;
  }

  // ---------- bridges ----------

  function pageBridges() {
    const tbody = $('#bridges-table tbody');
    let firstDone = false;
    every(3000, async () => {
      try {
        const list = await api('GET', '/api/bridges');
        if (!list || !list.length) {
          tbody.replaceChildren(el('tr', {}, el('td', { colspan: 6 }, 'No bridges yet. ', el('a', { href: '/bridges/new' }, 'Add one'), '.')));
        } else {
          tbody.replaceChildren(...list.map(b => {
            const live = b.live;
            const addr = live && live.address ? live.address : (b.addresses || []).map(a => hostPort(a)).join(' ');
            return el('tr', { 'data-bridge': b.name },
              td('Bridge', null, el('a', { href: '/bridges/' + encodeURIComponent(b.name), 'aria-label': 'Edit bridge ' + b.name }, b.name)),
              td('State', 'state', live ? badge(live.state) : badge('unknown', 'waiting for figures'),
                live && live.since && live.state === 'up' ? el('div', { class: 'muted small' }, 'since ' + ago(live.since)) : ''),
              td('Address', null, addr || '–'),
              td('In / out', null, live ? live.messages_in + ' / ' + live.messages_out : '–'),
              td('Queue', null, live ? String(live.queued) : '–'),
              td('Last error', null, live && live.last_error ? live.last_error : '–'));
          }));
        }
      } catch (err) {
        if (!firstDone || err.unavailable) unavailableRow(tbody, 6, err);
      }
      firstDone = true;
    });
  }

  function hostPort(a) { return (a.host.includes(':') ? '[' + a.host + ']' : a.host) + ':' + a.port; }

  // parseAddresses reads "host:port host2:port" into [{host, port}].
  function parseAddresses(s) {
    const out = [];
    for (const part of s.split(/[\s,]+/).filter(Boolean)) {
      const m = part.match(/^\[([^\]]+)\]:(\d+)$/) || part.match(/^([^:\s]+):(\d+)$/) || part.match(/^(\[[^\]]+\]|[^:\s]+)$/);
      if (!m) throw new Error('"' + part + '" is not host:port');
      const host = m[1].replace(/^\[|\]$/g, '');
      const port = m[2] ? Number(m[2]) : 1883;
      if (!(port >= 1 && port <= 65535)) throw new Error('port ' + m[2] + ' of "' + part + '" is not 1-65535');
      out.push({ host, port });
    }
    if (!out.length) throw new Error('give at least one address');
    return out;
  }

  function pageBridge(name) {
    const form = $('#bridge-form');
    const rows = $('#topic-rows');
    const flow = new Flow(['bridge']);
    let current = null;

    function addRow(t) {
      const frag = $('#topic-row').content.cloneNode(true);
      const fs = $('fieldset', frag);
      const n = rows.children.length + 1;
      $('legend', fs).textContent = 'Topic row ' + n;
      if (t) {
        $('[name=pattern]', fs).value = t.pattern || '';
        $('[name=direction]', fs).value = t.direction || 'out';
        $('[name=qos]', fs).value = String(t.qos ?? 0);
        $('[name=local_prefix]', fs).value = t.local_prefix || '';
        $('[name=remote_prefix]', fs).value = t.remote_prefix || '';
      }
      $('.remove-topic', fs).addEventListener('click', () => {
        fs.remove();
        $$('.topic-row legend', rows).forEach((l, i) => { l.textContent = 'Topic row ' + (i + 1); });
        const first = $('.topic-row [name=pattern]', rows);
        (first || $('#add-topic')).focus();
      });
      rows.append(fs);
      return fs;
    }
    $('#add-topic').addEventListener('click', () => { $('[name=pattern]', addRow(null)).focus(); });

    function fill(b) {
      current = b;
      $('#b-name').value = b.name;
      $('#b-name').readOnly = true;
      $('#b-addresses').value = (b.addresses || []).map(hostPort).join(' ');
      $('#b-protocol').value = b.protocol_version || 'mqttv311';
      $('#b-clean').checked = !!b.clean_session;
      $('#b-notif').checked = b.notifications !== false;
      $('#b-user').value = b.remote_username || '';
      $('#b-clientid').value = b.remote_clientid || '';
      $('#b-pass').placeholder = b.has_password ? '(unchanged)' : '';
      $('#b-ca-now').textContent = b.ca_cert ? 'Now: ' + b.ca_cert + '. Choose a file to replace it.' : (b.ca_file ? 'Now: ' + b.ca_file + ' (set in mosquitto.conf).' : 'No CA file: the connection is not encrypted.');
      $('#b-ca-remove-label').hidden = !b.ca_cert;
      rows.replaceChildren();
      (b.topics || []).forEach(addRow);
      $('#bridge-delete').hidden = false;
    }

    if (name) {
      api('GET', '/api/bridges').then(list => {
        const b = (list || []).find(x => x.name === name);
        if (!b) { say('There is no bridge named ' + name + '.', 'error'); form.hidden = true; return; }
        fill(b);
      }, err => { say('Bridges are unavailable: ' + err.message, 'error'); form.hidden = true; });
    } else {
      addRow(null);
      $('#b-name').focus();
    }

    function clearErrors() {
      $$('[aria-invalid]', form).forEach(n => n.removeAttribute('aria-invalid'));
      $$('.error', form).forEach(p => { p.textContent = ''; });
    }

    // fieldError shows a mistake beside its field; path is the API's
    // "topics[0].qos" style name.
    function fieldError(path, message) {
      const m = String(path).match(/^([a-z_]+)(?:\[(\d+)\])?(?:\.([a-z_]+))?/);
      const field = m ? m[1] : path;
      let input = null, out = null;
      if (field === 'topics') {
        const row = m && m[2] !== undefined ? rows.children[Number(m[2])] : null;
        input = row && m[3] ? $('[name=' + m[3] + ']', row) : null;
        out = $('#b-topics-err');
        message = (m && m[2] !== undefined ? 'Topic row ' + (Number(m[2]) + 1) + ': ' : '') + message;
      } else {
        const map = { name: '#b-name', addresses: '#b-addresses', remote_username: '#b-user', remote_password: '#b-pass', remote_clientid: '#b-clientid', protocol_version: '#b-protocol', ca_cert: '#b-ca' };
        input = map[field] ? $(map[field]) : null;
        out = $('.error[data-field="' + (field === 'ca_cert' ? 'cafile' : field) + '"]', form) || $('#bridge-error');
      }
      if (input) input.setAttribute('aria-invalid', 'true');
      out.textContent = out.textContent ? out.textContent + ' ' + message : message;
      return input;
    }

    async function collect() {
      const body = {
        name: $('#b-name').value.trim(),
        protocol_version: $('#b-protocol').value,
        clean_session: $('#b-clean').checked,
        notifications: $('#b-notif').checked,
        remote_username: $('#b-user').value.trim(),
        remote_clientid: $('#b-clientid').value.trim(),
      };
      const bad = [];
      if (!/^[A-Za-z0-9_.-]+$/.test(body.name)) bad.push(['name', 'Give a name of letters, digits, _ . or -.']);
      try { body.addresses = parseAddresses($('#b-addresses').value); } catch (e) { bad.push(['addresses', 'Addresses: ' + e.message + '.']); }
      body.topics = $$('.topic-row', rows).map(r => ({
        pattern: $('[name=pattern]', r).value.trim(),
        direction: $('[name=direction]', r).value,
        qos: Number($('[name=qos]', r).value),
        local_prefix: $('[name=local_prefix]', r).value,
        remote_prefix: $('[name=remote_prefix]', r).value,
      }));
      if (!body.topics.length) bad.push(['topics', 'Add at least one topic row.']);
      body.topics.forEach((t, i) => { if (!t.pattern) bad.push(['topics[' + i + '].pattern', 'give a topic pattern such as sensors/#.']); });
      if (current && current.ca_cert && $('#b-ca-remove').checked && !$('#b-ca').files.length) body.ca_cert = '';
      const pw = $('#b-pass').value;
      if (pw || !current) body.remote_password = pw;
      return { body, bad };
    }

    form.addEventListener('submit', async e => {
      e.preventDefault();
      clearErrors();
      const { body, bad } = await collect();
      if (bad.length) {
        const inputs = bad.map(([f, m]) => fieldError(f, m)).filter(Boolean);
        say('Not saved: ' + bad.length + ' field' + (bad.length > 1 ? 's need' : ' needs') + ' fixing (marked below).', 'error');
        if (inputs[0]) inputs[0].focus();
        return;
      }
      const saveBtn = $('#bridge-save');
      try {
        const file = $('#b-ca').files[0];
        if (file) {
          const fd = new FormData();
          fd.append('file', file);
          const up = await busy(saveBtn, 'Uploading the CA file ' + file.name + '…', () => api('POST', '/api/broker/certs', fd));
          body.ca_cert = up.name;
        }
        const res = await flow.run([saveBtn, $('#bridge-delete')], 'Saving the bridge', () => current
          ? api('PUT', '/api/bridges/' + encodeURIComponent(current.name), body)
          : api('POST', '/api/bridges', body));
        flash('Bridge ' + body.name + (res && res.unchanged ? ' unchanged.' : ' saved: the broker runs with it.'), 'ok');
        location.assign('/bridges');
      } catch (err) {
        const errs = (err.body && err.body.errors) || [];
        const inputs = errs.filter(x => x.field).map(x => fieldError(x.field, x.message)).filter(Boolean);
        if (!errs.some(x => x.field)) $('#bridge-error').textContent = err.message;
        say(flowMessage(err), 'error');
        if (inputs[0]) inputs[0].focus();
      }
    });

    const del = $('#bridge-delete');
    let armed = false;
    del.addEventListener('click', async () => {
      if (!armed) {
        armed = true;
        del.textContent = 'Really delete ' + current.name + '? Press again';
        say('Press the delete button again to delete bridge ' + current.name + '.', 'info');
        return;
      }
      try {
        await flow.run([del, $('#bridge-save')], 'Deleting the bridge', () => api('DELETE', '/api/bridges/' + encodeURIComponent(current.name)));
        flash('Bridge ' + current.name + ' deleted.', 'ok');
        location.assign('/bridges');
      } catch (err) {
        say(flowMessage(err), 'error');
        armed = false;
        del.textContent = 'Delete bridge';
      }
    });
  }

  // ---------- devices ----------

  function pageDevices() {
    const tbody = $('#devices-table tbody');
    const q = $('#dev-q'), src = $('#dev-source'), av = $('#dev-avail');
    let all = [];
    const params = new URLSearchParams(location.search);
    q.value = params.get('q') || '';
    av.value = params.get('availability') || '';

    function draw() {
      const words = q.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
      const shown = all.filter(d => {
        if (src.value && !(d.sources || []).includes(src.value)) return false;
        if (av.value && d.availability !== av.value) return false;
        const hay = [d.name, d.id, d.model, d.manufacturer, d.address, d.mac, ...(d.sources || [])].join(' ').toLowerCase();
        return words.every(w => hay.includes(w));
      });
      $('#dev-count').textContent = all.length ? 'Showing ' + shown.length + ' of ' + all.length + ' devices.' : '';
      if (!shown.length) {
        tbody.replaceChildren(el('tr', {}, el('td', { colspan: 6 }, all.length ? 'No device matches.' : 'No devices found yet. They appear as they announce themselves over MQTT or mDNS.')));
        return;
      }
      tbody.replaceChildren(...shown.map(d => el('tr', { 'data-device': d.id },
        td('Device', null, el('a', { href: '/devices/' + encodeURIComponent(d.id) }, d.name || d.id)),
        td('Model', null, [d.manufacturer, d.model].filter(Boolean).join(' ') || '–'),
        td('Source', null, (d.sources || []).join(', ') || '–'),
        td('Address', null, d.address || '–'),
        td('Availability', null, badge(d.availability || 'unknown')),
        td('Last seen', null, d.last_seen ? ago(d.last_seen) : '–', d.stale ? el('span', {}, ' ', badge('errored', 'stale')) : ''))));
    }
    function sources() {
      const have = new Set(all.flatMap(d => d.sources || []));
      const keep = src.value || params.get('source') || '';
      src.replaceChildren(el('option', { value: '' }, 'any'), ...Array.from(have).sort().map(s => el('option', { value: s }, s)));
      if (have.has(keep)) src.value = keep;
    }
    async function load() {
      try {
        all = (await api('GET', '/api/devices')) || [];
        all.sort((a, b) => (a.name || a.id).localeCompare(b.name || b.id));
        sources();
        draw();
      } catch (err) {
        unavailableRow(tbody, 6, err);
      }
    }
    every(10000, load);
    on('devices', load);
    const keepInURL = () => {
      const p = new URLSearchParams();
      if (q.value) p.set('q', q.value);
      if (src.value) p.set('source', src.value);
      if (av.value) p.set('availability', av.value);
      history.replaceState(null, '', location.pathname + (p.toString() ? '?' + p : ''));
      draw();
    };
    q.addEventListener('input', keepInURL);
    src.addEventListener('change', keepInURL);
    av.addEventListener('change', keepInURL);
    $('#dev-filters').addEventListener('submit', e => e.preventDefault());
  }

  function pageDevice(id) {
    const facts = $('#dev-facts');
    const path = '/api/devices/' + encodeURIComponent(id);
    let name = id;
    $('#forget').addEventListener('click', async () => {
      const clear = $('#forget-clear').checked;
      if (!await ask('Forget ' + name + '?', clear
        ? name + ' leaves the list and its retained announces are cleared on the broker, so it stays gone until it announces itself again.'
        : name + ' leaves the list; its retained announces stay, so it comes back when the box next reads them.', 'Forget ' + name)) return;
      try {
        const res = await busy($('#forget'), 'Forgetting ' + name + '…', () => api('DELETE', path + (clear ? '?clear_retained=1' : '')));
        const cleared = res.cleared || [], back = res.comes_back_from || [];
        flash(name + ' forgotten' + (cleared.length ? '; ' + cleared.length + ' retained announce' + (cleared.length > 1 ? 's' : '') + ' cleared' : '') +
          (back.length ? '. It comes back from: ' + back.join(', ') : '') + '.', 'ok');
        location.href = '/devices';
      } catch (err) { say('Could not forget ' + name + ': ' + err.message, 'error'); }
    });
    const load = () => api('GET', path).then(d => {
      name = d.name || d.id;
      $('#dev-name').textContent = d.name || d.id;
      document.title = (d.name || d.id) + ' · Gateway';
      const f = [
        ['Availability', badge(d.availability || 'unknown')],
        ['Model', [d.manufacturer, d.model].filter(Boolean).join(' ') || '–'],
        ['Firmware', d.firmware || '–'],
        ['Address', d.address || '–'],
        ['MAC', d.mac || '–'],
        ['Sources', (d.sources || []).join(', ') || '–'],
        ['First seen', ago(d.first_seen)],
        ['Last seen', d.last_seen ? ago(d.last_seen) : 'not since the box started', d.stale ? el('span', {}, ' ', badge('errored', 'stale')) : ''],
        ['Id', el('code', {}, d.id)],
      ];
      facts.replaceChildren(...f.flatMap(([k, v, extra]) => [el('dt', {}, k), el('dd', {}, v, extra || '')]));
      const ents = d.entities || [];
      $('#entities-table tbody').replaceChildren(...(ents.length ? ents.map(e => el('tr', { 'data-entity': e.id },
        td('Entity', null, e.name || e.id),
        td('Now', 'state', e.state !== undefined && e.state !== '' ? e.state + (e.unit ? ' ' + e.unit : '') : '–',
          e.state_at ? el('div', { class: 'muted small' }, ago(e.state_at)) : ''),
        td('Kind', null, e.component + (e.device_class ? ' (' + e.device_class + ')' : '') + (e.unit ? ', ' + e.unit : '')),
        td('State topic', null, e.state_topic ? el('code', {}, e.state_topic) : '–'),
        td('Command topic', null, e.command_topic ? el('code', {}, e.command_topic) : '–'))) :
        [el('tr', {}, el('td', { colspan: 5 }, 'This device announced no entities.'))]));
      const at = d.availability_topics || [];
      $('#avail-topics').replaceChildren(...(at.length ? at.map(t => el('li', {}, el('code', {}, t))) : [el('li', { class: 'muted' }, 'none')]));
      const svc = d.services || [];
      if (svc.length) {
        $('#svc-card').hidden = false;
        $('#services').replaceChildren(...svc.map(s => el('li', {}, el('span', { class: 'grow' }, s.instance + ' ', el('code', {}, s.type)), (s.addresses || []).join(', ') + ':' + s.port)));
      }
    }, err => {
      facts.replaceChildren(el('dt', {}, 'Status'), el('dd', {}, err.unavailable ? badge('unavailable', 'unavailable') : '', ' ', err.message));
    });
    // Live: the values change as the device reports.
    every(2000, load);
  }

  // ---------- topic explorer ----------

  function pageTopics() {
    const tree = $('#tree');
    const open = new Set(['']); // expanded prefixes; '' is the top
    let selected = null;
    const nodes = new Map(); // prefix -> its children as last fetched
    const short = v => v.length > 48 ? v.slice(0, 47) + '…' : v;

    function row(n) {
      const name = n.topic.split('/').pop() || '(empty)';
      const kids = n.children > 0;
      const value = n.payload !== undefined ? short(n.payload) : n.payload_hex !== undefined ? '0x ' + short(n.payload_hex) : '';
      const li = el('li', { role: 'treeitem', 'data-topic': n.topic, 'aria-expanded': kids ? String(open.has(n.topic)) : null },
        el('div', { class: 'node' + (selected === n.topic ? ' selected' : '') },
          kids ? el('button', { type: 'button', class: 'toggle quiet', 'aria-label': (open.has(n.topic) ? 'Collapse ' : 'Expand ') + n.topic,
            onclick: () => { open.has(n.topic) ? open.delete(n.topic) : open.add(n.topic); refresh(); } }, open.has(n.topic) ? '▾' : '▸') : el('span', { class: 'toggle' }, ''),
          el('button', { type: 'button', class: 'quiet name', onclick: () => select(n.topic) }, name),
          el('span', { class: 'muted small count' }, n.messages + (kids ? ' · ' + n.children + ' below' : '')),
          n.retained ? badge('up', 'retained') : '',
          el('span', { class: 'value small' }, value)));
      if (kids && open.has(n.topic)) {
        li.append(el('ul', { role: 'group' }, ...(nodes.get(n.topic) || []).map(row)));
      }
      return li;
    }

    function draw() {
      const top = nodes.get('') || [];
      tree.replaceChildren(...(top.length ? top.map(row) : [el('li', { class: 'muted' }, 'No topic heard yet.')]));
      const q = $('#topic-filter').value.trim().toLowerCase();
      if (q) $$('li[data-topic]', tree).forEach(li => { li.hidden = !li.dataset.topic.toLowerCase().includes(q) && !$('li[data-topic]:not([hidden])', li); });
    }

    // One request per expanded level, every second: the page gets batched
    // figures however fast the topics change.
    async function refresh() {
      try {
        for (const p of [...open]) {
          nodes.set(p, await api('GET', '/api/topics?depth=1' + (p ? '&prefix=' + encodeURIComponent(p) : '')));
        }
        $('#topic-count').textContent = (nodes.get('') || []).reduce((a, n) => a + n.messages, 0) + ' messages heard';
        draw();
        if (selected) showTopic(selected);
      } catch (err) {
        tree.replaceChildren(el('li', {}, badge('unavailable', 'unavailable'), ' ', err.message));
      }
    }

    function select(topic) {
      selected = topic;
      $('#pub-topic').value = topic;
      showTopic(topic);
      draw();
    }

    async function showTopic(topic) {
      let res;
      try { res = await api('GET', '/api/topics/history?topic=' + encodeURIComponent(topic)); } catch (err) { return; }
      const n = res.node;
      $('#topic-card').hidden = false;
      $('#topic-name').textContent = n.topic;
      $('#topic-facts').replaceChildren(...[['Messages', String(n.messages)], ['Retained', n.retained ? 'yes' : 'no'],
        ['QoS', n.qos ?? '–'], ['Age', n.age_s !== undefined ? duration(n.age_s) : '–'], ['Below', String(n.children)]]
        .flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, String(v))]));
      let text = n.payload_hex !== undefined ? n.payload_hex : n.payload ?? '(no message on this topic itself)';
      if (n.payload !== undefined) { try { text = JSON.stringify(JSON.parse(n.payload), null, 2); } catch (e) { /* not JSON */ } }
      $('#topic-value').textContent = text + (n.truncated ? '\n… (cut: longer than 4 KiB)' : '');
      const hist = res.history || [];
      $('#topic-history').replaceChildren(...hist.slice(-8).reverse().map(p => el('li', {}, el('span', { class: 'grow' }, short(p.value)), el('span', { class: 'muted' }, ago(p.t)))));
      sparkline($('#sparkline'), hist.map(p => parseFloat(p.value)).filter(v => !isNaN(v)));
    }

    function sparkline(svg, vs) {
      const NS = 'http://www.w3.org/2000/svg';
      if (vs.length < 2) { svg.replaceChildren(); svg.setAttribute('aria-label', 'No numeric history'); return; }
      const lo = Math.min(...vs), hi = Math.max(...vs), span = hi - lo || 1;
      const d = vs.map((v, i) => (i ? 'L' : 'M') + (i * 300 / (vs.length - 1)).toFixed(1) + ' ' + (56 - (v - lo) * 52 / span).toFixed(1)).join(' ');
      const path = document.createElementNS(NS, 'path');
      path.setAttribute('d', d);
      path.setAttribute('class', 'line');
      svg.replaceChildren(path);
      svg.setAttribute('aria-label', 'Last ' + vs.length + ' values, from ' + lo + ' to ' + hi);
    }

    async function clear(prefix) {
      const t = selected;
      const q = prefix ? 'prefix=' : 'topic=';
      if (!await ask(prefix ? 'Clear every retained message below ' + t + '?' : 'Clear the retained message of ' + t + '?',
        'New subscribers will no longer get ' + (prefix ? 'them' : 'it') + '. Devices that publish retained again put theirs back.', 'Clear retained')) return;
      try {
        const res = await api('DELETE', '/api/topics/retained?' + q + encodeURIComponent(t));
        say(res.cleared.length ? 'Cleared ' + res.cleared.length + ' retained message' + (res.cleared.length > 1 ? 's' : '') + '.' : 'Nothing retained there.', 'ok');
        refresh();
      } catch (err) { say('Could not clear: ' + err.message, 'error'); }
    }
    $('#clear-one').addEventListener('click', () => clear(false));
    $('#clear-tree').addEventListener('click', () => clear(true));
    $('#topic-filter').addEventListener('input', draw);

    $('#publish-form').addEventListener('submit', async e => {
      e.preventDefault();
      const errP = $('#publish-error');
      errP.textContent = '';
      const topic = $('#pub-topic').value.trim();
      try {
        await busy($('button[type=submit]', e.target), 'Publishing…', () => api('POST', '/api/topics/publish',
          { topic, payload: $('#pub-payload').value, qos: +$('#pub-qos').value, retain: $('#pub-retain').checked }));
        say('Published to ' + topic + '.', 'ok');
        refresh();
      } catch (err) { errP.textContent = err.message; say('', 'info'); }
    });
    every(1000, refresh);
  }

  // ---------- broker users ----------

  function pageUsers() {
    const ul = $('#users');
    const form = $('#user-form');
    const flow = new Flow(['users', 'logins', 'device login', 'acl']);
    const required = $('#logins-required');
    async function loadLogins() {
      try {
        const l = await api('GET', '/api/broker/logins');
        required.checked = l.required;
        $('#logins-state').textContent = l.required
          ? 'Logins are required: only clients with a username and password get in (' + l.users + ' user' + (l.users === 1 ? '' : 's') + ').'
          : 'The broker is open on the LAN: clients without a login get in.';
        $('#first-user').hidden = true;
      } catch (err) {
        $('#logins-state').textContent = err.message;
        $('#logins-form').hidden = true;
      }
    }
    async function load() {
      try {
        const res = await api('GET', '/api/broker/users');
        $('#acl-file').textContent = res.acl_file || '';
        const users = res.users || [];
        if (!users.length) { ul.replaceChildren(el('li', { class: 'muted' }, 'No users yet.')); return; }
        ul.replaceChildren(...users.map(u => {
          const b = el('button', { type: 'button', class: 'danger', 'aria-label': 'Remove user ' + u }, 'Remove');
          b.addEventListener('click', async () => {
            if (!await ask('Remove ' + u + '?', u + ' can no longer log in; a client connected as ' + u + ' is disconnected.', 'Remove ' + u)) return;
            try {
              await flow.run([b], 'Removing ' + u, () => api('DELETE', '/api/broker/users/' + encodeURIComponent(u)));
              say('User ' + u + ' removed; the broker runs without it.', 'ok');
              load(); loadLogins();
            } catch (err) { say(flowMessage(err), 'error'); }
          });
          return el('li', { 'data-user': u }, el('span', { class: 'grow' }, u), b);
        }));
      } catch (err) {
        ul.replaceChildren(el('li', {}, badge('unavailable', 'unavailable'), ' ', err.message));
        if (err.status === 409) form.hidden = true;
      }
    }
    async function loadACL() {
      try {
        const a = await api('GET', '/api/broker/acl');
        $('#acl-text').value = a.text || '';
        $('#acl-file').textContent = a.file || '(none yet: saving makes one beside mosquitto.conf)';
      } catch (err) { $('#acl-text').value = ''; $('#acl-errors').replaceChildren(el('li', {}, err.message)); }
    }
    loadLogins(); load(); loadACL();

    $('#logins-form').addEventListener('submit', async e => {
      e.preventDefault();
      const errP = $('#logins-error');
      errP.textContent = '';
      const body = { required: required.checked };
      if (!$('#first-user').hidden && $('#first-name').value.trim()) body.first_user = { username: $('#first-name').value.trim(), password: $('#first-pass').value };
      try {
        await flow.run([$('#logins-save')], required.checked ? 'Requiring logins' : 'Opening the broker', () => api('PUT', '/api/broker/logins', body));
        say(required.checked ? 'Logins are required now.' : 'Anonymous clients get in again.', 'ok');
        loadLogins(); load();
      } catch (err) {
        if (err.body && err.body.need_user) {
          $('#first-user').hidden = false;
          $('#first-name').focus();
        }
        errP.textContent = err.message;
        say(flowMessage(err), 'error');
      }
    });

    form.addEventListener('submit', async e => {
      e.preventDefault();
      const errP = $('#user-error');
      errP.textContent = '';
      const name = $('#u-name'), pw = $('#u-pass');
      if (!name.value.trim()) { errP.textContent = 'Give a username.'; name.focus(); return; }
      if (!pw.value) { errP.textContent = 'Give a password.'; pw.focus(); return; }
      try {
        await flow.run([$('button[type=submit]', form)], 'Saving ' + name.value.trim(), () => api('POST', '/api/broker/users', { username: name.value.trim(), password: pw.value }));
        say('User ' + name.value.trim() + ' saved; the broker runs with it.', 'ok');
        form.reset();
        load(); loadLogins();
      } catch (err) {
        errP.textContent = err.message;
        say(flowMessage(err), 'error');
      }
    });

    $('#device-form').addEventListener('submit', async e => {
      e.preventDefault();
      const errP = $('#device-error');
      errP.textContent = '';
      const name = $('#d-name').value.trim();
      if (!name) { errP.textContent = 'Give the device a name.'; $('#d-name').focus(); return; }
      try {
        const d = await flow.run([$('button[type=submit]', e.target)], 'Making a login for ' + name, () => api('POST', '/api/broker/devices', { name }));
        const dl = $('#device-login');
        dl.replaceChildren(...[['Host', d.host], ['Port', String(d.port)], ['User', d.username], ['Password', d.password],
          ['Discovery prefix', d.discovery_prefix], ['May use', (d.acl || []).filter(l => l.startsWith('topic')).map(l => l.split(' ').slice(2).join(' ')).join(', ')]]
          .flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, el('code', {}, v))]));
        dl.hidden = false;
        say('Login made for ' + name + ': type these settings into the device now; the password is not shown again.', 'ok');
        e.target.reset();
        load(); loadACL();
      } catch (err) {
        errP.textContent = err.message;
        say(flowMessage(err), 'error');
      }
    });

    function showACLErrors(errors) {
      $('#acl-errors').replaceChildren(...(errors || []).map(d => el('li', { class: 'err' },
        el('button', { type: 'button', onclick: () => goToLine($('#acl-text'), d.line) }, 'Line ' + d.line + ': ' + d.message))));
      const first = (errors || [])[0];
      if (first && first.line) goToLine($('#acl-text'), first.line);
    }
    $('#acl-check').addEventListener('click', async () => {
      try {
        const res = await busy($('#acl-check'), 'Checking the ACL…', () => api('POST', '/api/broker/acl/check', { text: $('#acl-text').value }));
        showACLErrors(res.errors);
        say(res.ok ? 'The ACL checks.' : 'The ACL has a mistake: see the line below.', res.ok ? 'ok' : 'error');
      } catch (err) { say(err.message, 'error'); }
    });
    $('#acl-save').addEventListener('click', async () => {
      try {
        await flow.run([$('#acl-save'), $('#acl-check')], 'Saving the ACL', () => api('PUT', '/api/broker/acl', { text: $('#acl-text').value }));
        showACLErrors([]);
        say('ACL saved; the broker runs with it.', 'ok');
        loadACL();
      } catch (err) {
        if (err.status === 422) showACLErrors(err.body.errors);
        say(flowMessage(err), 'error');
      }
    });
  }

  // goToLine puts a textarea's caret at the start of line n.
  function goToLine(ta, n) {
    const lines = ta.value.split('\n');
    let pos = 0;
    for (let i = 0; i < n - 1 && i < lines.length; i++) pos += lines[i].length + 1;
    ta.focus();
    ta.setSelectionRange(pos, pos);
  }

  // ---------- system: version, slots, update, rollback, factory reset ----------

  function pageSystem() {
    const dl = $('#system');
    function fact(k, v) { return [el('dt', {}, k), el('dd', {}, v)]; }
    function slotText(s) {
      if (!s || s.state === 'empty') return '–';
      return s.slot.toUpperCase() + ': ' + s.version + ' (' + s.state + (s.state === 'trial' ? ', ' + s.tries_left + ' tries left' : '') + ')';
    }
    async function load() {
      try {
        const s = await api('GET', '/api/system');
        const rows = [...fact('Version', s.version + ' (' + s.arch + ')')];
        if (s.slots) {
          rows.push(...fact('Running slot', slotText(s.booted)), ...fact('Other slot', slotText(s.other)));
          if (s.last_update) {
            const u = s.last_update;
            rows.push(...fact('Last update', u.version + ' → slot ' + u.slot.toUpperCase() + ': ' + u.state + (u.message ? ' (' + u.message + ')' : '')));
          }
        } else {
          rows.push(...fact('Updates', 'not here: ' + (s.problem || 'this box did not start from the gateway disk image')));
          $('#update-card').hidden = true;
          $('#reset-card').hidden = true;
        }
        dl.replaceChildren(...rows);
      } catch (err) {
        dl.replaceChildren(...fact('System', err.message));
      }
    }
    load();
    $('#update-form').addEventListener('submit', async e => {
      e.preventDefault();
      const errP = $('#update-error');
      errP.textContent = '';
      const f = $('#update-file').files[0];
      if (!f) { errP.textContent = 'Choose an update bundle first.'; return; }
      try {
        const res = await busy($('button[type=submit]', e.target), 'Checking and installing ' + f.name + '…', () => api('POST', '/api/system/update', f));
        say('Installed ' + res.version + ' into slot ' + res.slot.toUpperCase() + ': the box is restarting into it. This page reconnects when it is back.', 'ok');
      } catch (err) { errP.textContent = err.message; say('', 'info'); }
    });
    function confirmed(button, question, text, action) {
      button.addEventListener('click', async () => {
        if (!await ask(question, text, button.textContent)) { say('Cancelled.', 'info'); return; }
        try { say(await action(), 'ok'); } catch (err) { say(err.message, 'error'); }
      });
    }
    confirmed($('#rollback'), 'Restart into the other slot?', 'The box restarts into the firmware it ran before; every client is disconnected while it boots.', async () => {
      await api('POST', '/api/system/rollback');
      return 'Rolling back: the box is restarting into the other slot.';
    });
    confirmed($('#factory-reset'), 'Wipe everything?', 'Every setting, user, retained message and log on the data partition is erased and the box starts as new.', async () => {
      await api('POST', '/api/system/factory-reset');
      return 'Factory reset: the box is restarting and will start as new.';
    });
  }

  // ---------- start ----------

  const pages = {
    overview: pageOverview, apps: pageApps, app: pageApp, config: pageConfig, bridges: pageBridges,
    bridge: pageBridge, devices: pageDevices, device: pageDevice, users: pageUsers, system: pageSystem, topics: pageTopics,
  };

  async function boot() {
    const page = document.body.dataset.page;
    const param = document.body.dataset.param || '';
    let s;
    try {
      s = await api('GET', '/api/session');
    } catch (err) {
      say('The console cannot reach the box: ' + err.message, 'error');
      return;
    }
    csrf = s.csrf_token || '';
    const live = $('#live');
    if (live && (s.setup_needed || !s.logged_in)) live.textContent = 'not logged in';
    if (s.setup_needed) { if (page !== 'setup') location.replace('/setup'); else { pageSetup(); document.body.dataset.ready = 'true'; } return; }
    if (page === 'setup') { location.replace(s.logged_in ? '/' : '/login'); return; }
    if (!s.logged_in) { if (page !== 'login') goLogin(); else { pageLogin(); document.body.dataset.ready = 'true'; } return; }
    if (page === 'login') { location.replace(nextPath()); return; }
    const out = $('#logout');
    if (out && s.origin !== 'socket') {
      out.hidden = false;
      out.addEventListener('click', async () => {
        try { await busy(out, 'Logging out…', () => api('POST', '/api/logout')); } catch (e) { /* logged out anyway */ }
        location.assign('/login');
      });
    }
    showFlash();
    const fn = pages[page];
    if (fn) fn(param);
    startEvents();
    document.body.dataset.ready = 'true';
  }

  document.addEventListener('DOMContentLoaded', boot);
})();
