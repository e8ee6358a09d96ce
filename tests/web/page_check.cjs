// page_check.cjs: open dynmemd's live page in headless Chromium (driven by
// playwright-core) and report what it shows, as one JSON object on stdout,
// for test_page.py to judge:
//
//   node page_check.cjs URL SCREENSHOT.png
//
// PLAYWRIGHT_CORE names the playwright-core module directory, CHROMIUM the
// browser (default /usr/bin/chromium).
'use strict';

const {run} = require('./browser.cjs');

const WAIT_MS = 90000;

// Inside the page: how many pixels of each chart's canvases are drawn.
function inkOf(selector) {
  const out = {};
  for (const box of document.querySelectorAll(selector)) {
    let ink = 0;
    for (const c of box.querySelectorAll('canvas')) {
      if (!c.width || !c.height) continue;
      const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      for (let i = 3; i < data.length; i += 4) if (data[i]) ink++;
    }
    out[box.dataset.vm || box.id] = ink;
  }
  return out;
}

// Inside the page: for each chart seen updating (window.seenGraphs), how many gaps its
// data has: runs of rows without any value between rows with values, where dygraphs
// breaks the lines.
function gapsOf() {
  const out = {};
  for (const g of window.seenGraphs) {
    let gaps = 0, valued = false, empty = 0;
    for (let r = 0; r < g.numRows(); r++) {
      let any = false;
      for (let c = 1; c < g.numColumns(); c++) if (g.getValue(r, c) !== null) any = true;
      if (!any) {
        if (valued) empty++;
      } else {
        if (empty) gaps++;
        empty = 0;
        valued = true;
      }
    }
    out[g.maindiv_.dataset.vm || g.maindiv_.id] = gaps;
  }
  return out;
}

// Wait for n more polls of the page.
async function polls(page, n) {
  const now = await page.evaluate(() => Number(document.body.dataset.polls || 0));
  await page.waitForFunction((k) => Number(document.body.dataset.polls || 0) >= k, now + n,
                             {timeout: WAIT_MS});
}

function tableOf() {
  const rows = {};
  for (const tr of document.querySelectorAll('#vms tbody tr')) {
    const cells = {};
    for (const td of tr.children) cells[td.classList[0]] = td.textContent;
    rows[tr.dataset.vm] = cells;
  }
  return rows;
}

// Inside the page: the selected VM's details, {label: value}.
function detailsOf() {
  const out = {};
  const dts = document.querySelectorAll('#details-list dt');
  for (const dt of dts) out[dt.textContent] = dt.nextElementSibling.textContent;
  return {
    hidden: document.getElementById('details').hidden,
    name: document.getElementById('details-name').textContent,
    fields: out,
    selected: [...document.querySelectorAll('#vms tbody tr.selected')].map((tr) => tr.dataset.vm),
  };
}

const [url, shot] = process.argv.slice(2);
const origin = new URL(url).origin;

run({width: 1400, height: 1100}, (u) => u.startsWith(origin), async (page, report) => {
  const response = await page.goto(url, {timeout: WAIT_MS});
  report.status = response.status();
  await page.waitForFunction(() => Number(document.body.dataset.polls || 0) >= 3,
                             null, {timeout: WAIT_MS});
  report.title = await page.title();
  report.dygraph = await page.evaluate(() => typeof window.Dygraph);
  report.first = await page.evaluate(tableOf);
  report.host = await page.evaluate(() => ({
    memory: document.getElementById('host-memory').textContent,
    vms: document.getElementById('host-vms').textContent,
    peersShown: getComputedStyle(document.getElementById('host-peers-box')).display !== 'none',
    // the relief rule, the host's warnings (libvirt out of reach and a failed reload
    // among them) and the configuration's, none of which applies here (one the page
    // lacks counts as shown: it would not be hidden)
    alertsShown: ['host-relief-box', 'host-backend-box', 'host-overcommit-box',
                  'host-state-box', 'host-reload-box', 'config-warnings'].filter(
        (id) => !document.getElementById(id) ||
            getComputedStyle(document.getElementById(id)).display !== 'none'),
  }));
  // the numbers change: wait for any assigned or demand cell to differ
  const before = JSON.stringify(report.first);
  report.changed = await page.waitForFunction((b) => {
    const now = {};
    for (const tr of document.querySelectorAll('#vms tbody tr')) {
      now[tr.dataset.vm] = [tr.querySelector('.assigned').textContent,
                            tr.querySelector('.demand').textContent];
    }
    const old = JSON.parse(b);
    return Object.keys(now).some((n) => old[n] &&
        (old[n].assigned !== now[n][0] || old[n].demand !== now[n][1]));
  }, before, {timeout: WAIT_MS}).then(() => true, () => false);
  // let every chart collect a few points, then look at them
  await page.waitForFunction(() => Number(document.body.dataset.polls || 0) >= 8,
                             null, {timeout: WAIT_MS});
  report.last = await page.evaluate(tableOf);
  // a VM's details: none before one is chosen, db1's once its name is followed
  report.detailsNone = await page.evaluate(detailsOf);
  await page.click('#vms tbody tr[data-vm="db1"] td.name a');
  await polls(page, 1);
  report.details = await page.evaluate(detailsOf);
  report.charts = await page.evaluate(inkOf, '#charts .chart-box');
  report.hostChart = await page.evaluate(inkOf, '#host-chart');
  report.events = await page.evaluate(() =>
    [...document.querySelectorAll('#events li')].map((li) => li.textContent));
  report.connection = await page.evaluate(() =>
    document.getElementById('connection').textContent);
  await page.screenshot({path: shot, fullPage: true});
  report.screenshot = shot;
  // every chart the page updates from now on, to read its data back through dygraphs
  await page.evaluate(() => {
    window.seenGraphs = new Set();
    const update = window.Dygraph.prototype.updateOptions;
    window.Dygraph.prototype.updateOptions = function (...args) {
      window.seenGraphs.add(this);
      return update.apply(this, args);
    };
  });
  await polls(page, 2);
  report.gapsBefore = await page.evaluate(gapsOf);
  // dynmemd stops answering: the figures left on the page must say they are old (the
  // refused requests are console errors of their own, not the page's)
  const errors = report.errors.length;
  const api = (u) => new URL(u).pathname.startsWith('/api/');
  await page.route(api, (r) => r.abort());
  report.lost = await page.waitForFunction(() => document.body.classList.contains('stale'),
                                           null, {timeout: WAIT_MS})
    .then(() => page.evaluate(() => ({
      connection: document.getElementById('connection').textContent,
      tdColor: getComputedStyle(document.querySelector('#vms tbody td.assigned')).color,
    })), (e) => ({failure: String(e)}));
  // dynmemd answers again: the page recovers, and every refused request has been
  // reported by then (their console lines come before the answer that ends `stale`)
  await page.unroute(api);
  report.recovered = await page.waitForFunction(
    () => !document.body.classList.contains('stale'), null, {timeout: WAIT_MS})
    .then(() => true, () => false);
  // the polls missed meanwhile are a gap in every chart, not a line across them
  await polls(page, 2);
  report.gapsAfter = await page.evaluate(gapsOf);
  const refused = /^Failed to load resource: net::ERR_FAILED/;
  report.errors = report.errors.filter((e, i) => i < errors || !refused.test(e));
});
