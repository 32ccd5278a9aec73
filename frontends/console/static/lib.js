// The console's helpers: the admin API, DOM building (text is always set as
// text, never parsed as HTML: message values are shown as they are), and
// small widgets.

const keyName = 'mqgate-api-key';

export function apiKey() { return sessionStorage.getItem(keyName) || ''; }
export function setAPIKey(key) {
  if (key) sessionStorage.setItem(keyName, key); else sessionStorage.removeItem(keyName);
}

// APIError is a refusal of the gateway: its HTTP status, its code from
// docs/http.md and its message.
export class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// api calls the gateway with the console's credentials: the API key given,
// or none (the browser sends its client certificate under mTLS).
export async function api(method, path, body, {raw = false} = {}) {
  const headers = {};
  const key = apiKey();
  if (key) headers.Authorization = 'Bearer ' + key;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
  const text = await res.text();
  if (!res.ok) {
    let code = 0, message = `${res.status} ${res.statusText}`;
    try {
      const e = JSON.parse(text).error;
      if (e) { code = e.code; message = e.message; }
    } catch { /* not JSON: keep the status */ }
    throw new APIError(res.status, code, message);
  }
  if (raw) return text;
  return text ? JSON.parse(text) : null;
}

// h makes an element: props are attributes, on* listeners; children are
// nodes or text.
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// fill replaces el's children with those given, leaving out null and false.
export function fill(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter(c => c != null && c !== false));
}

// table makes a table of rows with the columns given: [title, row => cell,
// {num: true}].
export function table(columns, rows, {id, empty = 'None.'} = {}) {
  if (rows.length === 0) return h('p', {class: 'muted', id}, empty);
  return h('table', {id},
    h('thead', null, h('tr', null, columns.map(([title, , o]) => h('th', {class: o?.num ? 'num' : null}, title)))),
    h('tbody', null, rows.map(r => h('tr', null, columns.map(([, cell, o]) => {
      const v = cell(r);
      return h('td', {class: o?.num ? 'num' : o?.value ? 'value' : null}, v instanceof Node ? v : (v ?? ''));
    })))));
}

// notice shows a result or an error in place of the element's content.
export function notice(el, what, ok = false) {
  fill(el, what == null ? null : h('div', {class: 'notice ' + (ok ? 'ok' : 'error'), role: ok ? 'status' : 'alert'},
    what instanceof APIError ? `${what.message} (code ${what.code})` : String(what?.message ?? what)));
}

// section makes a titled panel.
export function section(title, ...children) {
  return h('section', null, h('h2', null, title), ...children);
}

export function time(ms) {
  return ms ? new Date(ms).toISOString().replace('T', ' ').replace('Z', '') : '';
}

export function link(href, text) { return h('a', {href}, text); }

// route builds a console link for path segments, escaping each.
export function route(...parts) { return '#/' + parts.map(encodeURIComponent).join('/'); }

// remember keeps the last names opened of a kind, for the lists pages.
export function remember(kind, name) {
  const list = recent(kind).filter(n => n !== name);
  list.unshift(name);
  localStorage.setItem('mqgate-recent-' + kind, JSON.stringify(list.slice(0, 20)));
}
export function recent(kind) {
  try { return JSON.parse(localStorage.getItem('mqgate-recent-' + kind)) || []; } catch { return []; }
}

// parseMetrics reads Prometheus text into {name: [{labels, value}]}.
export function parseMetrics(text) {
  const out = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const l of (m[3] || '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    (out[m[1]] ||= []).push({labels, value: Number(m[4])});
  }
  return out;
}

export function sum(metrics, name, keep = () => true) {
  return (metrics[name] || []).filter(s => keep(s.labels)).reduce((a, s) => a + s.value, 0);
}
