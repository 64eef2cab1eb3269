// Drives headless Chromium (the system's /usr/bin/chromium via playwright-core)
// through workspace-gate's whole login: workspace URL -> nginx -> auth host ->
// OpenID provider login + consent pages -> callback -> transfer form ->
// workspace page. Prints one JSON line `result {...}` with what the browser
// ended on, for tests/e2e_browser.rs to assert.
//
// Usage: node login.mjs '<json options>'
//   {chromium, url, user, domain, spki, profile, expectUser}

import { createRequire } from 'node:module';

// playwright-core is installed with the provider's packages (one lock file).
const require = createRequire(new URL('../support/oidc/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const opts = JSON.parse(process.argv[2]);
const args = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  `--host-resolver-rules=MAP *.${opts.domain} 127.0.0.1, MAP ${opts.domain} 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1`,
  `--ignore-certificate-errors-spki-list=${opts.spki}`,
];

const log = [];
const context = await chromium.launchPersistentContext(opts.profile, {
  executablePath: opts.chromium,
  headless: true,
  args,
  timeout: 60000,
});
let result;
try {
  // The provider's dev pages @import a web font; nothing leaves loopback.
  await context.route('**/*', (route) => {
    const host = new URL(route.request().url()).hostname;
    if (host === '127.0.0.1' || host === opts.domain || host.endsWith(`.${opts.domain}`)) {
      return route.continue();
    }
    log.push(`blocked ${route.request().url()}`);
    return route.abort();
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('response', (r) => log.push(`${r.status()} ${r.request().method()} ${r.url()}`));
  page.setDefaultTimeout(30000);

  await page.goto(opts.url);
  // Provider login page.
  await page.waitForSelector('input[name=login]');
  log.push(`login page at ${page.url()}`);
  await page.fill('input[name=login]', opts.user);
  await page.fill('input[name=password]', 'any password');
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  // Consent page (may be skipped when already granted).
  if (await page.$('input[name=prompt][value=consent], button[autofocus]')) {
    log.push(`consent page at ${page.url()}`);
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  }
  // Transfer form auto-submits; wait for the workspace's echo page.
  await page.waitForSelector('#user', { timeout: 30000 });
  const user = await page.textContent('#user');
  // The page opens a WebSocket through nginx and shows the first message.
  let ws = null;
  try {
    await page.waitForFunction(() => document.getElementById('ws').textContent.startsWith('hello'), null, { timeout: 15000 });
    ws = await page.textContent('#ws');
  } catch (e) {
    log.push(`websocket: ${e.message}`);
  }
  const cookies = await context.cookies();
  result = { ok: true, finalUrl: page.url(), user, ws, cookies, log };
} catch (e) {
  let html = '';
  try {
    html = (await context.pages()[0]?.content())?.slice(0, 3000) ?? '';
  } catch {}
  result = { ok: false, error: String(e?.message ?? e), url: context.pages()[0]?.url(), html, log };
} finally {
  await context.close();
}
console.log(`result ${JSON.stringify(result)}`);
