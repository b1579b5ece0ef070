// The one base class of the monitor's own errors: each subclass has a stable `code` (`ERR_…`,
// listed in docs/OPERATIONS.md, "Error codes"), so callers, logs and the CLI can tell them apart.
export class MonitorError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** The socket path belongs to a running monitor (or is not a socket at all). */
export class SocketInUseError extends MonitorError {
  constructor(message: string) {
    super('ERR_SOCKET_IN_USE', message);
  }
}

/** Another live monitor holds this --host-name on the shared PostgreSQL store (its per-host advisory lock). */
export class HostInUseError extends MonitorError {
  constructor(message: string) {
    super('ERR_HOST_IN_USE', message);
  }
}

/** The auth tokens file cannot be read or has a bad line. */
export class AuthFileError extends MonitorError {
  constructor(message: string) {
    super('ERR_AUTH_FILE', message);
  }
}

/** The dashboard's bearer token file cannot be read, or holds no usable token. */
export class HttpTokenFileError extends MonitorError {
  constructor(message: string) {
    super('ERR_HTTP_TOKEN_FILE', message);
  }
}
