// The console driven in headless Chromium, as a user would: by the gateway
// test TestConsoleInABrowser (cmd/mqgate), which starts a gateway with API
// keys and runs this with:
//   MQGATE_URL      the gateway's HTTP address (http://127.0.0.1:PORT)
//   MQGATE_KEY      an API key allowed everything
//   MQGATE_VIEWER   an API key allowed only read-stats and metrics
//   CHROMIUM        the browser to drive (Debian's chromium)
//   SCREENSHOTS     a directory for a screenshot of each page
// It prints each step and exits non-zero on the first failure.
import {chromium} from 'playwright-core';
import assert from 'node:assert/strict';
import path from 'node:path';

const base = process.env.MQGATE_URL;
const key = process.env.MQGATE_KEY;
const viewer = process.env.MQGATE_VIEWER;
const shots = process.env.SCREENSHOTS;
const topic = 'console-orders';
const group = 'console-g';
const wait = 90_000; // a step on a loaded machine; a group's first join is slow

function step(what) { console.log(`step: ${what}`); }

// call asks the gateway directly, as a consumer beside the browser would.
async function call(method, route, body) {
  const res = await fetch(base + route, {method, headers: {Authorization: 'Bearer ' + key, 'Content-Type': 'application/json'},
    body: body === undefined ? undefined : JSON.stringify(body)});
  const text = await res.text();
  assert.ok(res.ok, `${method} ${route}: ${res.status} ${text}`);
  return JSON.parse(text);
}

