import { MonitorError } from '../errors.js';

/** No monitor answered on the control socket (absent, refused, or no answer in time). */
export class ControlUnavailableError extends MonitorError {
  constructor(message: string) {
    super('ERR_CONTROL_UNAVAILABLE', message);
  }
}

/** One request to a monitor's control socket; JSON in, JSON (or text for /metrics) out. */
export async function requestControl<T = unknown>(
  controlSocketPath: string,
  method: 'GET' | 'POST',
  path: string,
  timeoutMs = 5_000,
): Promise<T> {
  // Imported on first use: `kissmon usage` on a database file never loads node:http.
  const { default: http } = await import('node:http');
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: controlSocketPath, method, path, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const json = res.headers['content-type']?.startsWith('application/json');
        let body: unknown = text;
        if (json) {
          try {
            body = JSON.parse(text);
          } catch {
            // leave as text
          }
        }
        if ((res.statusCode ?? 500) >= 400) {
          reject(new Error((body as { error?: string })?.error ?? `HTTP ${res.statusCode}`));
          return;
        }
        resolve(body as T);
      });
    });
    req.on('timeout', () =>
      req.destroy(new ControlUnavailableError(`monitor did not answer on ${controlSocketPath} within ${timeoutMs} ms`)),
    );
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err instanceof ControlUnavailableError) reject(err);
      else
        reject(new ControlUnavailableError(`no monitor answers on ${controlSocketPath} (${err.code ?? err.message})`));
    });
    req.end();
  });
}
