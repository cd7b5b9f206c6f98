// The dashboard's live parts: two line charts drawn as plain SVG, and
// counters, fed by Server-Sent Events from /live (one sample a second).
'use strict';
(() => {
  const NS = 'http://www.w3.org/2000/svg';
  const W = 600, H = 160, L = 44, R = 8, T = 10, B = 22;
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
  function update(snap) {
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
    setText('#updated', new Date(snap.time).toISOString().replace('T', ' ').substr(0, 19) + ' UTC');
  }

  redraw();
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
