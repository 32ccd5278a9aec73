// Groups: a group's lag per qid, the messages it has out on this gateway,
// the offset reset, and its dead letters with redrive.
import uPlot from './vendor/uPlot.esm.js';
import {api, h, table, section, notice, time, link, route, remember, recent, fill} from './lib.js';
import {messagesTable} from './topics.js';

const every = 2000; // ms between refreshes of the group's figures

export async function groups(view) {
  const name = h('input', {name: 'group', required: true, placeholder: 'billing'});
  const topic = h('input', {name: 'topic', placeholder: 'all it reads here'});
  const open = e => {
    e.preventDefault();
    location.hash = topic.value ? route('groups', name.value, topic.value) : route('groups', name.value);
  };
  const names = recent('groups');
  const listed = await api('GET', '/v1/admin/groups').then(r => r.groups, e => e);
  const deleted = h('div', {id: 'group-deleted'});
  const remove = g => async () => {
    if (!confirm(`Delete group ${g.group} and its committed offsets on ${g.cluster}?`)) return;
    try {
      await api('DELETE', `/v1/admin/groups/${encodeURIComponent(g.group)}?cluster=${encodeURIComponent(g.cluster)}`);
      notice(deleted, `Deleted ${g.group} on ${g.cluster}.`, true);
    } catch (e) { notice(deleted, e); }
  };
  fill(view,
    h('h1', null, 'Groups'),
    section('Groups of every cluster',
      listed instanceof Error ? h('div', {class: 'notice error', role: 'alert'}, `${listed.message} (code ${listed.code})`)
        : table([['group', g => link(route('groups', g.group), g.group)], ['cluster', g => g.cluster],
          ['state', g => g.state], ['members', g => g.members < 0 ? '' : g.members, {num: true}],
          ['sessions here', g => g.sessions, {num: true}],
          ['', g => h('button', {class: 'secondary', onclick: remove(g)}, 'Delete')]],
          listed, {id: 'group-list', empty: 'No groups you may see.'}),
      deleted),
    section('Open a group',
      h('p', {class: 'muted'}, 'A group shows the topics it is subscribed to or consumes through this gateway; name a topic to see its lag there.'),
      h('form', {class: 'row', id: 'group-form', onsubmit: open},
        h('label', null, 'group', name), h('label', null, 'topic (optional)', topic), h('button', {type: 'submit'}, 'Open'))),
    section('Opened recently', names.length ? h('ul', {class: 'links'}, names.map(n => h('li', null, link('#/groups/' + n, decodeURIComponent(n)))))
      : h('p', {class: 'muted'}, 'None yet.')),
  );
}

