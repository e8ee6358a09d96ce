// warnings_check.cjs: open dynmemd's live page in headless Chromium (driven by
// playwright-core) and keep it open while test_page.py changes and reloads
// dynmemd's configuration, reporting the configuration's warnings, the failed
// reload and the backend out of reach the page shows each time the test asks:
//
//   node warnings_check.cjs URL [SCREENSHOT.png]
//
// Each line on stdin (a label) asks for a look after two more polls of the page (the
// second one started after the request): one JSON object on stdout, {label, ...what
// the warnings box and the header's Reload failed and Backend unreachable alerts
// show}; the first look is also the screenshot. The end of stdin ends the run; its
// report (script errors, requests beyond dynmemd, a failure) is the last line.
//
// PLAYWRIGHT_CORE names the playwright-core module directory, CHROMIUM the
// browser (default /usr/bin/chromium).
'use strict';

const readline = require('readline');
const {run} = require('./browser.cjs');

const WAIT_MS = 90000;

// Inside the page: the configuration's warnings as shown and the header's alerts of a
// failed reload and of the backend out of reach (each null when the page has no place
// for it), and any markup the page holds that is not its own: each hostile string in
// the test's configuration carries an element whose id starts "pwn".
function warningsOf() {
  const box = document.getElementById('config-warnings');
  const title = document.getElementById('config-warnings-title');
  const more = document.getElementById('config-warnings-more');
  const shown = (e) => !!e && getComputedStyle(e).display !== 'none';
  const alert = (id) => {
    const e = document.getElementById(id);
    return !e ? null : {
      shown: shown(e),
      label: e.querySelector('dt').textContent,
      text: e.querySelector('dd').textContent,
      color: getComputedStyle(e.querySelector('dd')).color,
    };
  };
  return {
    warnings: !box ? null : {
      shown: shown(box),
      title: title.textContent,
      lines: [...box.querySelectorAll('li')].map((li) => li.textContent),
      more: shown(more) ? more.textContent : null,
      titleColor: getComputedStyle(title).color,
    },
    reload: alert('host-reload-box'),
    backend: alert('host-backend-box'),
    injected: [...document.querySelectorAll('[id^="pwn"], script:not([src]), img, b, i')]
        .map((e) => e.outerHTML),
    ran: window.pwned === undefined ? null : String(window.pwned),
  };
}

async function polls(page, n) {
  const now = await page.evaluate(() => Number(document.body.dataset.polls || 0));
  await page.waitForFunction((k) => Number(document.body.dataset.polls || 0) >= k, now + n,
                             {timeout: WAIT_MS});
}

const [url, shot] = process.argv.slice(2);
const origin = new URL(url).origin;

run({width: 1400, height: 1100}, (u) => u.startsWith(origin), async (page, report) => {
  await page.goto(url, {timeout: WAIT_MS});
  for await (const label of readline.createInterface({input: process.stdin})) {
    await polls(page, 2);
    const seen = await page.evaluate(warningsOf);
    if (shot && !report.screenshot) {
      await page.screenshot({path: shot, fullPage: true});
      report.screenshot = shot;
    }
    process.stdout.write(JSON.stringify(Object.assign({label: label}, seen)) + '\n');
  }
});
