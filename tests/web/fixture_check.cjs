// fixture_check.cjs: open dynmemd's live page in headless Chromium with its API
// answered from a file instead of by dynmemd (the page itself still comes from
// dynmemd), and report what it shows, as one JSON object on stdout, for
// test_page.py to judge: the VMs a test cannot make here (no agent yet, a
// migration under way, a backend's problem, a refusal), the host's warnings (relief,
// libvirt out of reach, overcommitted minimums, a state file not written) and strings
// that look like markup, where a guest, a backend or libvirt's XML could put them.
//
//   node fixture_check.cjs URL FIXTURE.json [SCREENSHOT.png]
//
// FIXTURE.json: {"vms": [...], "status": {...}, "counters": {...}, "events": {...}},
// the bodies of /api/v1/vms, /api/v1/status, /api/v1/counters, /api/v1/events.
'use strict';

const fs = require('fs');
const {run} = require('./browser.cjs');

const WAIT_MS = 90000;

const [url, fixtureFile, shot] = process.argv.slice(2);
const origin = new URL(url).origin;
const fixture = JSON.parse(fs.readFileSync(fixtureFile, 'utf8'));
const bodies = {
  '/api/v1/vms': fixture.vms,
  '/api/v1/status': fixture.status,
  '/api/v1/counters': fixture.counters,
  '/api/v1/events': fixture.events,
};

// Inside the page: the table, the details shown, what markup the page holds.
function look() {
  const rows = {};
  for (const tr of document.querySelectorAll('#vms tbody tr')) {
    const cells = {};
    for (const td of tr.children) cells[td.classList[0]] = td.textContent;
    rows[tr.dataset.vm] = cells;
  }
  const fields = {};
  for (const dt of document.querySelectorAll('#details-list dt')) {
    fields[dt.textContent] = dt.nextElementSibling.textContent;
  }
  const shown = (id) => !!document.getElementById(id) &&
      getComputedStyle(document.getElementById(id)).display !== 'none';
  return {
    rows: rows,
    details: document.getElementById('details').hidden ? null : fields,
    detailsName: document.getElementById('details-name').textContent,
    peersShown: shown('host-peers-box'),
    peers: document.getElementById('host-peers').textContent,
    // the relief rule and what needs the operator: {id: text} of those shown
    host: Object.fromEntries(['host-relief', 'host-backend', 'host-overcommit', 'host-state']
        .filter((id) => shown(id + '-box'))
        .map((id) => [id, document.getElementById(id).textContent])),
    alertColor: shown('host-state') && getComputedStyle(document.getElementById('host-state')).color,
    events: [...document.querySelectorAll('#events li')].map((li) => li.textContent),
    // anything that is not the page's own markup: each hostile string carries an
    // element with an id starting "pwn"
    injected: [...document.querySelectorAll('[id^="pwn"], script:not([src]), img, b, i')]
        .map((e) => e.outerHTML),
  };
}

async function polls(page, n) {
  const now = await page.evaluate(() => Number(document.body.dataset.polls || 0));
  await page.waitForFunction((k) => Number(document.body.dataset.polls || 0) >= k, now + n,
                             {timeout: WAIT_MS});
}

run({width: 1400, height: 1100}, (u) => u.startsWith(origin), async (page, report) => {
  await page.route((u) => new URL(u).pathname.startsWith('/api/'), (r) => r.fulfill({
    status: 200,
    contentType: 'application/json',
    body: JSON.stringify(bodies[new URL(r.request().url()).pathname]),
  }));
  await page.goto(url, {timeout: WAIT_MS});
  await polls(page, 2);
  report.page = await page.evaluate(look);
  if (shot) await page.screenshot({path: shot, fullPage: true});
  report.vms = {};
  for (const vm of fixture.vms) {
    // the VM chosen by following its name's link in the table
    await page.evaluate((name) => {
      for (const tr of document.querySelectorAll('#vms tbody tr')) {
        if (tr.dataset.vm === name) tr.querySelector('td.name a').click();
      }
    }, vm.name);
    await polls(page, 1);
    report.vms[vm.name] = await page.evaluate(look);
  }
});
