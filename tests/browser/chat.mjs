// Alice and Bob chat through the web page in two headless Chromium pages:
//   node chat.mjs INTERCOMM_BINARY embedded|split SCREENSHOT_DIR
// embedded: one `intercomm run` (Alice signs in by name, the development sign-in;
// Bob with a token). split: `intercomm mta`, `intercomm mda` and two
// `intercomm gateway`s over the RabbitMQ and Redis that scripts/test.sh started
// (INTERCOMM_TEST_AMQP, INTERCOMM_TEST_REDIS); Alice on one gateway, Bob on the other.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const [binary, mode, shots] = process.argv.slice(2);
const secret = "browser-secret-0123456789abcdef0123456789abcdef";
const suffix = Date.now().toString(36);
const alice = `alice_${suffix}`;
const bob = `bob_${suffix}`;
const children = [];
const scratch = mkdtempSync(join(tmpdir(), "intercomm-browser-"));

// Starts a process; resolves with the first stdout line starting with `prefix`
// (and `then`, when given, with the first line after it starting with `then`).
function start(args, prefix, then) {
  const child = spawn(binary, args, { stdio: ["ignore", "pipe", "inherit"] });
  children.push(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "${prefix}" from ${args[0]}`)), 30000);
    let found = null;
    createInterface({ input: child.stdout }).on("line", (line) => {
      if (found === null && line.startsWith(prefix)) {
        found = line;
        if (!then) {
          clearTimeout(timer);
          resolve(line);
        }
      } else if (found !== null && then && line.startsWith(then)) {
        clearTimeout(timer);
        resolve([found, line]);
      }
    });
    child.on("exit", (code) => reject(new Error(`${args[0]} exited with ${code}`)));
  });
}

const portOf = (line) => Number(line.match(/:(\d+)/g).pop().slice(1));
const token = (user) => execFileSync(binary, ["token", "--secret", secret, "--user", user]).toString().trim();

async function servers() {
  if (mode === "embedded") {
    // No --secret: the development mode, with its sign-in by name. Bob's token is
    // minted with the secret it generated and printed.
    const [line, secretLine] = await start(
        ["run", "--listen", "127.0.0.1:0", "--store", `rocksdb:${join(scratch, "store")}`, "--rate-limits", "send=off"],
        "intercomm ",
        "development secret");
    const dev = secretLine.split(": ").pop();
    const url = `http://127.0.0.1:${portOf(line)}`;
    return { aliceUrl: url, bobUrl: url, bobToken: execFileSync(binary, ["token", "--secret", dev, "--user", bob]).toString().trim() };
  }
  const amqp = process.env.INTERCOMM_TEST_AMQP;
  const redis = process.env.INTERCOMM_TEST_REDIS;
  if (!amqp || !redis) throw new Error("INTERCOMM_TEST_AMQP / INTERCOMM_TEST_REDIS not set: run through scripts/test.sh");
  await start(["mta", "--amqp", amqp, "--store", redis], "intercomm mta: serving");
  await start(["mda", "--amqp", amqp, "--store", redis], "intercomm mda: serving");
  const urls = [];
  for (let i = 0; i < 2; ++i) {
    const line = await start(["gateway", "--listen", "127.0.0.1:0", "--amqp", amqp, "--secret", secret,
                              "--rate-limits", "send=off"],
                             "intercomm gateway: listening on ");
    urls.push(`http://127.0.0.1:${portOf(line)}`);
  }
  return { aliceUrl: urls[0], bobUrl: urls[1], aliceToken: token(alice), bobToken: token(bob) };
}

async function signIn(page, url, user, userToken) {
  await page.goto(url);
  if (userToken) {
    await page.fill("#token", userToken);
    await page.click("#token-form button");
  } else {
    await page.waitForSelector("#dev-form:not([hidden])");
    await page.fill("#dev-user", user);
    await page.click("#dev-form button");
  }
  await page.waitForSelector("#chat:not([hidden])");
  await page.waitForSelector("#status.live", { state: "attached" });
}

