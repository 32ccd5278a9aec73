// Overview: the gateway's plugins, push subscriptions and sinks, and its
// throughput and errors from its own metrics, sampled while the page is open.
import uPlot from './vendor/uPlot.esm.js';
import {api, h, table, section, notice, time, parseMetrics, sum, fill} from './lib.js';

const every = 5000; // ms between samples of /metrics
const keep = 720;   // samples kept: an hour

// Samples outlive the page: going to a topic and back keeps the chart.
const samples = {t: [], produced: [], acked: [], errors: []};
let last = null;

function state(s) { return h('span', {class: 'state-' + s}, s); }

export async function overview(view) {
  const [plugins, push, sinks, config, lag] = await Promise.all([
    api('GET', '/v1/plugins'), api('GET', '/v1/push'), api('GET', '/v1/sinks'),
    api('GET', '/v1/admin/config').catch(e => e), api('GET', '/v1/admin/lag').catch(e => e)]);
  const lagEl = h('div', {class: 'chart', id: 'lag-history'});
  const chartEl = h('div', {class: 'chart', id: 'throughput'});
  const chartNote = h('div');
  fill(view,
    h('h1', null, 'Overview'),
    section('Plugins', table([
      ['name', p => p.name], ['plugin', p => p.plugin], ['kind', p => p.kind], ['state', p => state(p.state)],
      ['pid', p => p.pid, {num: true}], ['restarts', p => p.restarts, {num: true}], ['in process', p => p.in_process ? 'yes' : ''],
    ], plugins, {id: 'plugins'})),
    section('Throughput (messages per second, this gateway)', chartNote, chartEl),
    section('Lag of the groups consuming here, the last hour', lag instanceof Error
      ? h('p', {class: 'muted'}, `Not shown: ${lag.message} (code ${lag.code}).`)
      : Object.keys(lag.groups).length === 0 ? h('p', {class: 'muted'}, 'No group has consumed through this gateway in the last hour.')
        : h('div', null, h('p', {class: 'muted'}, `A sample every ${lag.every_ms / 1000} s, kept by the gateway.`), lagEl)),
    section('Push subscriptions', table([
      ['name', p => p.name], ['topics', p => p.topics.join(', ')], ['state', p => state(p.state)],
      ['delivered', p => p.delivered, {num: true}], ['in flight', p => p.in_flight, {num: true}],
      ['retrying', p => p.retrying, {num: true}], ['dead-lettered', p => p.dead_lettered, {num: true}],
      ['targets', p => (p.targets || []).map(t => h('div', null, t.url, ' ', h('span', {class: t.healthy ? 'state-up' : 'state-down'}, t.healthy ? 'healthy' : 'unhealthy')))],
      ['last error', p => p.last_error ? `${p.last_error} (${time(p.last_error_at_ms)})` : ''],
    ], push.push, {id: 'push', empty: 'No push subscriptions on this gateway.'})),
    section('Sinks', table([
      ['name', s => s.name], ['plugin', s => s.plugin], ['topics', s => s.topics.join(', ')], ['state', s => state(s.state)],
      ['plugin state', s => state(s.plugin_state)], ['written', s => s.written, {num: true}],
      ['queued', s => s.queued, {num: true}], ['dead-lettered', s => s.dead_lettered, {num: true}],
      ['last error', s => s.last_error ? `${s.last_error} (${time(s.last_error_at_ms)})` : ''],
    ], sinks.sinks, {id: 'sinks', empty: 'No sinks on this gateway.'})),
    section('Config', config instanceof Error
      ? h('p', {class: 'muted'}, `Not shown: ${config.message} (code ${config.code}).`)
      : h('div', null,
        h('p', {class: 'muted'}, `${config.file}, as the gateway read it; ${config.redacted.length} secrets redacted.`),
        h('pre', {id: 'config', class: 'value'}, JSON.stringify(config.config, null, 2)))),
  );

  if (!(lag instanceof Error) && Object.keys(lag.groups).length > 0) drawLag(lagEl, lag.groups);
  let plot = null;
  const draw = () => {
    const data = [samples.t, samples.produced, samples.acked, samples.errors];
    if (plot) { plot.setData(data); return; }
    plot = new uPlot({
      width: Math.max(400, chartEl.clientWidth || 800), height: 200,
      series: [{}, {label: 'produced', stroke: '#1f6feb'}, {label: 'acked', stroke: '#2e7d32'}, {label: 'HTTP errors', stroke: '#c62828'}],
      axes: [{}, {label: 'msgs/s'}],
    }, data, chartEl);
  };
  const sample = async () => {
    let m;
    try {
      m = parseMetrics(await api('GET', '/metrics', undefined, {raw: true}));
    } catch (e) {
      notice(chartNote, e);
      return;
    }
    const now = {t: Date.now() / 1000,
      produced: sum(m, 'mqgate_produce_batch_records_sum'),
      acked: sum(m, 'mqgate_consume_acked_total'),
      errors: sum(m, 'mqgate_http_requests_total', l => l.code >= '400')};
    if (last && now.t > last.t) {
      const dt = now.t - last.t;
      samples.t.push(now.t);
      for (const k of ['produced', 'acked', 'errors']) samples[k].push(Math.max(0, (now[k] - last[k]) / dt));
      if (samples.t.length > keep) for (const k in samples) samples[k].shift();
    }
    last = now;
    fill(chartNote, h('p', {class: 'muted'}, `Sampled every ${every / 1000} s while the console is open; the last hour is kept.`));
    if (samples.t.length > 1) draw();
  };
  await sample();
  const timer = setInterval(sample, every);
  return () => clearInterval(timer);
}

// drawLag charts the groups' lag history, the eight with the most lag now.
function drawLag(el, groups) {
  const names = Object.keys(groups).sort((a, b) => groups[b].at(-1).lag - groups[a].at(-1).lag).slice(0, 8);
  const times = [...new Set(names.flatMap(g => groups[g].map(p => p.at_ms)))].sort((a, b) => a - b);
  const data = [times.map(t => t / 1000), ...names.map(g => {
    const at = new Map(groups[g].map(p => [p.at_ms, p.lag]));
    return times.map(t => at.get(t) ?? null);
  })];
  const colors = ['#1f6feb', '#2e7d32', '#c62828', '#8e24aa', '#ef6c00', '#00838f', '#6d4c41', '#546e7a'];
  new uPlot({width: Math.max(400, el.clientWidth || 800), height: 200,
    series: [{}, ...names.map((g, i) => ({label: g, stroke: colors[i], points: {show: true}}))],
    axes: [{}, {label: 'messages'}]}, data, el);
}
