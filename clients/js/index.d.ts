// Types of intercomm's JavaScript client (index.js).

export interface Message {
  message_id: string;
  sender: string;
  receiver: string;
  body: string;
  created_at: string;
}

export interface ClientOptions {
  /** The gateway, e.g. "http://127.0.0.1:8080". */
  url: string;
  /** A bearer token, or a function giving one (asked before each connection). */
  token: string | (() => string | Promise<string>);
  /** The WebSocket constructor: the browser's by default; in Node, the ws package's. */
  WebSocket?: unknown;
  /** fetch for sends over HTTP: the global one by default. */
  fetch?: typeof globalThis.fetch;
  /** The last seq already seen: the socket replays what came after it. */
  lastSeq?: number | null;
  /** Reconnect delays: doubling from initialMs up to maxMs, with jitter. */
  backoff?: { initialMs?: number; maxMs?: number };
}

export interface SendOptions {
  receiver: string;
  body: string;
  /** Makes a retry safe: the same key is the same message (one is made when omitted). */
  idempotencyKey?: string;
  /** "socket" waits for the socket; "http" posts; default: the socket when open. */
  via?: "socket" | "http";
}

export interface Accepted {
  message_id: string;
  /** True when the key was used before: this is the first send's message. */
  replayed: boolean;
}

export interface ClientEvents {
  message: { seq: number; message: Message };
  live: { seq: number };
  replayed: { count: number };
  typing: { from: string };
  open: undefined;
  close: { code: number; reason: string; willReconnect: boolean };
  error: Error;
}

export class IntercommError extends Error {
  /** The HTTP status the gateway gave (0: the client's own error). */
  status: number;
  /** The JSON-RPC error code, e.g. -32602. */
  code?: number;
  data?: unknown;
}

export class IntercommClient {
  constructor(options: ClientOptions);
  readonly url: string;
  /** The seq of the last message received; keep it to resume later. */
  lastSeq: number | null;
  readonly connected: boolean;
  /** Adds a handler; returns a function that removes it. */
  on<E extends keyof ClientEvents>(event: E, handler: (value: ClientEvents[E]) => void): () => void;
  connect(): void;
  close(): void;
  send(options: SendOptions): Promise<Accepted>;
  typing(to: string): void;
}
