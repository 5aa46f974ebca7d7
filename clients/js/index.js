// intercomm's JavaScript client: one user's connection to a gateway.
// ES module, no build step; runs in browsers (their WebSocket and fetch) and in
// Node (pass the `ws` package's WebSocket; Node 18+ has fetch).
//
//   const client = new IntercommClient({ url: "http://127.0.0.1:8080", token });
//   client.on("message", ({ seq, message }) => ...);
//   client.connect();
//   await client.send({ receiver: "bob", body: "merhaba" });
//
// The socket resumes where it stopped: every message frame carries its seq in
// the user's inbox, the client remembers the last one (`lastSeq`), and after a
// lost connection it reconnects with back-off and asks for what came after it.
// Nothing is missed and nothing comes twice. Sends over the socket carry an
// idempotency key, so a send whose answer was lost with the connection is sent
// again after the reconnect and still stored once.

const DEFAULT_BACKOFF = { initialMs: 250, maxMs: 10000 };
const OPEN = 1;

// An error the server answered (or the client's own, status 0): `status` is the
// HTTP status the gateway would give, `code` the JSON-RPC code, `data` the details.
export class IntercommError extends Error {
  constructor(status, error = {}) {
    super(error.message || `intercomm: ${status}`);
    this.name = "IntercommError";
    this.status = status;
    this.code = error.code;
    this.data = error.data;
  }
}

// The subject ("sub") of a JWT, without checking it (the server does).
function subjectOf(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(globalThis.atob(payload.padEnd(payload.length + ((4 - (payload.length % 4)) % 4), "="))).sub;
  } catch {
    return undefined;
  }
}

