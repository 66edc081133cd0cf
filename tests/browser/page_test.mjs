// The Background Jobs page in a real headless Chromium (Debian's), driven by
// playwright-core. Starts the porter_jobs_page app (in-memory store, jobs with
// progress, failures and a hostile payload), then:
//   power user: sees only their own jobs, no tabs; hostile text renders as text;
//   superadmin: sees everyone's jobs and the tabs; a progress bar advances
//   without a reload; the red X aborts a running job, which ends cancelled; a
//   failed job's errors open; "notify me" is confirmed and enqueues a
//   notification job; the queues view shows queues, kinds and charts.
// Screenshots of each view go to the output directory.
//
//   node page_test.mjs <porter_jobs_page binary> <screenshot dir>
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const [appPath, outDir] = process.argv.slice(2);
if (!appPath || !outDir) throw new Error('usage: node page_test.mjs <app> <screenshot dir>');
mkdirSync(outDir, { recursive: true });

const ADMIN = 'browser-test-superadmin-token';
const ALICE = 'browser-test-alice-token-0001';
const TIMEOUT = 30000;

function check(ok, what) {
  if (!ok) throw new Error('check failed: ' + what);
  console.log('ok -', what);
}

function startApp() {
  return new Promise((resolve, reject) => {
    const app = spawn(appPath, ['--memory', '--hostile', '--admin-token', ADMIN, '--user-token', ALICE],
      { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    const timer = setTimeout(() => reject(new Error('the app did not start: ' + out)), TIMEOUT);
    app.on('exit', (code) => reject(new Error('the app exited with ' + code + ': ' + out)));
    app.stdout.on('data', (chunk) => {
      out += chunk;
      const m = out.match(/READY (http:\/\/\S+)/);
      if (m) { clearTimeout(timer); resolve({ app, url: m[1] }); }
    });
  });
}

async function signIn(page, url, token) {
  await page.goto(url);
  await page.fill('#token', token);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#job-rows tr', { timeout: TIMEOUT });
}

const row = (page, text) => page.locator('#job-rows tr', { hasText: text }).first();

async function main() {
  const { app, url } = await startApp();
  const profile = mkdtempSync(path.join(tmpdir(), 'porter-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.PORTER_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1360, height: 860 },
    // The page's CSP forbids eval, which waitForFunction needs. Bypassing it
    // also proves the page itself renders job data as text: the hostile
    // payloads would run here if it did not (the CSP header is checked in the
    // HTTP tests).
    bypassCSP: true,
  });
  try {
    const page = context.pages()[0] || await context.newPage();
    page.setDefaultTimeout(TIMEOUT);
    const problems = [];
    page.on('dialog', (d) => { problems.push('a dialog opened: ' + d.message()); d.dismiss(); });
    page.on('pageerror', (e) => problems.push('page error: ' + e.message));

    // --- power user -------------------------------------------------------------
    await signIn(page, url, ALICE);
    check(await page.locator('#tabs').isHidden(), 'a power user sees no tabs');
    const metas = await page.locator('#job-rows .meta').allTextContents();
    check(metas.length > 0 && metas.every((m) => m.includes('by alice')), 'a power user sees only their own jobs');
    const hostile = row(page, 'onerror');
    await hostile.waitFor();
    const title = await hostile.locator('.title').textContent();
    check(title.includes('<img src=x onerror=') && title.includes('<b>bold</b>'), 'hostile description shown as text');
    check(await page.locator('#job-rows img, #job-rows b, #job-rows script').count() === 0, 'no element made from job data');
    await hostile.locator('.badge.failed').waitFor();  // it fails after its 40 rows
    await hostile.locator('button.errors').click();
    await page.locator('#details[open]').waitFor();
    const details = await page.locator('#details-body').textContent();
    check(details.includes('<script>window.__pwned=1</script>'), 'hostile error and args shown as text');
    check(await page.locator('#details-body img, #details-body script').count() === 0, 'no element made from hostile details');
    await page.screenshot({ path: path.join(outDir, 'power-user-hostile-details.png') });
    await page.click('#details-close');
    check(await page.evaluate(() => window.__pwned === undefined), 'no hostile script ran');
    await page.screenshot({ path: path.join(outDir, 'power-user.png') });
    await page.click('#logout');

    // --- superadmin ---------------------------------------------------------------
    await signIn(page, url, ADMIN);
    check(await page.locator('#tabs').isVisible(), 'a superadmin sees the tabs');
    const owners = (await page.locator('#job-rows .meta').allTextContents()).join(' ');
    check(owners.includes('by root') && owners.includes('by bob') && owners.includes('by alice'), 'a superadmin sees every owner');

    // A progress bar advances with no reload.
    await page.evaluate(() => { window.__sameDocument = true; });
    const video = row(page, 'Transcode onboarding.mp4');
    const bar = video.locator('[role=progressbar]');
    await bar.waitFor();
    const before = Number(await bar.getAttribute('aria-valuenow'));
    await page.waitForFunction((b) => {
      const r = [...document.querySelectorAll('#job-rows tr')].find((tr) => tr.textContent.includes('Transcode onboarding.mp4'));
      const p = r && r.querySelector('[role=progressbar]');
      return p && Number(p.getAttribute('aria-valuenow')) >= b + 2;
    }, before, { timeout: TIMEOUT });
    const after = Number(await row(page, 'Transcode onboarding.mp4').locator('[role=progressbar]').getAttribute('aria-valuenow'));
    check(after > before && await page.evaluate(() => window.__sameDocument === true),
      `progress advanced without a reload (${before}% -> ${after}%)`);
    await page.screenshot({ path: path.join(outDir, 'superadmin.png') });

    // "Notify me when finished", when the server offers it.
    const offersNotify = await page.evaluate(async () => (await (await fetch('/api/me', { headers: { Authorization: 'Bearer ' + sessionStorage.getItem('porter-token') } })).json()).notify);
    check(offersNotify === true, 'the page offers "notify me when finished"');
    {
      await video.locator('button.notify').click();
      await page.waitForFunction(() => [...document.querySelectorAll('#job-rows tr')]
        .some((tr) => tr.textContent.includes('Transcode onboarding.mp4') && tr.querySelector('button.notify.done')));
      const notes = await page.evaluate(async () => (await (await fetch('/api/jobs?kind=notify_user&owner=root', {
        headers: { Authorization: 'Bearer ' + sessionStorage.getItem('porter-token') } })).json()).jobs);
      check(notes.length === 1 && notes[0].state === 'waiting',
        'notify me when finished is confirmed with a check mark, and a waiting notification job exists');
    }

    // Abort a running job with the red X.
    const report = row(page, 'Quarterly completion report');
    await report.locator('.badge.running').waitFor();
    await report.locator('button.abort').click();
    await page.locator('#confirm[open]').waitFor();
    await page.screenshot({ path: path.join(outDir, 'abort-confirmation.png') });
    await page.click('#confirm-yes');
    await row(page, 'Quarterly completion report').locator('.badge.cancelled').waitFor();
    check(await row(page, 'Quarterly completion report').locator('button.abort').count() === 0,
      'the aborted job ends cancelled and its red X is gone');

    // A failed job's error details.
    const sync = row(page, 'Sync partner course catalog');
    await sync.locator('.badge.failed').waitFor();
    await sync.locator('button.errors').click();
    await page.locator('#details[open]').waitFor();
    check((await page.locator('#details-body').textContent()).includes('catalog service answered 404'),
      'a failed job shows its error details');
    await page.screenshot({ path: path.join(outDir, 'error-details.png') });
    await page.click('#details-close');

    // The queues view.
    await page.click('.tab[data-tab=queues]');
    await page.locator('#queues tbody tr').first().waitFor();
    await page.locator('#kinds tbody tr').first().waitFor();
    const queues = await page.locator('#queues tbody').textContent();
    check(['content', 'analytics', 'indexing', 'notifications'].every((q) => queues.includes(q)), 'the queues view lists the queues');
    await page.screenshot({ path: path.join(outDir, 'queues.png'), fullPage: true });

    check(problems.length === 0, 'no dialogs or page errors: ' + problems.join('; '));
    check(await page.evaluate(() => window.__pwned === undefined), 'no hostile script ran at the end');
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
    app.kill('SIGTERM');
  }
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
