// Topics: open or create one; a topic's qids, a form to produce to it and
// its message browser, which moves no consumer group.
import {api, h, table, section, notice, time, link, route, remember, recent, fill} from './lib.js';

export async function topics(view) {
  const name = h('input', {name: 'topic', required: true, placeholder: 'orders', pattern: '[a-zA-Z0-9._\\-]+'});
  const partitions = h('input', {name: 'partitions', type: 'number', min: 1, max: 1000, placeholder: 'default'});
  const out = h('div');
  const create = async e => {
    e.preventDefault();
    const body = {};
    if (partitions.value) body.partitions = Number(partitions.value);
    try {
      await api('POST', `/v1/admin/topics/${encodeURIComponent(name.value)}`, body);
      location.hash = route('topics', name.value);
    } catch (err) { notice(out, err); }
  };
  const open = e => {
    e.preventDefault();
    location.hash = route('topics', name.value);
  };
  const names = recent('topics');
  const listed = await api('GET', '/v1/admin/topics').then(r => r.topics, e => e);
  fill(view,
    h('h1', null, 'Topics'),
    section('Topics of every cluster',
      listed instanceof Error ? h('div', {class: 'notice error', role: 'alert'}, `${listed.message} (code ${listed.code})`)
        : table([['topic', t => link(route('topics', t.topic), t.topic)], ['cluster', t => t.cluster],
          ['qids', t => t.qids, {num: true}], ['messages', t => t.messages < 0 ? '' : t.messages, {num: true}]],
          listed, {id: 'topic-list', empty: 'No topics you may see.'})),
    section('Open or create a topic',
      h('form', {class: 'row', id: 'topic-form', onsubmit: open},
        h('label', null, 'topic', name),
        h('label', null, 'partitions (create)', partitions),
        h('button', {type: 'submit'}, 'Open'),
        h('button', {type: 'button', class: 'secondary', id: 'create-topic', onclick: create}, 'Create')),
      out),
    section('Opened recently', names.length ? h('ul', {class: 'links'}, names.map(n => h('li', null, link(route('topics', n), n))))
      : h('p', {class: 'muted'}, 'None yet.')),
  );
}