function randomKey() {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class IntercommClient {
  // url: the gateway (http:// or https://); token: a bearer token, or a
  // function returning one (or a promise of one), asked again before each
  // connection (so an expired token is replaced). WebSocket: the constructor to
  // use (browsers: omit; Node: `import { WebSocket } from "ws"`). lastSeq: the
  // last seq already seen (resume from there); backoff: reconnect delays.
  // user: whose client this is (default: the token's subject).
  constructor({ url, token, user, WebSocket, fetch, lastSeq = null, backoff = {} }) {
    if (!url || !token) throw new TypeError("IntercommClient: url and token are required");
    this.url = url.replace(/\/+$/, "");
    this.user = user ?? (typeof token === "string" ? subjectOf(token) : undefined);
    this.lastSeq = lastSeq;
    this._token = token;
    this._WebSocket = WebSocket || globalThis.WebSocket;
    this._fetch = fetch || globalThis.fetch?.bind(globalThis);
    this._backoff = { ...DEFAULT_BACKOFF, ...backoff };
    this._handlers = new Map();
    this._pending = new Map();  // ref -> { frame, resolve, reject }: sends
    this._asks = new Map();     // ref -> { resolve, reject }: presence questions
    this._nextRef = 1;
    this._attempt = 0;
    this._socket = null;
    this._stopped = true;
    this._timer = null;
    if (!this._WebSocket) throw new TypeError("IntercommClient: no WebSocket (in Node, pass the ws package's)");
  }

  // Events: "message" {seq, message}; "live" {seq}; "replayed" {count};
  // "typing" {from}; "read" {user, peer, seq} (user read their conversation
  // with peer up to seq, a seq of this user's inbox); "delivered" {message_id,
  // seq, at} (this user's message reached its receiver); "retracted"
  // {message_id, seq, retracted_at}; "open"; "close" {code, reason,
  // willReconnect}; "error" (an Error: a refused connection, a frame that
  // cannot be read).
  on(event, handler) {
    if (!this._handlers.has(event)) this._handlers.set(event, new Set());
    this._handlers.get(event).add(handler);
    return () => this._handlers.get(event)?.delete(handler);
  }

  // Opens the socket, and keeps it open until close(). Calling it again while
  // connected (or reconnecting) does nothing.
  connect() {
    if (!this._stopped) return;
    this._stopped = false;
    this._open();
  }

  // Closes the socket for good; sends waiting for an answer are rejected.
  close() {
    this._stopped = true;
    clearTimeout(this._timer);
    this._socket?.close(1000, "bye");
    this._socket = null;
    this._failPending(new IntercommError(0, { message: "intercomm: the client was closed" }));
  }

  get connected() {
    return this._socket !== null && this._socket.readyState === OPEN;
  }

  // Sends a message: over the socket when it is open (`via: "socket"` waits for
  // it), else over HTTP (`via: "http"` always). Resolves {message_id, replayed}
  // once the message is durably queued; rejects with an IntercommError. The
  // idempotency key (one is made when none is given) makes a retry safe.
  send({ receiver, body, idempotencyKey = randomKey(), via } = {}) {
    if (via === "http" || (via === undefined && !this.connected)) {
      return this._post(receiver, body, idempotencyKey);
    }
    return new Promise((resolve, reject) => {
      const ref = `s${this._nextRef++}`;
      const frame = { type: "send", ref, receiver, body, idempotency_key: idempotencyKey };
      this._pending.set(ref, { frame, resolve, reject });
      if (this.connected) this._socket.send(JSON.stringify(frame));
      // else: sent once the socket (re)opens
    });
  }

  // Tells `to` (on their open sockets) that this user is typing. Best effort:
  // nothing when the socket is closed or the server's typing limit is reached.
  typing(to) {
    if (this.connected) this._socket.send(JSON.stringify({ type: "typing", to }));
  }

  // --- conversations, receipts, presence, blocks, retraction (over HTTP) ---

  // {conversations: [{peer, last_message, last_seq, unread, read_seq}], next}:
  // newest activity first; pass `next` as `before` for the next page.
  conversations({ before, limit } = {}) {
    return this._get("conversations", { before, limit });
  }

  // {messages: [message + seq], next_seq}: the two users' messages; newest
  // first, or oldest first after afterSeq.
  conversation(peer, { afterSeq, beforeSeq, limit } = {}) {
    return this._get(`conversations/${encodeURIComponent(peer)}/messages`,
                     { after_seq: afterSeq, before_seq: beforeSeq, limit });
  }

  // Moves this user's read marker with `peer` forward to `seq`: {peer, read_seq, unread}.
  async markRead(peer, seq) {
    return this._request("POST", `/v1/users/${encodeURIComponent(await this._user())}/conversations/${encodeURIComponent(peer)}/read`,
                         { seq });
  }

  // One message; for its sender with delivered_at and read_at.
  message(messageId) {
    return this._request("GET", `/v1/messages/${encodeURIComponent(messageId)}`);
  }

  // Takes one's own message back: a tombstone for both users, everywhere.
  retract(messageId) {
    return this._request("DELETE", `/v1/messages/${encodeURIComponent(messageId)}`);
  }

  async block(other) {
    return this._request("PUT", `/v1/users/${encodeURIComponent(await this._user())}/blocks/${encodeURIComponent(other)}`);
  }

  async unblock(other) {
    return this._request("DELETE", `/v1/users/${encodeURIComponent(await this._user())}/blocks/${encodeURIComponent(other)}`);
  }

  // {blocks: [users]}
  blocks() {
    return this._get("blocks", {});
  }

  // {"<user>": {online: true} | {online: false, last_seen}} for users one has
  // a conversation with: over the socket when it is open, else HTTP.
  async presence(users) {
    if (!this.connected) {
      const answer = await this._get("presence", { users: users.join(",") });
      return answer.users;
    }
    return new Promise((resolve, reject) => {
      const ref = `p${this._nextRef++}`;
      this._asks.set(ref, { resolve, reject });
      this._socket.send(JSON.stringify({ type: "presence", ref, users }));
    });
  }

  // --- internals ---

  async _user() {
    if (this.user === undefined) this.user = subjectOf(await this._currentToken());
    return this.user;
  }

  async _get(what, query) {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined && value !== null) params.set(name, String(value));
    }
    const suffix = params.toString() ? `?${params}` : "";
    return this._request("GET", `/v1/users/${encodeURIComponent(await this._user())}/${what}${suffix}`);
  }

  // One REST call: the answer's JSON (null for 204), or an IntercommError.
  async _request(method, path, body) {
    return (await this._exchange(method, path, body)).answer;
  }

  // The same, with the response (for its headers).
  async _exchange(method, path, body, headers = {}) {
    if (!this._fetch) throw new IntercommError(0, { message: "intercomm: no fetch for HTTP requests" });
    const response = await this._fetch(`${this.url}${path}`, {
      method,
      headers: {
        "Authorization": `Bearer ${await this._currentToken()}`,
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 204) return { answer: null, response };
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new IntercommError(response.status, answer.error);
    return { answer, response };
  }

  _emit(event, value) {
    for (const handler of this._handlers.get(event) || []) {
      try {
        handler(value);
      } catch (error) {
        if (event !== "error") this._emit("error", error);
      }
    }
  }

  async _currentToken() {
    return typeof this._token === "function" ? await this._token() : this._token;
  }

  async _open() {
    let token;
    try {
      token = await this._currentToken();
    } catch (error) {
      this._emit("error", error);
      return this._reconnectLater();
    }
    if (this._stopped) return;
    const query = new URLSearchParams({ access_token: token });
    if (this.lastSeq !== null) query.set("after_seq", String(this.lastSeq));
    const socket = new this._WebSocket(`${this.url.replace(/^http/, "ws")}/v1/stream?${query}`);
    this._socket = socket;
    socket.onopen = () => {
      if (this._socket !== socket) return;
      this._attempt = 0;
      this._emit("open");
      for (const { frame } of this._pending.values()) socket.send(JSON.stringify(frame));
    };
    socket.onmessage = (event) => {
      if (this._socket === socket) this._frame(event.data);
    };
    socket.onerror = () => {};  // onclose follows, with the code
    socket.onclose = (event) => {
      if (this._socket !== socket) return;
      this._socket = null;
      // 1008: the token expired, or the cursor is not in the inbox; with a fixed
      // token, reconnecting would be refused again.
      const willReconnect = !this._stopped && (event.code !== 1008 || typeof this._token === "function");
      this._emit("close", { code: event.code, reason: event.reason, willReconnect });
      if (willReconnect) {
        this._reconnectLater();
      } else {
        this._stopped = true;
        this._failPending(new IntercommError(0, { message: `intercomm: socket closed (${event.code} ${event.reason})` }));
      }
    };
  }

  _reconnectLater() {
    if (this._stopped) return;
    const { initialMs, maxMs } = this._backoff;
    const ceiling = Math.min(maxMs, initialMs * 2 ** this._attempt++);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this._timer = setTimeout(() => this._open(), delay);
  }

  _frame(text) {
    let frame;
    try {
      frame = JSON.parse(typeof text === "string" ? text : text.toString());
    } catch (error) {
      return this._emit("error", new Error(`intercomm: a frame that is not JSON: ${error.message}`));
    }
    switch (frame.type) {
      case "message":
        if (this.lastSeq !== null && frame.seq <= this.lastSeq) return;  // seen before a reconnect
        this.lastSeq = frame.seq;
        return this._emit("message", { seq: frame.seq, message: frame.message });
      case "live":
        if (this.lastSeq === null) this.lastSeq = frame.seq;
        return this._emit("live", { seq: frame.seq });
      case "replayed":
        return this._emit("replayed", { count: frame.count });
      case "typing":
        return this._emit("typing", { from: frame.from });
      case "read":
        return this._emit("read", { user: frame.user, peer: frame.peer, seq: frame.seq });
      case "delivered":
        return this._emit("delivered", { message_id: frame.message_id, seq: frame.seq, at: frame.at });
      case "retracted":
        return this._emit("retracted", { message_id: frame.message_id, seq: frame.seq, retracted_at: frame.retracted_at });
      case "presence": {
        const ask = this._asks.get(frame.ref);
        if (ask) {
          this._asks.delete(frame.ref);
          ask.resolve(frame.users);
        }
        return;
      }
      case "accepted":
      case "error": {
        const ask = frame.type === "error" && this._asks.get(frame.ref);
        if (ask) {
          this._asks.delete(frame.ref);
          return ask.reject(new IntercommError(frame.status, frame.error));
        }
        const pending = frame.ref === null || frame.ref === undefined ? undefined : this._pending.get(frame.ref);
        if (!pending) {
          if (frame.type === "error") this._emit("error", new IntercommError(frame.status, frame.error));
          return;
        }
        this._pending.delete(frame.ref);
        if (frame.type === "accepted") {
          return pending.resolve({ message_id: frame.message_id, replayed: frame.replayed });
        }
        // Nothing was queued, or maybe it was: sent again (same key) in a moment,
        // or by the next connection.
        if (frame.status === 503 || frame.status === 504) {
          this._pending.set(frame.ref, pending);
          setTimeout(() => {
            if (this._pending.get(frame.ref) === pending && this.connected) {
              this._socket.send(JSON.stringify(pending.frame));
            }
          }, 1000);
          return;
        }
        return pending.reject(new IntercommError(frame.status, frame.error));
      }
      default:
        return;  // a frame of a newer server: ignored
    }
  }

  _failPending(error) {
    const pending = [...this._pending.values(), ...this._asks.values()];
    this._pending.clear();
    this._asks.clear();
    for (const { reject } of pending) reject(error);
  }

  async _post(receiver, body, idempotencyKey) {
    const { answer, response } =
        await this._exchange("POST", "/v1/messages", { receiver, body }, { "Idempotency-Key": idempotencyKey });
    return { message_id: answer.message_id, replayed: response.headers.get("Idempotent-Replayed") === "true" };
  }
}