export async function group(view, name, topicName) {
  const enc = encodeURIComponent(name);
  const path = `/v1/admin/groups/${enc}` + (topicName ? `?topic=${encodeURIComponent(topicName)}` : '');
  const first = await api('GET', path);
  remember('groups', topicName ? `${enc}/${encodeURIComponent(topicName)}` : enc);

  const lag = h('div', {id: 'lag'});
  const chartEl = h('div', {class: 'chart'});
  const out = h('div', {id: 'in-flight'});
  const members = h('div', {id: 'members'});
  const lagSeries = {t: [], lag: []};
  let plot = null;
  const draw = g => {
    const rows = [];
    for (const s of g.stats) {
      for (const [qid, end] of Object.entries(s.produce_offsets)) {
        const committed = s.consume_offsets[qid];
        rows.push({topic: s.topic, qid, committed, end, lag: committed == null || committed < 0 ? end : end - committed});
      }
    }
    const total = g.stats.reduce((a, s) => a + s.lag, 0);
    fill(lag,
      h('p', null, 'Total lag ', h('strong', {id: 'total-lag'}, total), ' messages'),
      table([['topic', r => r.topic], ['qid', r => r.qid], ['committed', r => r.committed ?? '', {num: true}],
        ['end', r => r.end, {num: true}], ['lag', r => r.lag, {num: true}]], rows, {id: 'lag-table', empty: 'The group reads no topic here: name one.'}));
    lagSeries.t.push(Date.now() / 1000);
    lagSeries.lag.push(total);
    if (lagSeries.t.length > 1800) { lagSeries.t.shift(); lagSeries.lag.shift(); }
    const data = [lagSeries.t, lagSeries.lag];
    if (plot) plot.setData(data);
    else if (lagSeries.t.length > 1) plot = new uPlot({width: Math.max(400, chartEl.clientWidth || 800), height: 160,
      series: [{}, {label: 'lag', stroke: '#1f6feb'}], axes: [{}, {label: 'messages'}]}, data, chartEl);

    fill(members, table([['cluster', m => m.cluster], ['member', m => m.member_id], ['client', m => m.client_id], ['host', m => m.host],
      ['qids', m => m.assigned.map(q => `${q.topic}/${q.qid}`).join(', ')]], g.members || [], {id: 'member-table', empty: 'The brokers know no member of this group now.'}));
    const flights = [];
    for (const s of g.sessions) for (const q of s.qids) for (const f of q.flights) flights.push({...f, topic: q.topic, qid: q.qid, reader: s.reader});
    const qids = g.sessions.flatMap(s => s.qids.map(q => ({...q, reader: s.reader, idle_ms: s.idle_ms})));
    fill(out,
      table([['topic', q => q.topic], ['qid', q => q.qid], ['reader', q => q.reader ? 'push/sink' : 'pulls'],
        ['committed', q => q.committed, {num: true}], ['buffered', q => q.buffered, {num: true}],
        ['delivered', q => q.delivered, {num: true}], ['retrying', q => q.retrying, {num: true}],
        ['dead-lettering', q => q.dead_lettering, {num: true}]], qids, {id: 'sessions', empty: 'No sessions of this group on this gateway.'}),
      flights.length ? h('h3', null, 'Messages out') : null,
      flights.length ? table([['topic', f => f.topic], ['qid', f => f.qid], ['offset', f => f.offset, {num: true}],
        ['state', f => f.state], ['attempt', f => f.attempt, {num: true}],
        ['deadline', f => time(f.deadline_ms)], ['retry at', f => time(f.redo_at_ms)], ['last error', f => f.last_error || '']], flights, {id: 'flights'}) : null);
    return g;
  };
  let current = draw(first);
  let asking = false; // one refresh at a time: a slow answer is not piled on
  const refresh = async () => {
    if (asking) return;
    asking = true;
    try { current = draw(await api('GET', path)); } catch (e) { notice(lag, e); } finally { asking = false; }
  };
  const timer = setInterval(refresh, every);

  fill(view,
    h('h1', null, 'Group ', h('span', {id: 'group-name'}, name), topicName ? h('span', {class: 'muted'}, ' on ', topicName) : null),
    section('Lag (the broker: committed offsets against the ends)', lag,
      h('p', {class: 'muted'}, `Total lag every ${every / 1000} s while this page is open:`), chartEl),
    section('Sessions on this gateway', out),
    section('Members on the brokers (every gateway and client)', members),
    section('Reset offsets', resetForm(name, topicName || current.stats[0]?.topic || '', refresh)),
    section('Dead letters', await deadLetters(name)),
  );
  return () => clearInterval(timer);
}

// resetForm moves the group's offsets on a topic, after a preview.
function resetForm(group, topic, refresh) {
  const t = h('input', {name: 'topic', required: true, value: topic});
  const to = h('select', {name: 'to'}, ['earliest', 'latest', 'timestamp', 'offsets'].map(v => h('option', {value: v}, v)));
  const at = h('input', {name: 'timestamp', type: 'datetime-local', step: 1});
  const offsets = h('input', {name: 'offsets', placeholder: 'qid=offset, …'});
  const force = h('input', {name: 'force', type: 'checkbox'});
  const out = h('div', {id: 'reset-result'});
  const send = async dryRun => {
    const body = {to: to.value, dry_run: dryRun, force: force.checked};
    if (to.value === 'timestamp') body.timestamp_ms = new Date(at.value).getTime();
    if (to.value === 'offsets') {
      body.offsets = {};
      for (const pair of offsets.value.split(',').map(s => s.trim()).filter(Boolean)) {
        const i = pair.lastIndexOf('=');
        body.offsets[pair.slice(0, i)] = Number(pair.slice(i + 1));
      }
    }
    try {
      const r = await api('POST', `/v1/admin/groups/${encodeURIComponent(group)}/topics/${encodeURIComponent(t.value)}/offsets`, body);
      fill(out,
        h('div', {class: 'notice ok', role: 'status'}, r.dry_run ? 'Preview: nothing was moved.' : `Reset: ${r.qids.length} qids moved.`),
        table([['qid', q => q.qid], ['from', q => q.from < 0 ? 'none' : q.from, {num: true}], ['to', q => q.to, {num: true}],
          ['retained', q => `${q.start} to ${q.end}`]], r.qids));
      if (!r.dry_run) refresh();
    } catch (e) { notice(out, e); }
  };
  return h('div', null,
    h('p', {class: 'muted'}, 'Refused while the group consumes the topic; force ends its pull sessions on this gateway first.'),
    h('form', {class: 'row', id: 'reset-form', onsubmit: e => { e.preventDefault(); send(false); }},
      h('label', null, 'topic', t), h('label', null, 'to', to), h('label', null, 'time (timestamp)', at),
      h('label', null, 'offsets (offsets)', offsets), h('label', null, 'force', force),
      h('button', {type: 'button', class: 'secondary', id: 'reset-preview', onclick: () => send(true)}, 'Preview'),
      h('button', {type: 'submit', id: 'reset-apply'}, 'Reset')),
    out);
}