const browser = await chromium.launch({executablePath: process.env.CHROMIUM,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking']});
const page = await browser.newPage({viewport: {width: 1280, height: 900}});
page.setDefaultTimeout(wait);
const errors = [];
page.on('pageerror', e => errors.push(e.message));
const shot = name => page.screenshot({path: path.join(shots, name), fullPage: true});

try {
  step('without a key the console says the gateway wants one');
  await page.goto(base + '/ui/');
  await page.getByRole('alert').filter({hasText: 'code 18'}).waitFor();

  step('with a key the overview shows the plugins and the throughput chart');
  await page.fill('#key', key);
  await page.click('#key-form button');
  await page.locator('#plugins').getByText('up', {exact: true}).first().waitFor();
  await page.locator('#throughput canvas').waitFor(); // two samples of /metrics, 5 s apart
  // The config is shown with the API keys' hashes redacted.
  assert.match(await page.locator('#config').textContent(), /"sha256": "<redacted>"/);
  assert.doesNotMatch(await page.locator('#config').textContent(), /[0-9a-f]{64}/);

  step('create a topic of two qids: the topic list shows it');
  await page.click('nav >> text=Topics');
  await page.fill('#topic-form input[name=topic]', topic);
  await page.fill('#topic-form input[name=partitions]', '2');
  await page.click('#create-topic');
  await page.locator('#topic-name', {hasText: topic}).waitFor();
  assert.equal(await page.locator('#qids tbody tr').count(), 2);
  await page.click('nav >> text=Topics');
  await page.locator('#topic-list tbody tr', {hasText: topic}).waitFor();
  await shot('topics.png');
  await page.locator('#topic-list').getByRole('link', {name: topic}).click();
  await page.locator('#topic-name', {hasText: topic}).waitFor();

  step('produce three messages from the browser');
  for (const value of ['first', 'second', '{"amount": 3}']) {
    await page.fill('#produce-form input[name=key]', 'k');
    await page.fill('#produce-form textarea[name=value]', value);
    await page.click('#produce-form button');
    await page.getByRole('status').filter({hasText: 'Written to'}).waitFor();
  }
  await page.locator('#retained', {hasText: '3 messages retained'}).waitFor();

  step('browse them, the JSON one as JSON');
  await page.selectOption('#browse-form select[name=format]', 'json');
  await page.click('#browse-form button[type=submit]');
  const rows = page.locator('#messages tbody tr');
  await rows.nth(2).waitFor();
  assert.equal(await rows.count(), 3);
  assert.match(await rows.nth(0).textContent(), /first/);
  assert.match(await rows.nth(2).textContent(), /"amount": 3/);

  step('search them by the text in a value');
  await page.fill('#search-form input[name=value_contains]', 'amount');
  await page.click('#search-form button');
  await page.locator('#found tbody tr').first().waitFor();
  assert.equal(await page.locator('#found tbody tr').count(), 1);
  assert.match(await page.locator('#found').textContent(), /1 found among 3 read \(every message\)/);
  await shot('topic.png');

  step("a consumer pulls them: the group list shows the group, its page the messages out and its lag");
  let pulled = [];
  let qid;
  for (const deadline = Date.now() + wait; pulled.length < 3 && Date.now() < deadline;) {
    const b = await call('POST', `/v1/groups/${group}/topics/${topic}/pull`, {max_messages: 3, max_wait_ms: 1000});
    pulled.push(...b.messages);
    qid = b.context.qid || qid;
  }
  assert.equal(pulled.length, 3, 'the consumer pulled three messages');
  await page.goto(`${base}/ui/#/groups`);
  await page.locator('#group-list tbody tr', {hasText: group}).waitFor();
  await page.goto(`${base}/ui/#/groups/${group}/${topic}`);
  await page.locator('#total-lag', {hasText: /^3$/}).waitFor();
  await page.locator('#flights tbody tr').nth(2).waitFor();
  await page.locator('#member-table tbody tr').first().waitFor(); // the broker knows the session's member
  await shot('group-in-flight.png');

  step('the consumer acks two and fails one: lag falls to 0 and the failed one is a dead letter');
  await call('POST', `/v1/groups/${group}/topics/${topic}/ack`, {qid, success: [pulled[0].offset, pulled[1].offset], fail: [pulled[2].offset]});
  await page.locator('#total-lag', {hasText: /^0$/}).waitFor();

  step('redrive the dead letter: it arrives on its topic again');
  for (const deadline = Date.now() + wait; ;) {
    await page.reload();
    if (await page.locator('#dead-letters tbody tr').count() > 0) break;
    assert.ok(Date.now() < deadline, 'the dead letter did not appear');
    await page.waitForTimeout(500);
  }
  await page.locator('#dead-letters tbody tr input[type=checkbox]').first().check();
  await shot('group.png');
  await page.click('#redrive');
  await page.locator('#redrive-result', {hasText: 'Sent back 1 of 1'}).waitFor();
  await page.goto(`${base}/ui/#/topics/${topic}`);
  await page.locator('#retained', {hasText: '4 messages retained'}).waitFor();

  step('reset the group to the earliest offsets: previewed, refused while it consumes, then forced');
  await page.goto(`${base}/ui/#/groups/${group}/${topic}`);
  await page.selectOption('#reset-form select[name=to]', 'earliest');
  await page.click('#reset-preview');
  await page.locator('#reset-result', {hasText: 'Preview: nothing was moved.'}).waitFor();
  await page.click('#reset-apply');
  await page.locator('#reset-result').getByRole('alert').filter({hasText: 'reset with force'}).waitFor();
  await page.check('#reset-form input[name=force]');
  await page.click('#reset-apply');
  await page.locator('#reset-result', {hasText: 'Reset: 2 qids moved.'}).waitFor();
  await page.locator('#total-lag', {hasText: /^4$/}).waitFor();
  await shot('reset.png');

  step('discard the oldest dead letter, confirmed in a dialog: the table then shows what is left');
  const deadRows = page.locator('#dead-letters tbody tr');
  const before = await deadRows.count();
  const oldest = await deadRows.first().locator('td').nth(1).innerText();
  await deadRows.first().locator('input[type=checkbox]').check();
  page.once('dialog', d => d.accept());
  await page.getByRole('button', {name: 'Discard up to the newest picked'}).click();
  await page.locator('#discard-result', {hasText: 'Discarded 1;'}).waitFor();
  if (await deadRows.count() !== before - 1) throw new Error(`after discarding 1 of ${before} dead letters the table shows ${await deadRows.count()}`);
  if (before > 1 && await deadRows.first().locator('td').nth(1).innerText() === oldest) throw new Error(`the discarded dead letter (${oldest}) is still shown`);

  step('cancel a pending delay from the list: it does not fire, and one not cancelled does');
  await call('POST', `/v1/topics/${topic}/delayed`, {key: 'd', value: 'never sent', delay_ms: 25000, id: 'console-cancel-me'});
  await call('POST', `/v1/topics/${topic}/delayed`, {key: 'd', value: 'sent later', delay_ms: 1000, id: 'console-kept'});
  await page.goto(`${base}/ui/#/delays/${topic}`);
  const row = page.locator('#pending-table tbody tr', {hasText: 'console-cancel-me'});
  await row.waitFor();
  await shot('delays.png');
  await row.getByRole('button', {name: 'Cancel'}).click();
  await row.getByText('cancelled', {exact: true}).waitFor();
  // The tiers hold nothing once the cancelled one's due time has passed
  // (it is dropped then), and the other one has fired by then.
  for (const deadline = Date.now() + wait; ;) {
    const t = await call('GET', '/v1/admin/delays');
    if (t.pending === 0) break;
    assert.ok(Date.now() < deadline, `the tiers still hold ${t.pending}`);
    await new Promise(r => setTimeout(r, 500));
  }
  const values = [];
  for (const q of (await call('GET', `/v1/admin/topics/${topic}`)).qids) {
    const delivered = await call('GET', `/v1/admin/topics/${topic}/messages?qid=${encodeURIComponent(q.qid)}&offset=0&limit=100`);
    values.push(...delivered.messages.map(m => m.value));
  }
  assert.ok(values.includes('sent later'), `the delay not cancelled fired: ${values}`);
  assert.ok(!values.includes('never sent'), `the cancelled delay fired: ${values}`);

  step('a principal allowed only stats sees the ranges, and is refused the messages');
  await page.fill('#key', viewer);
  await page.click('#key-form button');
  await page.goto(`${base}/ui/#/topics/${topic}`);
  await page.locator('#retained', {hasText: '5 messages retained'}).waitFor(); // and the delay that fired
  await page.click('#browse-form button[type=submit]');
  await page.getByRole('alert').filter({hasText: 'code 13'}).waitFor();

  step('the overview charts the throughput while messages are produced and pulled');
  await page.fill('#key', key);
  await page.click('#key-form button');
  await page.goto(`${base}/ui/#/`);
  await page.locator('#throughput canvas').waitFor();
  for (const until = Date.now() + 12_000; Date.now() < until;) {
    await call('POST', `/v1/topics/${topic}/messages`, {messages: Array.from({length: 20}, (_, i) => ({key: `k${i}`, value: `burst ${i}`}))});
    await new Promise(r => setTimeout(r, 200));
  }
  await shot('overview.png');

  assert.deepEqual(errors, [], 'the pages threw no errors');
  console.log('ok');
} catch (e) {
  await shot('failure.png').catch(() => {});
  console.error(e);
  process.exitCode = 1;
} finally {
  await browser.close();
}
