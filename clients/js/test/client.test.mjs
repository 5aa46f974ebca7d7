// The client against a real `intercomm run` (its binary in INTERCOMM_BINARY),
// in Node with the ws package: node --test clients/js/test/
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { WebSocket } from "ws";
import { IntercommClient, IntercommError } from "../index.js";

const binary = process.env.INTERCOMM_BINARY;
const secret = "js-client-secret-0123456789abcdef0123456789abcdef";
const scratch = mkdtempSync(join(tmpdir(), "intercomm-js-"));
let server;
let url;

const token = (user) => execFileSync(binary, ["token", "--secret", secret, "--user", user]).toString().trim();
const unique = (name) => `${name}_${Date.now().toString(36)}${Math.floor(Math.random() * 1e6)}`;

before(async () => {
  assert.ok(binary, "INTERCOMM_BINARY is not set");
  server = spawn(binary, ["run", "--listen", "127.0.0.1:0", "--secret", secret, "--store",
                          `rocksdb:${join(scratch, "store")}`, "--rate-limits", "send=off"],
                 { stdio: ["ignore", "pipe", "inherit"] });
  url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("intercomm run did not start")), 30000);
    createInterface({ input: server.stdout }).on("line", (line) => {
      const found = line.match(/serving on (http:\/\/\S+)/);
      if (found) {
        clearTimeout(timer);
        resolve(found[1]);
      }
    });
    server.on("exit", (code) => reject(new Error(`intercomm run exited with ${code}`)));
  });
});

after(() => {
  server?.kill("SIGTERM");
  rmSync(scratch, { recursive: true, force: true });
});

// A connected client of `user`, with every message it gets in `messages`.
async function connected(user, options = {}) {
  const client = new IntercommClient({ url, token: token(user), WebSocket, backoff: { initialMs: 50, maxMs: 500 }, ...options });
  const messages = [];
  client.on("message", (event) => messages.push(event));
  const live = new Promise((resolve) => client.on("live", resolve));
  client.connect();
  await live;
  return { client, messages };
}

