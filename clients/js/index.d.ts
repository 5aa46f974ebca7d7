// Types of intercomm's JavaScript client (index.js).

export interface Message {
  message_id: string;
  sender: string;
  receiver: string;
  body: string;
  created_at: string;
  /** Set when its sender took it back: the body is then empty. */
  retracted_at?: string;
  /** For its sender (IntercommClient.message): when it first reached the receiver, and when they read it. */
  delivered_at?: string | null;
  read_at?: string | null;
}

export interface Conversation {
  peer: string;
  last_message: (Message & { seq: number }) | null;
  /** The newest message's seq in this user's inbox: the list is ordered by it. */
  last_seq: number;
  /** Messages from the peer after read_seq. */
  unread: number;
  /** This user's read marker in the conversation (0: nothing read). */
  read_seq: number;
}

export type Presence = { online: true } | { online: false; last_seen: string | null };

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
  /** Whose client this is: the token's subject when omitted. */
  user?: string;
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
  /** `user` read their conversation with `peer` up to `seq` (a seq of this user's inbox). */
  read: { user: string; peer: string; seq: number };
  /** This user's message at `seq` first reached its receiver. */
  delivered: { message_id: string; seq: number; at: string };
  /** The message at `seq` was taken back by its sender. */
  retracted: { message_id: string; seq: number; retracted_at: string };
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
  readonly user: string | undefined;
  conversations(page?: { before?: number; limit?: number }): Promise<{ conversations: Conversation[]; next: number | null }>;
  conversation(
    peer: string,
    page?: { afterSeq?: number; beforeSeq?: number; limit?: number },
  ): Promise<{ messages: (Message & { seq: number })[]; next_seq: number | null }>;
  markRead(peer: string, seq: number): Promise<{ peer: string; read_seq: number; unread: number }>;
  message(messageId: string): Promise<Message>;
  retract(messageId: string): Promise<null>;
  block(other: string): Promise<null>;
  unblock(other: string): Promise<null>;
  blocks(): Promise<{ blocks: string[] }>;
  presence(users: string[]): Promise<Record<string, Presence>>;
}
