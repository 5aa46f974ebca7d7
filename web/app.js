// The chat page: intercomm's JavaScript client (/client.js) for the stream,
// sends and typing; REST to read the conversation's history. Every message of
// the user's inbox has a seq (1, 2, 3 ...): the client remembers the last one
// and resumes the stream after it, so a reconnect shows every message once and
// in order.
import { IntercommClient } from "/client.js";

const $ = (id) => document.getElementById(id);
const state = { token: "", user: "", peer: "", client: null, shown: new Set(), typingTimer: null, typedAt: 0 };
// For the browser test: the page's state and its helpers.
window.chat = { state, api: (...args) => api(...args) };

function userOf(token) {
  try {
    const claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return claims.sub || "";
  } catch {
    return "";
  }
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: Object.assign({ Authorization: "Bearer " + state.token },
                           body ? { "Content-Type": "application/json" } : {}),
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : {};
  if (!response.ok) throw new Error((data.error && data.error.message) || response.statusText);
  return data;
}

// Shows a message of the open conversation (once; in seq order).
function show(message, seq) {
  const other = message.sender === state.user ? message.receiver : message.sender;
  if (other !== state.peer || state.shown.has(seq)) return;
  state.shown.add(seq);
  const item = document.createElement("li");
  item.className = message.sender === state.user ? "mine" : "theirs";
  item.dataset.id = message.message_id;
  item.dataset.seq = String(seq);
  item.textContent = message.body;
  const time = document.createElement("time");
  time.textContent = new Date(message.created_at).toLocaleTimeString();
  item.appendChild(time);
  const list = $("messages");
  const last = list.lastElementChild;
  const after = !last || Number(last.dataset.seq) < seq ? null  // the usual case: the newest
      : [...list.children].find((li) => Number(li.dataset.seq) > seq);
  list.insertBefore(item, after);
  list.scrollTop = list.scrollHeight;
}

// The conversation's history: the newest pages of the inbox.
async function loadConversation() {
  $("messages").replaceChildren();
  state.shown.clear();
  const base = `/v1/users/${encodeURIComponent(state.user)}/messages?limit=100`;
  let target = base;
  for (let page = 0; page < 10; ++page) {
    const data = await api("GET", target);
    data.messages.forEach((item) => show(item, item.seq));
    if (data.next_seq === null) break;
    target = `${base}&before_seq=${data.next_seq}`;
  }
}

function setStatus(text, live) {
  $("status").textContent = text;
  $("status").classList.toggle("live", live);
}

// "<peer> is typing…" for a few seconds after their last signal.
function showTyping(from) {
  if (from !== state.peer) return;
  $("typing").textContent = `${from} is typing…`;
  $("typing").hidden = false;
  clearTimeout(state.typingTimer);
  state.typingTimer = setTimeout(() => { $("typing").hidden = true; }, 4000);
}

function connect() {
  state.client?.close();
  const client = new IntercommClient({ url: location.origin, token: () => state.token });
  state.client = client;
  window.chat.client = client;
  client.on("open", () => setStatus("catching up", false));
  client.on("live", () => setStatus("live", true));
  client.on("message", ({ seq, message }) => {
    if (message.sender === state.peer) $("typing").hidden = true;
    show(message, seq);
  });
  client.on("typing", ({ from }) => showTyping(from));
  client.on("close", ({ code }) => {
    setStatus("offline", false);
    // 1008: our cursor is not in this inbox (e.g. the server's data was reset): start from its end.
    if (code === 1008) client.lastSeq = null;
  });
  client.connect();
}

async function signIn(token) {
  const user = userOf(token);
  if (!user) throw new Error("that is not a token");
  state.token = token;
  state.user = user;
  await api("GET", `/v1/users/${encodeURIComponent(user)}/messages?limit=1`);  // checks the token
  sessionStorage.setItem("intercomm-token", token);
  $("me").textContent = user;
  $("signin").hidden = true;
  $("chat").hidden = false;
  connect();
}

function onError(where) {
  return (error) => { $(where).textContent = error.message; };
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  $("signin-error").textContent = "";
  signIn($("token").value.trim()).catch(onError("signin-error"));
});

$("dev-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("signin-error").textContent = "";
  try {
    const response = await fetch("/v1/dev/token", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user: $("dev-user").value.trim() }),
    });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error.message);
    await signIn(data.token);
  } catch (error) {
    onError("signin-error")(error);
  }
});

$("peer-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.peer = $("peer").value.trim();
  $("chat-error").textContent = "";
  loadConversation().catch(onError("chat-error"));
});

$("send-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!state.peer) {
    $("chat-error").textContent = "pick someone to chat with first";
    return;
  }
  const input = $("body");
  const text = input.value;
  $("send").disabled = true;
  try {
    // Over the socket when it is open, else over HTTP; answered once queued.
    await state.client.send({ receiver: state.peer, body: text });
    input.value = "";  // the message shows when it comes back on the stream
    state.typedAt = 0;  // the next message's first key tells the peer again
    $("chat-error").textContent = "";
  } catch (error) {
    onError("chat-error")(error);
  } finally {
    $("send").disabled = false;
    input.focus();
  }
});

// Tells the peer we are typing: at most every 3 s while keys are pressed.
$("body").addEventListener("input", () => {
  if (!state.peer || !state.client || Date.now() - state.typedAt < 3000) return;
  state.typedAt = Date.now();
  state.client.typing(state.peer);
});

fetch("/v1/dev/token", { method: "OPTIONS" }).then((r) => { $("dev-form").hidden = r.status !== 204; });
const saved = sessionStorage.getItem("intercomm-token");
if (saved) signIn(saved).catch(() => sessionStorage.removeItem("intercomm-token"));
