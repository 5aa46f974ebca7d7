// The chat page: intercomm's JavaScript client (/client.js) for everything —
// the stream (resumed by seq: every message once, in order), sends over the
// socket, conversations with unread counts, receipts (sent ✓, delivered ✓✓,
// read ✓✓ in colour), typing, presence, retraction and blocking.
import { IntercommClient } from "/client.js";

const $ = (id) => document.getElementById(id);
const state = {
  token: "", user: "", peer: "", client: null,
  shown: new Set(),          // seqs shown in the open conversation
  conversations: [],
  online: new Map(),         // peer -> presence
  readUpTo: new Map(),       // peer -> the seq (of my inbox) up to which they read my messages
  deliveredUpTo: new Map(),  // peer -> the seq up to which my messages reached them
  delivered: new Set(),      // ids of my messages that reached their receiver
  blocked: new Set(),
  markedRead: new Map(),     // peer -> the seq I last marked read
  typingTimer: null, typedAt: 0, refreshTimer: null, markTimer: null, presenceAt: 0,
};
// For the browser test: the page's state and the client.
window.chat = { state };

const time = (at) => new Date(at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
const onError = (where) => (error) => { $(where).textContent = error.message; };

// --- the conversation list ---

function renderConversations() {
  const list = $("conversations");
  list.replaceChildren(...state.conversations.map((conversation) => {
    const item = document.createElement("li");
    item.dataset.peer = conversation.peer;
    item.classList.toggle("current", conversation.peer === state.peer);
    const avatar = document.createElement("span");
    avatar.className = "avatar";
    avatar.textContent = conversation.peer.slice(0, 1).toUpperCase();
    if (state.online.get(conversation.peer)?.online) {
      const dot = document.createElement("span");
      dot.className = "dot";
      dot.title = "online";
      avatar.appendChild(dot);
    }
    const text = document.createElement("span");
    text.className = "text";
    const peer = document.createElement("div");
    peer.className = "peer";
    peer.textContent = conversation.peer;
    const preview = document.createElement("div");
    preview.className = "preview";
    const last = conversation.last_message;
    if (last) {
      const body = last.retracted_at ? "message retracted" : last.body;
      preview.textContent = (last.sender === state.user ? "you: " : "") + body;
    }
    text.append(peer, preview);
    item.append(avatar, text);
    if (conversation.unread > 0 && conversation.peer !== state.peer) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = String(conversation.unread);
      item.appendChild(badge);
    }
    item.addEventListener("click", () => openConversation(conversation.peer).catch(onError("chat-error")));
    return item;
  }));
}

// Reads the list again (at most every 300 ms), and who is online (every 10 s).
function refreshConversations() {
  if (state.refreshTimer) return;
  state.refreshTimer = setTimeout(async () => {
    state.refreshTimer = null;
    try {
      state.conversations = (await state.client.conversations({ limit: 50 })).conversations;
      const unknown = state.peer && state.peer !== state.user && !state.online.has(state.peer);
      if (unknown || Date.now() - state.presenceAt > 10000) await refreshPresence();
      renderConversations();
    } catch (error) {
      onError("chat-error")(error);
    }
  }, 300);
}

async function refreshPresence() {
  state.presenceAt = Date.now();
  const peers = state.conversations.map((c) => c.peer).filter((peer) => peer !== state.user).slice(0, 50);
  if (peers.length === 0) return;
  const presence = await state.client.presence(peers);
  for (const [peer, value] of Object.entries(presence)) state.online.set(peer, value);
  showPresence();
}

function showPresence() {
  const presence = state.online.get(state.peer);
  const label = $("presence");
  label.classList.toggle("online", Boolean(presence?.online));
  label.textContent = !presence ? "" : presence.online ? "online"
      : presence.last_seen ? `last seen ${new Date(presence.last_seen).toLocaleString()}` : "";
}

// --- the open conversation ---

function ticksOf(item) {
  const seq = Number(item.dataset.seq);
  if (seq <= (state.readUpTo.get(state.peer) || 0)) return ["✓✓", "read"];
  if (state.delivered.has(item.dataset.id) || seq <= (state.deliveredUpTo.get(state.peer) || 0)) {
    return ["✓✓", "delivered"];
  }
  return ["✓", "sent"];
}

