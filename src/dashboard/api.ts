// The page's side of the HTTP front: JSON calls with the bearer token (kept in sessionStorage for
// this tab only), the session check, and the live event stream. The stream is read with fetch, not
// EventSource, because EventSource cannot send an Authorization header.
import { MonitorError } from '../errors.js';

const TOKEN_KEY = 'kissmon-token';

export interface Session {
  token_required: boolean;
  authorised: boolean;
  admin: boolean;
  routes: string[];
}

/** The monitor answered a dashboard call with an error status (the message is its answer). */
export class ApiError extends MonitorError {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super('ERR_DASHBOARD_API', message);
  }
}

export const token = {
  get: (): string | null => sessionStorage.getItem(TOKEN_KEY),
  set: (value: string) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

function headers(): Record<string, string> {
  const t = token.get();
  return t ? { authorization: `Bearer ${t}` } : {};
}

export async function api<T>(path: string, method: 'GET' | 'POST' = 'GET'): Promise<T> {
  const res = await fetch(`/api${path}`, { method, headers: headers() });
  const body = (await res.json().catch(() => ({}))) as { error?: string };
  if (!res.ok) throw new ApiError(res.status, body.error ?? `${method} ${path}: HTTP ${res.status}`);
  return body as T;
}

export const session = () => api<Session>('/session');

/** Query string from an object, leaving out undefined and empty values. */
export function qs(params: Record<string, string | number | undefined>): string {
  const entries = Object.entries(params).filter(([, v]) => v !== undefined && v !== '') as [string, string][];
  return entries.length ? `?${new URLSearchParams(entries.map(([k, v]) => [k, String(v)]))}` : '';
}

/**
 * Reads /api/events until `signal` aborts, reconnecting after a drop (the server sends a fresh
 * snapshot on every connect). `onState` says whether the stream is up.
 */
export async function streamEvents(
  onEvent: (name: string, data: unknown) => void,
  onState: (up: boolean) => void,
  signal: AbortSignal,
): Promise<void> {
  while (!signal.aborted) {
    try {
      const res = await fetch('/api/events', { headers: headers(), signal });
      if (!res.ok || !res.body) throw new ApiError(res.status, `events: HTTP ${res.status}`);
      performance.mark('stream-open');
      onState(true);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let name = 'message';
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) name = line.slice(7);
            else if (line.startsWith('data: ')) data += line.slice(6);
          }
          if (data) onEvent(name, JSON.parse(data));
        }
      }
    } catch {
      // dropped or refused: shown as "reconnecting", tried again below
    }
    onState(false);
    if (!signal.aborted) await new Promise((r) => setTimeout(r, 2_000));
  }
}
