/**
 * A small QMP client over QEMU's UNIX socket (platform-facts §3): reads the greeting, negotiates
 * with `qmp_capabilities`, sends commands with an `id` and matches replies to them, and hands
 * events (e.g. BALLOON_CHANGE), which arrive interleaved with replies, to `onEvent`. When QEMU
 * goes away the connection is dropped; the next command connects again (QEMU restarted).
 */
import { createConnection, type Socket } from "node:net";

export class QmpError extends Error {
  override readonly name = "QmpError";
  constructor(
    message: string,
    /** QMP error class (`DeviceNotActive`, `GenericError`, ...) or a local one: `Unreachable`, `Closed`, `Timeout`, `Protocol`. */
    readonly errorClass: string,
  ) {
    super(message);
  }
}

export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export interface QmpClientOptions {
  onEvent?: (event: QmpEvent) => void;
  /** A line that is not a QMP message (counted, then skipped). */
  onProtocolError?: (message: string) => void;
  commandTimeoutMs?: number;
  connectTimeoutMs?: number;
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class QmpClient {
  private socket: Socket | null = null;
  private connecting: Promise<Socket> | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private buffered = "";
  private greeted: ((ok: boolean) => void) | null = null;
  private closed = false;
  /** Successful connections after the first (QEMU restarts, dropped sockets). */
  reconnects = 0;
  /** Successful connections so far (each one may be a new QEMU). */
  connections = 0;
  protocolErrors = 0;

  constructor(
    readonly socketPath: string,
    private readonly options: QmpClientOptions = {},
  ) {
    if (!socketPath.startsWith("/")) throw new Error(`QMP socket path must be absolute, got ${JSON.stringify(socketPath)}`);
  }

  get connected(): boolean {
    return this.socket !== null;
  }

  /** Runs `command` and returns its `return` value; throws QmpError (with the QMP class) on an error reply. */
  async execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    const socket = await this.ensureConnected();
    return this.send(socket, command, args);
  }

  private send(socket: Socket, command: string, args?: Record<string, unknown>): Promise<unknown> {
    const id = this.nextId++;
    const timeoutMs = this.options.commandTimeoutMs ?? 5000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new QmpError(`QMP ${this.socketPath}: no reply to ${command} within ${timeoutMs} ms`, "Timeout"));
      }, timeoutMs);
      this.pending.set(id, { command, resolve, reject, timer });
      socket.write(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`);
    });
  }

  private ensureConnected(): Promise<Socket> {
    if (this.closed) return Promise.reject(new QmpError(`QMP ${this.socketPath}: client closed`, "Closed"));
    if (this.socket) return Promise.resolve(this.socket);
    this.connecting ??= this.connect().finally(() => (this.connecting = null));
    return this.connecting;
  }

  private async connect(): Promise<Socket> {
    const path = this.socketPath;
    const timeoutMs = this.options.connectTimeoutMs ?? 5000;
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = createConnection(path);
      const timer = setTimeout(() => {
        s.destroy();
        reject(new QmpError(`QMP ${path}: connect timed out after ${timeoutMs} ms`, "Unreachable"));
      }, timeoutMs);
      s.once("connect", () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once("error", (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new QmpError(connectErrorMessage(path, err), "Unreachable"));
      });
    });
    this.buffered = "";
    socket.setEncoding("utf8");
    const greeting = new Promise<boolean>((resolve) => (this.greeted = resolve));
    socket.on("data", (chunk: string) => this.onData(chunk));
    socket.on("error", () => undefined); // "close" follows and does the cleanup
    socket.on("close", () => this.onClose(socket));
    const timer = setTimeout(() => this.greeted?.(false), timeoutMs);
    const ok = await greeting;
    clearTimeout(timer);
    if (!ok) {
      socket.destroy();
      throw new QmpError(`QMP ${path}: no QMP greeting within ${timeoutMs} ms (is this a QMP socket, -qmp unix:${path},server=on?)`, "Protocol");
    }
    // Only qmp_capabilities works before negotiation; events start after it.
    await this.send(socket, "qmp_capabilities");
    this.socket = socket;
    if (this.connections++ > 0) this.reconnects++;
    return socket;
  }

  private onData(chunk: string): void {
    this.buffered += chunk;
    let nl: number;
    while ((nl = this.buffered.indexOf("\n")) >= 0) {
      const line = this.buffered.slice(0, nl).trim();
      this.buffered = this.buffered.slice(nl + 1);
      if (line !== "") this.onLine(line);
    }
    if (this.buffered.length > 1 << 20) {
      this.protocolError(`a line longer than 1 MiB without a newline; dropped`);
      this.buffered = "";
    }
  }

  private onLine(line: string): void {
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      this.protocolError(`not JSON: ${line.slice(0, 200)}`);
      return;
    }
    if (typeof msg !== "object" || msg === null || Array.isArray(msg)) {
      this.protocolError(`not a JSON object: ${line.slice(0, 200)}`);
      return;
    }
    const fields = msg as Record<string, unknown>;
    if ("QMP" in fields) {
      this.greeted?.(true);
      this.greeted = null;
      return;
    }
    if (typeof fields.event === "string") {
      const data = typeof fields.data === "object" && fields.data !== null ? (fields.data as Record<string, unknown>) : {};
      this.options.onEvent?.({ event: fields.event, data, ...(fields.timestamp ? { timestamp: fields.timestamp as QmpEvent["timestamp"] } : {}) });
      return;
    }
    const id = typeof fields.id === "number" ? fields.id : null;
    const p = id === null ? undefined : this.pending.get(id);
    if (p === undefined) {
      // A parse error reply has no id (qmp-spec); anything else unmatched is a late reply after a timeout.
      this.protocolError(`reply matching no pending command: ${line.slice(0, 200)}`);
      return;
    }
    this.pending.delete(id as number);
    clearTimeout(p.timer);
    if ("return" in fields) {
      p.resolve(fields.return);
    } else if (typeof fields.error === "object" && fields.error !== null) {
      const e = fields.error as { class?: unknown; desc?: unknown };
      const cls = typeof e.class === "string" ? e.class : "UnknownError";
      const desc = typeof e.desc === "string" ? e.desc : "";
      p.reject(new QmpError(`QMP ${this.socketPath}: ${p.command} failed: ${cls}: ${desc}`, cls));
    } else {
      p.reject(new QmpError(`QMP ${this.socketPath}: ${p.command}: reply has neither return nor error: ${line.slice(0, 200)}`, "Protocol"));
    }
  }

  private protocolError(message: string): void {
    this.protocolErrors++;
    this.options.onProtocolError?.(`QMP ${this.socketPath}: ${message}`);
  }

  private onClose(socket: Socket): void {
    if (this.socket === socket) this.socket = null;
    this.greeted?.(false);
    this.greeted = null;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new QmpError(`QMP ${this.socketPath}: connection closed before the reply to ${p.command} (QEMU exited?)`, "Closed"));
      this.pending.delete(id);
    }
  }

  close(): void {
    this.closed = true;
    this.socket?.destroy();
    this.socket = null;
  }
}

function connectErrorMessage(path: string, err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case "ENOENT":
      return `QMP socket ${path} does not exist (QEMU not running, or started without -qmp unix:${path},server=on,wait=off)`;
    case "ECONNREFUSED":
      return `QMP socket ${path} refuses connections (QEMU has exited and left the socket file behind)`;
    case "EACCES":
      return `QMP socket ${path}: permission denied`;
    case "ENOTSOCK":
      return `QMP socket ${path} is not a socket`;
    default:
      return `QMP socket ${path}: cannot connect: ${err.message}`;
  }
}
