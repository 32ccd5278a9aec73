// The console: a page per fragment route, each drawn from the admin API.
import {apiKey, setAPIKey, h, notice, fill} from './lib.js';
import {overview} from './overview.js';
import {topics, topic} from './topics.js';
import {groups, group} from './groups.js';
import {delays} from './delays.js';

const routes = [
  [/^$/, overview, 'overview'],
  [/^topics$/, topics, 'topics'],
  [/^topics\/([^/]+)$/, topic, 'topics'],
  [/^groups$/, groups, 'groups'],
  [/^groups\/([^/]+)(?:\/([^/]+))?$/, group, 'groups'],
  [/^delays(?:\/([^/]+))?$/, delays, 'delays'],
];

let stop = null; // the shown page's cleanup (its timers)
let shown = 0;    // counts pages shown: a page still loading when another is shown is dropped

async function show() {
  if (stop) { stop(); stop = null; }
  const n = ++shown;
  const path = location.hash.replace(/^#\/?/, '');
  const view = document.getElementById('view');
  for (const a of document.querySelectorAll('nav a')) a.classList.remove('active');
  // Each page draws into an element of its own: one superseded while it
  // loads draws into an element no longer shown.
  const el = h('div', null, h('p', {class: 'muted'}, 'Loading…'));
  fill(view, el);
  for (const [re, page, nav] of routes) {
    const m = path.match(re);
    if (!m) continue;
    document.querySelector(`nav a[data-nav="${nav}"]`)?.classList.add('active');
    const params = m.slice(1).map(p => p === undefined ? undefined : decodeURIComponent(p));
    let cleanup = null;
    try {
      cleanup = await page(el, ...params) || null;
    } catch (e) {
      fill(el);
      notice(el, e);
    }
    if (n === shown) stop = cleanup;
    else if (cleanup) cleanup();
    return;
  }
  notice(el, `No page ${path}`);
}

// whoami says under which credentials the console asks.
function whoami() {
  document.getElementById('who').textContent = apiKey() ? 'key set for this tab' : '';
}

document.getElementById('key-form').addEventListener('submit', e => {
  e.preventDefault();
  const input = document.getElementById('key');
  setAPIKey(input.value.trim());
  input.value = '';
  whoami();
  show();
});
window.addEventListener('hashchange', show);
whoami();
show();
