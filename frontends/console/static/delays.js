// Delays: what waits in each tier, a topic's pending delayed messages by
// due time, and cancelling one from the list.
import {api, h, table, section, notice, time, route, fill} from './lib.js';

export async function delays(view, topicName) {
  const counts = await api('GET', '/v1/admin/delays').catch(e => e);
  const topic = h('input', {name: 'topic', required: true, placeholder: 'orders', value: topicName || ''});
  const id = h('input', {name: 'id', placeholder: 'any'});
  const list = h('div', {id: 'pending'});

  const load = async () => {
    const q = new URLSearchParams({limit: 100});
    if (id.value) q.set('id', id.value);
    let p;
    try {
      p = await api('GET', `/v1/admin/topics/${encodeURIComponent(topic.value)}/delayed?${q}`);
    } catch (e) { notice(list, e); return; }
    const rows = p.messages.map(m => {
      const status = h('span', {class: m.cancelled ? 'state-down' : null}, m.cancelled ? 'cancelled' : 'pending');
      const cancel = h('button', {class: 'secondary', disabled: m.cancelled, 'data-id': m.id, onclick: async () => {
        try {
          await api('DELETE', `/v1/topics/${encodeURIComponent(p.topic)}/delayed/${encodeURIComponent(m.id)}`);
          fill(status, 'cancelled');
          status.className = 'state-down';
          cancel.disabled = true;
        } catch (e) { notice(status, e); }
      }}, 'Cancel');
      return {...m, status, cancel};
    });
    fill(list,
      h('p', {class: 'muted'}, `${p.messages.length} shown; ${p.scanned} tier records read`,
        p.complete ? '.' : ', not every one: name an id to look for one.'),
      table([
        ['id', m => m.id], ['due (UTC)', m => time(m.due_ms)], ['tier', m => m.tier_topic],
        ['loop', m => m.loop ? `every ${m.loop.interval_ms / 1000} s, ${m.loop.fired} of ${m.loop.times}` : ''],
        ['key', m => m.message.key ?? m.message.key_base64 ?? '', {value: true}],
        ['value', m => m.message.value ?? (m.message.value_base64 !== undefined ? 'base64: ' + m.message.value_base64 : ''), {value: true}],
        ['status', m => m.status], ['', m => m.cancel],
      ], rows, {id: 'pending-table', empty: `Nothing delayed for ${p.topic}.`}));
  };

  fill(view,
    h('h1', null, 'Delays'),
    section('Waiting in the tiers (every gateway)', counts instanceof Error ? h('div', null, counts.message) :
      h('div', null,
        h('p', null, h('strong', {id: 'delays-pending'}, counts.pending), ' delayed messages waiting'),
        table([['tier topic', t => t.topic], ['hop up to', t => `${t.tier_ms / 1000} s`, {num: true}], ['pending', t => t.pending, {num: true}]],
          counts.tiers.filter(t => t.pending > 0), {empty: 'No tier holds anything.'}))),
    section('Pending delayed messages of a topic',
      h('form', {class: 'row', id: 'delays-form', onsubmit: e => {
        e.preventDefault();
        if (route('delays', topic.value) !== location.hash) location.hash = route('delays', topic.value); else load();
      }},
        h('label', null, 'topic', topic), h('label', null, 'id (optional)', id), h('button', {type: 'submit'}, 'Show')),
      list),
  );
  if (topicName) await load();
}
