// The chat page: REST to send and read, /v1/stream to receive, ?after= to catch up.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { token: "", user: "", peer: "", socket: null, lastId: "", seen: new Set(), retry: 0 };

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

function show(message) {
  if (state.seen.has(message.message_id)) return;
  if (!state.lastId || message.message_id > state.lastId) state.lastId = message.message_id;
  const other = message.sender === state.user ? message.receiver : message.sender;
  if (other !== state.peer) return;
  state.seen.add(message.message_id);
  const item = document.createElement("li");
  item.className = message.sender === state.user ? "mine" : "theirs";
  item.dataset.id = message.message_id;
  item.textContent = message.body;
  const time = document.createElement("time");
  time.textContent = new Date(message.created_at).toLocaleTimeString();
  item.appendChild(time);
  // Keep the list in id order (ids sort by time).
  const list = $("messages");
  const after = [...list.children].find((li) => li.dataset.id > message.message_id);
  list.insertBefore(item, after || null);
  list.scrollTop = list.scrollHeight;
}

async function loadConversation() {
  $("messages").replaceChildren();
  state.seen.clear();
  let target = `/v1/users/${encodeURIComponent(state.user)}/messages?limit=100`;
  for (let page = 0; page < 10; ++page) {
    const data = await api("GET", target);
    data.messages.forEach(show);
    if (!data.next) break;
    target = `/v1/users/${encodeURIComponent(state.user)}/messages?limit=100&before=${data.next}`;
  }
}

function connect() {
  if (state.socket) state.socket.close();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const after = state.lastId ? `&after=${state.lastId}` : "";
  const socket = new WebSocket(`${scheme}://${location.host}/v1/stream?access_token=${encodeURIComponent(state.token)}${after}`);
  state.socket = socket;
  socket.onopen = () => {
    state.retry = 0;
    $("status").textContent = "connecting";
  };
  socket.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    if (frame.type === "message") show(frame.message);
    if (frame.type === "live") {  // caught up, and nothing is missed from here on
      $("status").textContent = "live";
      $("status").classList.add("live");
    }
  };
  socket.onclose = () => {
    if (state.socket !== socket) return;
    $("status").textContent = "offline";
    $("status").classList.remove("live");
    // Reconnect with back-off; ?after= catches up on what came meanwhile.
    const wait = Math.min(10000, 500 * 2 ** state.retry++);
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
