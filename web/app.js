// The chat page: REST to send and read, /v1/stream to receive. Every message
// of the user's inbox has a seq (1, 2, 3 ...): the page remembers the last one
// it got and resumes the stream after it (?after_seq=), so a reconnect shows
// every message once and in order.
"use strict";

const $ = (id) => document.getElementById(id);
// lastSeq: the last seq of the inbox this page has (null: none yet, go live from the end).
const state = { token: "", user: "", peer: "", socket: null, lastSeq: null, shown: new Set(), retry: 0 };

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

function connect() {
  if (state.socket) state.socket.close();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const resume = state.lastSeq === null ? "" : `&after_seq=${state.lastSeq}`;
  const socket = new WebSocket(
      `${scheme}://${location.host}/v1/stream?access_token=${encodeURIComponent(state.token)}${resume}`);
  state.socket = socket;
  socket.onopen = () => { $("status").textContent = "catching up"; };
  socket.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    if (frame.type === "message") {
      if (state.lastSeq !== null && frame.seq <= state.lastSeq) return;  // had it already
      state.lastSeq = frame.seq;
      show(frame.message, frame.seq);
    } else if (frame.type === "live") {  // caught up: nothing is missed from here on
      if (state.lastSeq === null || frame.seq > state.lastSeq) state.lastSeq = frame.seq;
      state.retry = 0;
      $("status").textContent = "live";
      $("status").classList.add("live");
    }
  };
  socket.onclose = (event) => {
    if (state.socket !== socket) return;
    $("status").textContent = "offline";
    $("status").classList.remove("live");
    // 1008: our cursor is not in this inbox (e.g. the server's data was reset): start from its end.
    if (event.code === 1008) state.lastSeq = null;
    // Back off between attempts (reset only once caught up), so a catch-up that
    // keeps failing never turns into a reconnect loop.
    const wait = Math.min(10000, 500 * 2 ** state.retry++) * (0.8 + Math.random() * 0.4);
    setTimeout(() => { if (state.socket === socket) connect(); }, wait);
  };
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
    await api("POST", "/v1/messages", { receiver: state.peer, body: text });
    input.value = "";  // the message shows when it comes back on the stream
    $("chat-error").textContent = "";
  } catch (error) {
    onError("chat-error")(error);
  } finally {
    $("send").disabled = false;
    input.focus();
  }
});

fetch("/v1/dev/token", { method: "OPTIONS" }).then((r) => { $("dev-form").hidden = r.status !== 204; });
const saved = sessionStorage.getItem("intercomm-token");
if (saved) signIn(saved).catch(() => sessionStorage.removeItem("intercomm-token"));
