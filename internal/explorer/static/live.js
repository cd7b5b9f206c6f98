// The dashboard's live parts: two line charts drawn as plain SVG, and
// counters, fed by Server-Sent Events from /live (one sample a second).
'use strict';
(() => {
  const NS = 'http://www.w3.org/2000/svg';
  // The charts are drawn at the size they are shown, one SVG unit per CSS
  // pixel, so that their labels read the same on a phone and a laptop.
  const H = 170, L = 44, R = 8, T = 10, B = 22;
  let series = [];
  try { series = JSON.parse(document.getElementById('series').textContent) || []; } catch { series = []; }

  const fmt = (v) => {
    if (typeof v !== 'number') return String(v);
    if (!Number.isInteger(v)) return v.toFixed(1);
    return v.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ' ');
  };
  const el = (name, attrs, text) => {
    const e = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const clock = (t) => new Date(t).toISOString().substr(11, 8);

  function draw(id, key, step) {
    const svg = document.getElementById(id);
    if (!svg) return;
    const W = Math.max(240, Math.round(svg.clientWidth || 600));
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    const pts = series.map((p) => [p.t, p[key]]);
    const kids = [];
    if (pts.length === 0) {
      kids.push(el('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'axis' }, 'waiting for samples…'));
      svg.replaceChildren(...kids);
      return;
    }
    const t0 = pts[0][0], t1 = Math.max(pts[pts.length - 1][0], t0 + 1000);
    let lo = Math.min(...pts.map((p) => p[1])), hi = Math.max(...pts.map((p) => p[1]));
    if (key === 'rate') lo = 0;
    if (hi - lo < 1) hi = lo + 1;
    const x = (t) => L + (W - L - R) * (t - t0) / (t1 - t0);
    const y = (v) => T + (H - T - B) * (1 - (v - lo) / (hi - lo));
    for (const v of [lo, (lo + hi) / 2, hi]) {
      kids.push(el('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }));
      kids.push(el('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, fmt(Math.round(v * 10) / 10)));
    }
    kids.push(el('text', { x: L, y: H - 4, class: 'axis' }, clock(t0)));
    kids.push(el('text', { x: W - R, y: H - 4, 'text-anchor': 'end', class: 'axis' }, clock(t1)));
    let d = '';
    pts.forEach(([t, v], i) => {
      const px = x(t).toFixed(1), py = y(v).toFixed(1);
      if (i === 0) d += `M${px} ${py}`;
      else if (step) d += ` H${px} V${py}`;
      else d += ` L${px} ${py}`;
    });
    kids.push(el('path', { d: `${d} V${y(lo).toFixed(1)} H${x(t0).toFixed(1)} Z`, class: 'area' }));
    kids.push(el('path', { d, class: 'line', 'data-points': String(pts.length) }));
    svg.replaceChildren(...kids);
  }
  function redraw() {
    draw('chart-rate', 'rate', false);
    draw('chart-height', 'height', true);
  }

  function setText(sel, v) {
    document.querySelectorAll(sel).forEach((e) => { e.textContent = v; });
  }
  function ago(ms) {
    if (!ms || ms < 0) return 'never';
    const s = (Date.now() - ms) / 1000;
    if (s < 2) return 'just now';
    if (s < 60) return `${Math.floor(s)} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    return `${Math.floor(s / 3600)} h ago`;
  }
  // blocks rebuilds the newest blocks' rows (with DOM calls, not HTML).
  function blocks(list) {
    const body = document.querySelector('#newest tbody');
    if (!body) return;
    const td = (content, cls) => {
      const c = document.createElement('td');
      if (cls) c.className = cls;
      if (content instanceof Node) c.appendChild(content); else c.textContent = content;
      return c;
    };
    const rows = list.map((b) => {
      const tr = document.createElement('tr');
      const a = document.createElement('a');
      a.href = `/blocks/${b.height}`;
      a.textContent = String(b.height);
      const code = document.createElement('code');
      code.textContent = b.hash.length > 16 ? `${b.hash.slice(0, 16)}…` : b.hash;
      const when = td(new Date(b.mint_time).toISOString().substr(11, 8), 'nowrap');
      when.title = new Date(b.mint_time).toISOString().replace('T', ' ').substr(0, 19) + ' UTC';
      const pill = document.createElement('span');
      pill.className = `pill ${b.final ? 'ok' : b.rejected ? 'bad' : 'wait'}`;
      pill.textContent = `${b.accepted}/${b.quorum} accepted${b.rejected ? `, ${b.rejected} rejected` : ''}`;
      const v = td(pill);
      if (b.anchor) {
        const an = document.createElement('span');
        an.className = 'pill anchor';
        an.title = 'Bitcoin anchor';
        an.textContent = `Bitcoin: ${b.anchor.state}`;
        v.append(' ', an);
      }
      tr.append(td(a), td(code, 'opt'), when, td(fmt(b.entries), 'r'), v);
      return tr;
    });
    if (rows.length) body.replaceChildren(...rows);
  }

  function update(snap) {
    if (snap.events < 0) snap.events = 'counting…';
    for (const k of ['events', 'height', 'finality_lag', 'tagged', 'rejected_sum', 'block_rejects', 'final_height']) {
      if (snap[k] !== undefined) setText(`[data-live="${k}"]`, fmt(snap[k]));
    }
    setText('[data-live="rate"]', (snap.rate || 0).toFixed(1));
    setText('[data-live="rate_kind"]', snap.rate_kind || '');
    for (const n of snap.nodes || []) {
      const row = document.querySelector(`tr[data-node="${CSS.escape(n.id)}"]`);
      if (!row) continue;
      row.querySelector('[data-f="height"]').textContent = fmt(n.height);
      row.querySelector('[data-f="lag"]').textContent = fmt(n.lag);
      row.querySelector('[data-f="pool"]').textContent = fmt(n.pool);
      const adv = row.querySelector('[data-f="advanced"]');
      adv.dataset.t = String(Date.parse(n.advanced));
      adv.textContent = ago(Number(adv.dataset.t));
    }
    for (const r of snap.rejections || []) setText(`[data-reason="${CSS.escape(r.label)}"]`, fmt(r.value));
    for (const d of snap.devices || []) setText(`[data-device="${CSS.escape(d.label)}"]`, fmt(d.value));
    if (snap.blocks) blocks(snap.blocks);
    setText('#updated', new Date(snap.time).toISOString().replace('T', ' ').substr(0, 19) + ' UTC');
  }

  redraw();
  window.addEventListener('resize', redraw);
  if (!window.EventSource) return;
  const state = document.getElementById('live-state');
  const es = new EventSource('/live');
  es.addEventListener('open', () => { if (state) { state.className = 'dot on'; state.title = 'live'; } });
  es.addEventListener('error', () => { if (state) { state.className = 'dot off'; state.title = 'reconnecting'; } });
  es.addEventListener('sample', (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.series) series = msg.series;
    if (msg.point && (!series.length || series[series.length - 1].t < msg.point.t)) {
      series.push(msg.point);
      if (series.length > 300) series.shift();
    }
    update(msg.snapshot);
    redraw();
  });
  setInterval(() => {
    document.querySelectorAll('[data-f="advanced"]').forEach((e) => { e.textContent = ago(Number(e.dataset.t)); });
  }, 1000);
})();