function updateTicks() {
  for (const item of $("messages").querySelectorAll("li.mine:not(.retracted)")) {
    const [marks, status] = ticksOf(item);
    const ticks = item.querySelector(".ticks");
    ticks.textContent = marks;
    ticks.className = `ticks ${status}`;
    ticks.title = status;
  }
}

function retractedLook(item) {
  item.classList.add("retracted");
  item.querySelector(".text").textContent = "message retracted";
  item.querySelector(".ticks")?.remove();
  item.querySelector(".menu-button")?.remove();
  item.querySelector(".menu")?.remove();
}

// A menu on one's own message: retract it.
function addMenu(item) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "menu-button";
  button.textContent = "⋯";
  button.setAttribute("aria-label", "message menu");
  button.addEventListener("click", () => {
    if (item.querySelector(".menu")) return item.querySelector(".menu").remove();
    const menu = document.createElement("div");
    menu.className = "menu";
    const retract = document.createElement("button");
    retract.type = "button";
    retract.className = "retract";
    retract.textContent = "Retract";
    retract.addEventListener("click", () => {
      menu.remove();
      state.client.retract(item.dataset.id).catch(onError("chat-error"));
    });
    menu.appendChild(retract);
    item.appendChild(menu);
  });
  item.querySelector(".meta").appendChild(button);
}

// Shows a message of the open conversation (once; in seq order).
function show(message, seq) {
  const other = message.sender === state.user ? message.receiver : message.sender;
  if (other !== state.peer || state.shown.has(seq)) return;
  state.shown.add(seq);
  const mine = message.sender === state.user;
  const item = document.createElement("li");
  item.className = mine ? "mine" : "theirs";
  item.dataset.id = message.message_id;
  item.dataset.seq = String(seq);
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = message.body;
  const meta = document.createElement("span");
  meta.className = "meta";
  const when = document.createElement("time");
  when.textContent = time(message.created_at);
  meta.appendChild(when);
  item.append(text, meta);
  if (mine) {
    const ticks = document.createElement("span");
    ticks.className = "ticks";
    meta.appendChild(ticks);
    addMenu(item);
  }
  if (message.retracted_at) retractedLook(item);
  const list = $("messages");
  const last = list.lastElementChild;
  const after = !last || Number(last.dataset.seq) < seq ? null  // the usual case: the newest
      : [...list.children].find((li) => Number(li.dataset.seq) > seq);
  list.insertBefore(item, after);
  list.scrollTop = list.scrollHeight;
  if (mine) updateTicks();
}

// Marks the open conversation read up to its newest message from the peer
// (at most every 200 ms: a catch-up of many messages moves it once).
function markRead() {
  if (state.markTimer) return;
  state.markTimer = setTimeout(() => {
    state.markTimer = null;
    markReadNow();
  }, 200);
}

function markReadNow() {
  if (!state.peer || document.hidden) return;
  const theirs = [...$("messages").querySelectorAll("li.theirs")];
  const seq = theirs.length ? Number(theirs[theirs.length - 1].dataset.seq) : 0;
  if (seq <= (state.markedRead.get(state.peer) || 0)) return;
  state.markedRead.set(state.peer, seq);
  state.client.markRead(state.peer, seq).then(refreshConversations, onError("chat-error"));
}

async function openConversation(peer) {
  state.peer = peer;
  state.shown.clear();
  $("messages").replaceChildren();
  $("typing").hidden = true;
  const listed = state.conversations.find((c) => c.peer === peer);
  if (listed) listed.unread = 0;  // read on opening (the marker moves below)
  $("peer-name").textContent = peer;
  $("chat").classList.add("open");
  $("chat-error").textContent = "";
  renderConversations();
  $("block").hidden = peer === state.user;
  $("block").textContent = state.blocked.has(peer) ? "Unblock" : "Block";
  showPresence();
  let page;
  try {
    page = await state.client.conversation(peer, { limit: 100 });
  } catch (error) {
    if (error.status !== 404) throw error;  // a new conversation: nothing yet
    page = { messages: [] };
  }
  if (state.peer !== peer) return;
  page.messages.forEach((message) => show(message, message.seq));
  // How far the peer got: the receipts of my newest message (markers only move forward).
  const mine = page.messages.find((message) => message.sender === state.user && !message.retracted_at);
  if (mine && peer !== state.user) {
    const receipt = await state.client.message(mine.message_id);
    if (receipt.read_at) state.readUpTo.set(peer, Math.max(state.readUpTo.get(peer) || 0, mine.seq));
    if (receipt.delivered_at) state.deliveredUpTo.set(peer, Math.max(state.deliveredUpTo.get(peer) || 0, mine.seq));
    updateTicks();
  }
  markRead();
  if (peer !== state.user && state.conversations.some((c) => c.peer === peer)) {
    const presence = await state.client.presence([peer]).catch(() => ({}));
    if (presence[peer]) state.online.set(peer, presence[peer]);
    showPresence();
  }
}

