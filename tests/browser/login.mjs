// Drives headless Chromium (the system's /usr/bin/chromium via playwright-core)
// through workspace-gate's whole login: workspace URL -> nginx -> auth host ->
// OpenID provider login + consent pages -> callback -> transfer form ->
// workspace page. Prints one JSON line `result {...}` with what the browser
// ended on, for tests/e2e_browser.rs to assert.
//
// Usage: node login.mjs '<json options>'
//   {chromium, url, user, domain, spki, profile, expectUser,
//    poison, secondUrl, thirdUrl, refusals}

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

// What a hostile page on any workspace host can do: set a cookie for the
// whole workspace domain whose value is not ASCII. Every later request to a
// workspace host and to the auth host carries it beside the gate's cookies.
// Returns what the browser then reaches: the same page reloaded (the pass),
// a second workspace host (the login cookie), and a third one after the
// login cookie is gone (a fresh login: the CSRF cookie).
async function afterPoison(page) {
  const out = {};
  await page.evaluate((domain) => {
    document.cookie = `x=caf\u00e9; Domain=${domain}; Path=/; Secure`;
  }, opts.domain);
  out.cookieHeader = (await page.evaluate(() => document.cookie)).includes('caf\u00e9');
  await page.reload();
  out.reload = await userOn(page);
  await page.goto(opts.secondUrl);
  out.second = await userOn(page);
  await page.context().clearCookies({ name: '__Host-workspace-gate-login' });
  await page.goto(opts.thirdUrl);
  if (await page.$('input[name=login]')) {
    await page.fill('input[name=login]', opts.user);
    await page.fill('input[name=password]', 'any password');
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  }
  if (await page.$('input[name=prompt][value=consent], button[autofocus]')) {
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  }
  out.third = await userOn(page);
  out.thirdUrl = page.url();
  return out;
}

// The identity the echo page shows, or the page's text when it is not one.
async function userOn(page) {
  try {
    await page.waitForSelector('#user', { timeout: 20000 });
    return await page.textContent('#user');
  } catch {
    return `not the workspace: ${page.url()} ${(await page.textContent('body'))?.slice(0, 200)}`;
  }
}
// Before any login: a page on the workspace origin (the gate's "Not found"
// page under the reserved prefix, the one page there that needs no pass)
// calls fetch() and opens a WebSocket. Returns what the page could read of
// each and the handshake statuses the browser's network layer saw.
async function refusedWithoutPass(context, page) {
  const origin = new URL(opts.url).origin;
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  const handshakes = [];
  cdp.on('Network.webSocketHandshakeResponseReceived', (e) => handshakes.push(e.response.status));
  await page.goto(`${origin}/.workspace-gate/no-such-page`);
  const fetched = await page.evaluate(async () => {
    try {
      const r = await fetch('/api/data');
      return { status: r.status, redirected: r.redirected, url: r.url, type: r.type };
    } catch (e) {
      return { error: String(e) };
    }
  });
  const ws = await page.evaluate(() => new Promise((resolve) => {
    const sock = new WebSocket(`wss://${location.host}/ws?before-login`);
    sock.onopen = () => { sock.close(); resolve({ opened: true }); };
    sock.onclose = (e) => resolve({ opened: false, code: e.code });
  }));
  // The handshake event may arrive just after the page saw the close.
  await new Promise((r) => setTimeout(r, 500));
  await cdp.detach();
  return { fetch: fetched, ws, handshakes };
}

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

  const refusals = opts.refusals ? await refusedWithoutPass(context, page) : null;
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
  const finalUrl = page.url();
  let poisoned = null;
  if (opts.poison) {
    poisoned = await afterPoison(page);
  }
  const cookies = await context.cookies();
  result = { ok: true, finalUrl, user, ws, cookies, poisoned, refusals, log };
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
