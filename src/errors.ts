// Error classes with a stable `code`, so callers (and the CLI's exit codes) can tell them apart.
export class MonitorError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
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
