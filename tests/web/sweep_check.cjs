// sweep_check.cjs: open a dynmem-sim sweep report (a file) in headless Chromium
// (driven by playwright-core) and report what it shows, as one JSON object on
// stdout, for test_sweep_page.py to judge:
//
//   node sweep_check.cjs FILE.html SCREENSHOT.png
//
// PLAYWRIGHT_CORE names the playwright-core module directory, CHROMIUM the
// browser (default /usr/bin/chromium).
'use strict';

const path = require('path');
const {run} = require('./browser.cjs');

// Inside the page: every curve of a chart, as drawn.
function curvesOf(id) {
  const svg = document.getElementById(id);
  if (!svg) return null;
  const out = {};
  for (const line of svg.querySelectorAll('polyline.curve')) {
    const box = line.getBoundingClientRect();
    const points = line.getAttribute('points').trim().split(/\s+/).filter(Boolean)
        .map((p) => p.split(',').map(Number));
    out[line.dataset.policy] = {
      points: points.length,
      finite: points.every(([x, y]) => Number.isFinite(x) && Number.isFinite(y)),
      inside: points.every(([x, y]) => x >= 0 && y >= 0 && x <= svg.viewBox.baseVal.width &&
                                       y <= svg.viewBox.baseVal.height),
      width: box.width,
      height: box.height,
      stroke: getComputedStyle(line).stroke,
    };
  }
  return {curves: out, markers: svg.querySelectorAll('circle.point').length,
          slo: svg.querySelectorAll('line.slo').length,
          smallest: svg.querySelectorAll('line.smallest').length,
          shown: svg.getBoundingClientRect().width > 0};
}

const [file, shot] = process.argv.slice(2);
const url = 'file://' + path.resolve(file);

run({width: 1200, height: 900}, (u) => u === url, async (page, report) => {
  await page.goto(url, {timeout: 60000});
  report.title = await page.title();
  report.short = await page.evaluate(curvesOf, 'short-curve');
  report.oom = await page.evaluate(curvesOf, 'oom-curve');
  report.smallest = await page.evaluate(() => {
    const out = {};
    for (const s of document.querySelectorAll('#smallest span[data-policy]')) {
      out[s.dataset.policy] = {bytes: Number(s.dataset.bytes), text: s.textContent};
    }
    return out;
  });
  report.rows = await page.evaluate(() => [...document.querySelectorAll('#sweep-table tr')]
      .slice(1).map((tr) => [...tr.children].map((td) => td.textContent)));
  report.meets = await page.evaluate(() =>
    document.querySelectorAll('#sweep-table td.meets').length);
  await page.screenshot({path: shot, fullPage: true});
  report.screenshot = shot;
});