// Opens a conversation: from the list when it is there, else by name.
async function openPeer(page, peer) {
  const item = page.locator(`#conversations li[data-peer="${peer}"]`);
  if (await item.count()) {
    await item.click();
  } else {
    await page.fill("#peer", peer);
    await page.click("#peer-form button");
  }
  await page.locator("#peer-name", { hasText: peer }).waitFor({ timeout: 20000 });
}

async function say(page, text) {
  await page.fill("#body", text);
  await page.click("#send");
}

// Waits until `page` shows a bubble with `text` (mine or theirs).
async function sees(page, text, mine) {
  await page.locator(`#messages li.${mine ? "mine" : "theirs"}`, { hasText: text }).waitFor({ timeout: 20000 });
}

// The ticks of my bubble with `text` reach `status` (sent, delivered, read).
async function ticks(page, text, status) {
  await page.locator(`#messages li.mine`, { hasText: text }).locator(`.ticks.${status}`).waitFor({ timeout: 20000 });
}

function check(condition, what) {
  if (!condition) throw new Error(what);
}

let browser;
try {
  const setup = await servers();
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
  const phone = { viewport: { width: 390, height: 700 }, isMobile: true, hasTouch: true };
  const desktop = { viewport: { width: 1100, height: 720 } };
  const alicePage = await (await browser.newContext(desktop)).newPage();
  const bobPage = await (await browser.newContext(phone)).newPage();
  await signIn(alicePage, setup.aliceUrl, alice, setup.aliceToken);
  await signIn(bobPage, setup.bobUrl, bob, setup.bobToken);

  // Alice starts a conversation; Bob, online with his list open, sees it appear
  // with an unread badge; Alice's message is delivered (✓✓), not read yet.
  await openPeer(alicePage, bob);
  await say(alicePage, "merhaba bob");
  await sees(alicePage, "merhaba bob", true);
  await bobPage.locator(`#conversations li[data-peer="${alice}"] .badge`, { hasText: "1" }).waitFor({ timeout: 20000 });
  await bobPage.locator(`#conversations li[data-peer="${alice}"] .preview`, { hasText: "merhaba bob" }).waitFor();
  await alicePage.locator(`#conversations li[data-peer="${bob}"]`).waitFor({ timeout: 20000 });
  await ticks(alicePage, "merhaba bob", "delivered");

  // Bob opens it: the badge goes, and Alice's ticks turn to read.
  await openPeer(bobPage, alice);
  await sees(bobPage, "merhaba bob", false);
  await ticks(alicePage, "merhaba bob", "read");
  await bobPage.locator("#back").click();
  await bobPage.locator(`#conversations li[data-peer="${alice}"]`).waitFor();
  await bobPage.locator(`#conversations li[data-peer="${alice}"] .badge`).waitFor({ state: "detached", timeout: 20000 });
  await openPeer(bobPage, alice);
  await say(bobPage, "hi alice!");
  await sees(bobPage, "hi alice!", true);
  await sees(alicePage, "hi alice!", false);
  await alicePage.locator("#presence.online").waitFor({ timeout: 30000 });

  // Alice types: Bob's page says so (the signal goes over the sockets, never stored).
  await alicePage.type("#body", "typ");
  await bobPage.locator("#typing:not([hidden])", { hasText: `${alice} is typing` }).waitFor({ timeout: 20000 });
  await alicePage.fill("#body", "");

  // Alice retracts a message from its menu: the text goes on both pages.
  await say(alicePage, "a secret");
  await sees(bobPage, "a secret", false);
  const secret = alicePage.locator("#messages li.mine", { hasText: "a secret" });
  await secret.locator(".menu-button").click();
  await secret.locator(".menu .retract").click();
  await alicePage.locator("#messages li.mine.retracted", { hasText: "message retracted" }).waitFor({ timeout: 20000 });
  await bobPage.locator("#messages li.theirs.retracted", { hasText: "message retracted" }).waitFor({ timeout: 20000 });
  check(await bobPage.locator("#messages li", { hasText: "a secret" }).count() === 0, "the retracted text is still on Bob's page");

  // Bob's socket drops; what Alice sends meanwhile arrives when it reconnects (?after_seq=).
  await bobPage.evaluate(() => window.chat.client._socket.close());
  await bobPage.waitForSelector("#status:not(.live)", { state: "attached" });
  await say(alicePage, "while you were away 1");
  await sees(alicePage, "while you were away 1", true);  // the page clears the field once a send is accepted
  await say(alicePage, "while you were away 2");
  await sees(bobPage, "while you were away 1", false);
  await sees(bobPage, "while you were away 2", false);
  const bobCount = await bobPage.locator("#messages li").count();
  check(bobCount === 5, `Bob sees ${bobCount} messages, expected 5 (no duplicates)`);

  // Bob's page goes offline; Alice sends 300; back online, Bob's page catches up
  // (?after_seq=, with back-off while it cannot connect) and shows all 300 once, in order.
  await bobPage.context().setOffline(true);
  await bobPage.evaluate(() => window.chat.client._socket.close());
  await bobPage.waitForSelector("#status:not(.live)", { state: "attached" });
  await alicePage.evaluate(async (peer) => {
    for (let i = 0; i < 300; ++i) await window.chat.client.send({ receiver: peer, body: `batch ${i}`, via: "http" });
  }, bob);
  await bobPage.context().setOffline(false);
  // (The bubble's first child is the body's text: compare the body alone.)
  await bobPage.waitForFunction(
      () => [...document.querySelectorAll("#messages li")].some((li) => li.firstChild.textContent === "batch 299"),
      null, { timeout: 60000 });
  await bobPage.waitForSelector("#status.live", { state: "attached" });
  const shown = await bobPage.evaluate(
      () => [...document.querySelectorAll("#messages li")].map((li) => li.firstChild.textContent));
  const batch = shown.filter((text) => text.startsWith("batch "));
  const expected = Array.from({ length: 300 }, (_, i) => `batch ${i}`);
  check(shown.length === 305 && JSON.stringify(batch) === JSON.stringify(expected),
        `after the reconnect Bob shows ${shown.length} messages (expected 305), ` +
        `batch in order: ${JSON.stringify(batch) === JSON.stringify(expected)}`);

  // Bob blocks Alice from the conversation's header: her next send is refused
  // and never reaches him.
  await bobPage.locator("#block", { hasText: "Block" }).click();
  await bobPage.locator("#block", { hasText: "Unblock" }).waitFor();
  await say(alicePage, "are you blocking me?");
  await alicePage.locator("#chat-error", { hasText: "does not take messages from you" }).waitFor({ timeout: 20000 });
  await say(bobPage, "yes");  // Bob can still write; Alice sees it, and Bob never sees her refused one
  await sees(alicePage, "yes", false);
  check(await bobPage.locator("#messages li", { hasText: "are you blocking me?" }).count() === 0,
        "a blocked sender's message reached Bob");

  mkdirSync(shots, { recursive: true });
  await alicePage.screenshot({ path: join(shots, `chat-${mode}-desktop-alice.png`) });
  await bobPage.screenshot({ path: join(shots, `chat-${mode}-phone-bob-conversation.png`) });
  await bobPage.locator("#back").click();
  await bobPage.locator(`#conversations li[data-peer="${alice}"] .preview`, { hasText: "you: yes" }).waitFor({ timeout: 20000 });
  await bobPage.screenshot({ path: join(shots, `chat-${mode}-phone-bob-list.png`) });
  console.log(`1 passed, 0 failed: the conversation appeared on both lists with Bob's unread badge, ticks went ` +
              `delivered then read, typing showed, a retraction removed the text on both pages, 300 missed ` +
              `messages arrived once and in order, and blocked Alice could not reach Bob (${mode}); ` +
              `screenshots (desktop and phone) in ${shots}`);
} catch (error) {
  console.error(error);
  console.log(`0 passed, 1 failed: ${error.message}`);
  process.exitCode = 1;
} finally {
  if (browser) await browser.close();
  // Stop what we started, and wait for each to exit before removing its data.
  await Promise.all(children.reverse().map((child) => new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => { child.kill("SIGKILL"); resolve(); }, 15000);
    child.on("exit", () => { clearTimeout(timer); resolve(); });
    child.kill("SIGTERM");
  })));
  rmSync(scratch, { recursive: true, force: true });
}