// deadLetters browses the group's dead-letter topic and redrives the
// messages picked.
async function deadLetters(group) {
  const base = `/v1/admin/groups/${encodeURIComponent(group)}/dead-letters`;
  const el = h('div', {id: 'dead-letters'});
  // load shows the topic as it is now, under done (what was just done), if
  // given.
  const load = async (done) => {
    let t;
    try { t = await api('GET', base); } catch (e) { notice(el, e); return; }
    const head = done ? [h('div', {class: 'notice ok', role: 'status', id: 'discard-result'}, done)] : [];
    const qids = t.qids.filter(q => q.end > q.start);
    if (qids.length === 0) {
      fill(el, ...head, h('p', {class: 'muted'}, `Nothing in ${t.topic}.`));
      return;
    }
    const parts = [...head, h('p', {class: 'muted'}, `${t.messages} in ${t.topic}; the last 100 of each qid are shown.`)];
    for (const q of qids) {
      const p = await api('GET', `${base}/messages?` + new URLSearchParams({qid: q.qid, offset: Math.max(q.start, q.end - 100), limit: 100}));
      const picked = new Set();
      const result = h('div');
      const redrive = async () => {
        try {
          const r = await api('POST', `${base}/redrive`, {qid: q.qid, offsets: [...picked].map(Number)});
          fill(result, h('div', {class: 'notice ' + (r.redriven === picked.size ? 'ok' : 'error'), role: 'status', id: 'redrive-result'},
            `Sent back ${r.redriven} of ${picked.size}.`,
            r.results.filter(x => x.code).map(x => h('div', null, `offset ${x.offset}: ${x.message} (code ${x.code})`))));
        } catch (e) { notice(result, e); }
      };
      const button = h('button', {id: 'redrive', disabled: true, onclick: redrive}, 'Send back to their topics');
      // Discarding deletes from the topic's start: everything up to the
      // newest picked.
      const discard = h('button', {class: 'secondary', disabled: true, onclick: async () => {
        const before = Math.max(...[...picked].map(Number)) + 1;
        if (!confirm(`Delete every dead letter of qid ${q.qid} before offset ${before}, for good?`)) return;
        try {
          const r = await api('POST', `${base}/discard`, {qid: q.qid, before_offset: before});
          // The table shows what is left.
          await load(`Discarded ${r.discarded}; qid ${r.qid} now holds ${r.start} to ${r.end}.`);
        } catch (e) { notice(result, e); }
      }}, 'Discard up to the newest picked');
      const select = e => {
        if (e.target.checked) picked.add(e.target.value); else picked.delete(e.target.value);
        button.disabled = discard.disabled = picked.size === 0;
      };
      // Every dead letter of the qid a filter matches, a redrive call
      // (of at most 100) at a time.
      const origin = h('input', {name: 'origin_topic', placeholder: 'any'});
      const errText = h('input', {name: 'error_contains', placeholder: 'any'});
      const all = async e => {
        e.preventDefault();
        let from = q.start, sent = 0, read = 0, end = null;
        try {
          for (let i = 0; i < 1000 && from < (end ?? q.end); i++) {
            const filter = {};
            if (origin.value) filter.origin_topic = origin.value;
            if (errText.value) filter.error_contains = errText.value;
            const r = await api('POST', `${base}/redrive`, {qid: q.qid, filter, from_offset: from});
            sent += r.redriven; read += r.scanned;
            end ??= r.end; // the end first seen: what was sent back and failed again is not read again
            if (r.next_offset <= from) break;
            from = r.next_offset;
          }
          notice(result, `Sent back ${sent} dead letters that match, of ${read} read.`, true);
        } catch (err) { notice(result, err); }
      };
      parts.push(h('h3', null, `qid ${q.qid}`), messagesTable(p.messages, {select}), button, ' ', discard,
        h('form', {class: 'row', onsubmit: all},
          h('label', null, 'from topic', origin), h('label', null, 'last error contains', errText),
          h('button', {type: 'submit', class: 'secondary'}, 'Send back all that match')),
        result);
    }
    fill(el, ...parts);
  };
  await load();
  return el;
}