async function until(condition, what, ms = 20000) {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test("a socket closed under the client resumes by seq: every message once, in order", async () => {
  const alice = unique("alice");
  const bob = unique("bob");
  const { client: bobClient, messages } = await connected(bob);
  const sender = new IntercommClient({ url, token: token(alice), WebSocket });
  let reconnects = 0;
  bobClient.on("open", () => reconnects++);
  const count = 200;
  for (let i = 0; i < count; i++) {
    await sender.send({ receiver: bob, body: `m${i}`, via: "http" });
    if (i % 50 === 25) bobClient._socket.terminate();  // the connection drops, no close handshake
  }
  await until(() => messages.length >= count, `${count} messages (got ${messages.length})`);
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(messages.length, count, "nothing twice");
  assert.deepEqual(messages.map((m) => m.message.body), Array.from({ length: count }, (_, i) => `m${i}`));
  assert.deepEqual(messages.map((m) => m.seq), Array.from({ length: count }, (_, i) => i + 1));
  assert.ok(reconnects >= 4, `the client reconnected (${reconnects} opens)`);
  bobClient.close();
});

test("sends over the socket are answered by ref, each with its own id, and arrive", async () => {
  const alice = unique("alice");
  const bob = unique("bob");
  const { client: bobClient, messages } = await connected(bob);
  const { client: aliceClient } = await connected(alice);
  const count = 40;
  const answers = await Promise.all(
      Array.from({ length: count }, (_, i) => aliceClient.send({ receiver: bob, body: `s${i}`, via: "socket" })));
  assert.equal(new Set(answers.map((a) => a.message_id)).size, count, "one id per send");
  assert.ok(answers.every((a) => a.replayed === false));
  await until(() => messages.length >= count, "bob's messages");
  assert.deepEqual(messages.map((m) => m.message.message_id), answers.map((a) => a.message_id),
                   "bob gets them in the order sent, with the ids the answers gave");
  // The same key again: the first send's id, replayed.
  const again = await aliceClient.send({ receiver: bob, body: "s0", idempotencyKey: "k-1" });
  const replay = await aliceClient.send({ receiver: bob, body: "s0", idempotencyKey: "k-1" });
  assert.equal(replay.message_id, again.message_id);
  assert.equal(replay.replayed, true);
  aliceClient.close();
  bobClient.close();
});

test("a refused send rejects with the status and the field to fix", async () => {
  const alice = unique("alice");
  const { client } = await connected(alice);
  await assert.rejects(client.send({ receiver: "not a user", body: "x" }), (error) => {
    assert.ok(error instanceof IntercommError);
    assert.equal(error.status, 400);
    assert.equal(error.code, -32602);
    assert.equal(error.data.field, "receiver");
    return true;
  });
  await assert.rejects(client.send({ receiver: "bob", body: "x", via: "http", idempotencyKey: "two words" }),
                       (error) => error.status === 400);
  client.close();
});

test("sends waiting for an answer when the socket drops are sent again, and stored once", async () => {
  const alice = unique("alice");
  const bob = unique("bob");
  const { client: bobClient, messages } = await connected(bob);
  const { client: aliceClient } = await connected(alice);
  const count = 30;
  const sends = Array.from({ length: count }, (_, i) => aliceClient.send({ receiver: bob, body: `r${i}`, via: "socket" }));
  aliceClient._socket.terminate();  // some answers, maybe all, are lost with it
  const answers = await Promise.all(sends);
  assert.equal(new Set(answers.map((a) => a.message_id)).size, count);
  await until(() => messages.length >= count, "bob's messages");
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(messages.length, count, "each stored and delivered once");
  assert.deepEqual(new Set(messages.map((m) => m.message.body)), new Set(answers.map((_, i) => `r${i}`)));
  aliceClient.close();
  bobClient.close();
});

test("typing reaches the peer's client", async () => {
  const alice = unique("alice");
  const bob = unique("bob");
  const { client: bobClient } = await connected(bob);
  const { client: aliceClient } = await connected(alice);
  const typing = new Promise((resolve) => bobClient.on("typing", resolve));
  aliceClient.typing(bob);
  assert.deepEqual(await typing, { from: alice });
  aliceClient.close();
  bobClient.close();
});

test("conversations, read markers and their signals, receipts", async () => {
  const alice = unique("alice");
  const bob = unique("bob");
  const { client: aliceClient } = await connected(alice);
  const { client: bobClient, messages } = await connected(bob);
  const delivered = [];
  aliceClient.on("delivered", (event) => delivered.push(event));
  const reads = [];
  aliceClient.on("read", (event) => reads.push(event));
  const sent = [];
  for (let i = 0; i < 3; i++) sent.push(await aliceClient.send({ receiver: bob, body: `c${i}` }));
  await until(() => messages.length >= 3, "bob's messages");
  assert.equal(aliceClient.user, alice, "the user is the token's subject");

  const { conversations, next } = await bobClient.conversations();
  assert.equal(next, null);
  assert.equal(conversations.length, 1);
  assert.equal(conversations[0].peer, alice);
  assert.equal(conversations[0].unread, 3);
  assert.equal(conversations[0].last_message.body, "c2");
  const page = await bobClient.conversation(alice, { afterSeq: 0, limit: 2 });
  assert.deepEqual(page.messages.map((m) => m.body), ["c0", "c1"]);

  const marked = await bobClient.markRead(alice, messages[1].seq);
  assert.deepEqual(marked, { peer: alice, read_seq: messages[1].seq, unread: 1 });
  await until(() => reads.length === 1, "alice's read signal");
  assert.equal(reads[0].user, bob);
  await until(() => delivered.length === 3, "three delivered signals");
  assert.deepEqual(new Set(delivered.map((d) => d.message_id)), new Set(sent.map((s) => s.message_id)));
  const receipt = await aliceClient.message(sent[0].message_id);
  assert.equal(typeof receipt.delivered_at, "string");
  assert.equal(typeof receipt.read_at, "string");
  const unread = await aliceClient.message(sent[2].message_id);
  assert.equal(unread.read_at, null, "the marker stopped before it");
  await assert.rejects(bobClient.markRead(alice, 999999), (error) => error.status === 400 && error.data.field === "seq");
  aliceClient.close();
  bobClient.close();
});

test("retraction reaches both clients; a block refuses the sender; presence follows sockets", async () => {
  const alice = unique("alice");
  const bob = unique("bob");
  const carol = unique("carol");
  const { client: aliceClient } = await connected(alice);
  const { client: bobClient, messages } = await connected(bob);
  const retracted = [];
  bobClient.on("retracted", (event) => retracted.push(event));
  const { message_id } = await aliceClient.send({ receiver: bob, body: "oops" });
  await until(() => messages.length === 1, "bob's message");
  await assert.rejects(bobClient.retract(message_id), (error) => error.status === 403);
  assert.equal(await aliceClient.retract(message_id), null);
  await until(() => retracted.length === 1, "bob's retracted signal");
  assert.deepEqual(retracted[0].seq, messages[0].seq);
  assert.equal((await bobClient.message(message_id)).body, "");

  assert.deepEqual(await aliceClient.presence([bob]), { [bob]: { online: true } }, "over the socket");
  await assert.rejects(aliceClient.presence([carol]), (error) => error.status === 403);
  bobClient.close();
  let answer;
  for (const deadline = Date.now() + 20000; Date.now() < deadline;) {
    answer = await new IntercommClient({ url, token: token(alice), WebSocket }).presence([bob]);  // over HTTP
    if (!answer[bob].online) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.equal(answer[bob].online, false);
  for (const deadline = Date.now() + 20000; Date.now() < deadline && !answer[bob].last_seen;) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    answer = await aliceClient.presence([bob]);
  }
  assert.equal(typeof answer[bob].last_seen, "string", "last seen when his socket closed");

  const bobAgain = new IntercommClient({ url, token: token(bob), WebSocket });
  assert.equal(await bobAgain.block(alice), null);
  assert.deepEqual(await bobAgain.blocks(), { blocks: [alice] });
  await assert.rejects(aliceClient.send({ receiver: bob, body: "still there?" }), (error) => error.status === 403);
  await bobAgain.unblock(alice);
  await aliceClient.send({ receiver: bob, body: "hello again" });
  aliceClient.close();
});

test("the example of docs/CLIENT.md works verbatim", async () => {
  const here = dirname(fileURLToPath(import.meta.url));
  const doc = readFileSync(join(here, "..", "..", "..", "docs", "CLIENT.md"), "utf8");
  const example = doc.match(/```js\n([\s\S]*?)```/)[1];
  // Inside the package, "@intercomm/client" resolves to it (a package may import itself by name).
  const file = join(here, "..", `example-${process.pid}.mjs`);
  writeFileSync(file, example);
  const alice = unique("alice");
  const child = spawn(process.execPath, [file], {
    env: { ...process.env, INTERCOMM_URL: url, INTERCOMM_TOKEN: token(alice) },
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    const lines = [];
    createInterface({ input: child.stdout }).on("line", (line) => lines.push(line));
    await until(() => lines.some((l) => l.startsWith("sent ")) && lines.includes(`1 ${alice}: merhaba`),
                `the example's output (so far: ${JSON.stringify(lines)})`);
  } finally {
    child.kill();
    rmSync(file, { force: true });
  }
});