// "<peer> is typing…" for a few seconds after their last signal.
function showTyping(from) {
  if (from !== state.peer) return;
  $("typing").textContent = `${from} is typing…`;
  $("typing").hidden = false;
  clearTimeout(state.typingTimer);
  state.typingTimer = setTimeout(() => { $("typing").hidden = true; }, 4000);
}

function setStatus(text, live) {
  $("status").textContent = text;
  $("status").classList.toggle("live", live);
}

// --- the connection ---

function connect() {
  state.client?.close();
  const client = new IntercommClient({ url: location.origin, token: () => state.token, user: state.user });
  state.client = client;
  window.chat.client = client;
  client.on("open", () => setStatus("catching up", false));
  client.on("live", () => setStatus("live", true));
  client.on("message", ({ seq, message }) => {
    if (message.sender === state.peer) $("typing").hidden = true;
    show(message, seq);
    if (message.sender === state.peer) markRead();
    refreshConversations();
  });
  client.on("typing", ({ from }) => showTyping(from));
  client.on("read", ({ user, seq }) => {
    if (user !== state.user) {
      state.readUpTo.set(user, Math.max(state.readUpTo.get(user) || 0, seq));
      if (user === state.peer) updateTicks();
    }
    refreshConversations();
  });
  client.on("delivered", ({ message_id }) => {
    state.delivered.add(message_id);
    updateTicks();
  });
  client.on("retracted", ({ message_id }) => {
    const item = $("messages").querySelector(`li[data-id="${message_id}"]`);
    if (item) retractedLook(item);
    refreshConversations();
  });
  client.on("close", ({ code }) => {
    setStatus("offline", false);
    // 1008: our cursor is not in this inbox (e.g. the server's data was reset): start from its end.
    if (code === 1008) client.lastSeq = null;
  });
  client.connect();
}

async function signIn(token) {
  const client = new IntercommClient({ url: location.origin, token });
  if (!client.user) throw new Error("that is not a token");
  state.token = token;
  state.user = client.user;
  state.client = client;
  state.conversations = (await client.conversations({ limit: 50 })).conversations;  // checks the token
  state.blocked = new Set((await client.blocks()).blocks);
  sessionStorage.setItem("intercomm-token", token);
  $("me").textContent = state.user;
  $("signin").hidden = true;
  $("chat").hidden = false;
  connect();
  renderConversations();
  refreshPresence().then(renderConversations).catch(() => {});
}

// --- the forms and buttons ---

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
  const peer = $("peer").value.trim();
  $("peer").value = "";
  openConversation(peer).catch(onError("chat-error"));
});

$("back").addEventListener("click", () => {
  state.peer = "";
  $("chat").classList.remove("open");
  renderConversations();
});

$("block").addEventListener("click", async () => {
  const peer = state.peer;
  try {
    if (state.blocked.has(peer)) {
      await state.client.unblock(peer);
      state.blocked.delete(peer);
    } else {
      await state.client.block(peer);
      state.blocked.add(peer);
    }
    $("block").textContent = state.blocked.has(peer) ? "Unblock" : "Block";
  } catch (error) {
    onError("chat-error")(error);
  }
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

document.addEventListener("visibilitychange", markRead);
setInterval(() => { if (state.client) refreshPresence().then(renderConversations).catch(() => {}); }, 15000);

fetch("/v1/dev/token", { method: "OPTIONS" }).then((r) => { $("dev-form").hidden = r.status !== 204; });
const saved = sessionStorage.getItem("intercomm-token");
if (saved) signIn(saved).catch(() => sessionStorage.removeItem("intercomm-token"));
