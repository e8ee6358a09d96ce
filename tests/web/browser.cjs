// browser.cjs: what the browser checks share: launch Debian's chromium
// headless (driven by playwright-core), open one page that records its script
// errors and every request that is not `allowed(url)`, let the check look at
// it, and print one JSON object on stdout for the Python test to judge
// (`failure` set when anything threw).
//
// PLAYWRIGHT_CORE names the playwright-core module directory, CHROMIUM the
// browser (default /usr/bin/chromium).
'use strict';

const {chromium} = require(process.env.PLAYWRIGHT_CORE || 'playwright-core');

async function check(viewport, allowed, look) {
  const report = {errors: [], foreign: [], requests: 0};
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  try {
    const page = await browser.newPage({viewport});
    page.on('pageerror', (e) => report.errors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') report.errors.push(m.text()); });
    page.on('request', (r) => {
      report.requests++;
      if (!allowed(r.url())) report.foreign.push(r.url());
    });
    await look(page, report);
  } catch (e) {
    report.failure = String(e && e.stack || e);
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(report) + '\n');
}

// Run check(...) as a script's main, reporting even a failure to start.
function run(viewport, allowed, look) {
  check(viewport, allowed, look).catch((e) => {
    process.stdout.write(JSON.stringify({failure: String(e && e.stack || e)}) + '\n');
    process.exit(1);
  });
}

module.exports = {run};