export async function topic(view, name) {
  const path = `/v1/admin/topics/${encodeURIComponent(name)}`;
  const t = await api('GET', path);
  remember('topics', name);

  const ranges = h('div');
  const drawRanges = t => fill(ranges,
    h('p', {class: 'muted'}, `cluster ${t.cluster} · ${t.qids.length} qids · `, h('span', {id: 'retained'}, `${t.messages} messages retained`)),
    table([['qid', q => q.qid], ['partition', q => q.partition, {num: true}], ['start', q => q.start, {num: true}],
      ['end', q => q.end, {num: true}], ['messages', q => q.end - q.start, {num: true}]], t.qids, {id: 'qids'}));
  drawRanges(t);
  const refresh = async () => drawRanges(await api('GET', path));

  // Produce.
  const key = h('input', {name: 'key', placeholder: 'key (optional)'});
  const value = h('textarea', {name: 'value', placeholder: 'value'});
  const produced = h('div');
  const produce = async e => {
    e.preventDefault();
    const msg = {value: value.value};
    if (key.value) msg.key = key.value;
    try {
      const r = await api('POST', `/v1/topics/${encodeURIComponent(name)}/messages`, msg);
      const res = r.results[0];
      if (res.code) throw res;
      const q = t.qids.find(q => q.partition === res.partition);
      if (q) qid.value = q.qid; // browse where it went
      notice(produced, `Written to qid ${q ? q.qid : res.partition} at offset ${res.offset}.`, true);
      value.value = '';
      await refresh();
    } catch (err) { notice(produced, err); }
  };

  // Browse.
  const qid = h('select', {name: 'qid'}, t.qids.map(q => h('option', {value: q.qid}, q.qid)));
  const firstWithMessages = t.qids.find(q => q.end > q.start);
  if (firstWithMessages) qid.value = firstWithMessages.qid;
  const offset = h('input', {name: 'offset', type: 'number', min: 0, placeholder: '0'});
  const since = h('input', {name: 'since', type: 'datetime-local', step: 1});
  const limit = h('input', {name: 'limit', type: 'number', min: 1, max: 100, value: 20});
  const format = h('select', {name: 'format'}, ['text', 'json', 'hex'].map(f => h('option', {value: f}, f)));
  const page = h('div', {id: 'messages'});
  let next = null;
  const browse = async (from) => {
    const q = new URLSearchParams({qid: qid.value, limit: limit.value || 20, format: format.value});
    if (from != null) q.set('offset', from);
    else if (since.value) q.set('timestamp_ms', new Date(since.value).getTime());
    else q.set('offset', offset.value || 0);
    try {
      const p = await api('GET', `${path}/messages?${q}`);
      next = p.next_offset < p.end ? p.next_offset : null;
      fill(page,
        h('p', {class: 'muted'}, `qid ${p.qid} retains ${p.start} to ${p.end}; `, p.messages.length, ' shown.'),
        messagesTable(p.messages),
        next != null ? h('button', {class: 'secondary', id: 'next-page', onclick: () => browse(next)}, `Next from ${next}`) : null);
    } catch (err) { notice(page, err); }
  };

  // Search.
  const sKey = h('input', {name: 'key', placeholder: 'exact key'});
  const sHeader = h('input', {name: 'header', placeholder: 'header name'});
  const sHeaderValue = h('input', {name: 'header_value', placeholder: 'its value (any)'});
  const sValue = h('input', {name: 'value_contains', placeholder: 'text in the value'});
  const sScan = h('input', {name: 'scan', type: 'number', min: 1, max: 100000, value: 10000});
  const found = h('div', {id: 'found'});
  const search = async e => {
    e.preventDefault();
    const q = new URLSearchParams({scan: sScan.value || 10000, limit: 100, format: format.value});
    if (sKey.value) q.set('key', sKey.value);
    if (sHeader.value) q.set('header', sHeader.value);
    if (sHeader.value && sHeaderValue.value) q.set('header_value', sHeaderValue.value);
    if (sValue.value) q.set('value_contains', sValue.value);
    try {
      const p = await api('GET', `${path}/search?${q}`);
      fill(found,
        h('p', {class: 'muted'}, `${p.messages.length} found among ${p.scanned} read`,
          p.complete ? ' (every message).' : '; the search stopped at its limit or its scan: a wider scan reads more.'),
        messagesTable(p.messages, {qid: true}));
    } catch (err) { notice(found, err); }
  };

  fill(view,
    h('h1', null, 'Topic ', h('span', {id: 'topic-name'}, name)),
    h('p', null, link(route('delays', name), 'Its pending delayed messages')),
    section('Qids', ranges),
    section('Produce',
      h('form', {class: 'row', id: 'produce-form', onsubmit: produce},
        h('label', null, 'key', key), h('label', null, 'value', value), h('button', {type: 'submit'}, 'Produce')),
      produced),
    section('Messages',
      h('form', {class: 'row', id: 'browse-form', onsubmit: e => { e.preventDefault(); browse(); }},
        h('label', null, 'qid', qid), h('label', null, 'from offset', offset), h('label', null, 'or from time (local)', since),
        h('label', null, 'limit', limit), h('label', null, 'format', format), h('button', {type: 'submit'}, 'Browse')),
      page),
    section('Search',
      h('p', {class: 'muted'}, 'Reads up to scan messages, the newest of each qid, and shows those that match every field given.'),
      h('form', {class: 'row', id: 'search-form', onsubmit: search},
        h('label', null, 'key', sKey), h('label', null, 'header', sHeader), h('label', null, 'header value', sHeaderValue),
        h('label', null, 'value contains', sValue), h('label', null, 'scan', sScan), h('button', {type: 'submit'}, 'Search')),
      found),
  );
}

// messagesTable shows browsed messages; their values are text.
export function messagesTable(messages, {select, qid} = {}) {
  const shown = (m, f) => m[f + '_json'] !== undefined ? JSON.stringify(m[f + '_json'], null, 1)
    : m[f] ?? (m[f + '_hex'] !== undefined ? m[f + '_hex'] : m[f + '_base64'] !== undefined ? 'base64: ' + m[f + '_base64'] : '');
  const cols = [
    ['offset', m => m.offset, {num: true}],
    ['time (UTC)', m => time(m.timestamp_ms)],
    ['key', m => shown(m, 'key'), {value: true}],
    ['value', m => shown(m, 'value'), {value: true}],
    ['headers', m => Object.entries(m.headers || {}).map(([k, v]) => h('div', null, h('span', {class: 'pill'}, k), ' ', v)), {value: true}],
  ];
  if (qid) cols.unshift(['qid', m => m.qid]);
  if (select) cols.unshift(['', m => h('input', {type: 'checkbox', value: m.offset, 'aria-label': `select offset ${m.offset}`, onchange: select})]);
  return table(cols, messages, {empty: 'No messages from there.'});
}
