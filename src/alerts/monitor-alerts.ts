// The monitor's own alerts, judged on the main thread once a second and sent to the alerter as
// 'monitor' inputs (only when one starts or ends):
//   MonitorActorDown     an actor failing liveness (down or not answering past one restart
//                        attempt), or the supervisor giving up on it (restart intensity exceeded)
//   MonitorIngestPaused  reading paused by backpressure, or the database writer waiting (locked,
//                        cannot open, migration pending), for longer than alerts.ingestPausedAfterMs
import type { AlerterInput, MonitorAlertName } from '../actors/alerter-messages.js';

export interface MonitorCondition {
  alertname: MonitorAlertName;
  labels: Record<string, string>;
  summary: string;
}

export class MonitorAlerts {
  readonly #send: (input: AlerterInput) => void;
  /** key → the condition as last sent firing. */
  readonly #firing = new Map<string, MonitorCondition>();

  constructor(send: (input: AlerterInput) => void) {
    this.#send = send;
  }

  /** The conditions holding now: new ones are sent firing, those gone are sent resolved. */
  update(holding: MonitorCondition[], now: number): void {
    const keys = new Set<string>();
    for (const c of holding) {
      const key = keyOf(c);
      keys.add(key);
      if (this.#firing.has(key)) continue;
      this.#firing.set(key, c);
      this.#send({
        type: 'monitor',
        at: now,
        alertname: c.alertname,
        firing: true,
        labels: c.labels,
        summary: c.summary,
      });
    }
    for (const [key, c] of this.#firing) {
      if (keys.has(key)) continue;
      this.#firing.delete(key);
      this.#send({
        type: 'monitor',
        at: now,
        alertname: c.alertname,
        firing: false,
        labels: c.labels,
        summary: c.summary,
      });
    }
  }
}

function keyOf(c: MonitorCondition): string {
  return `${c.alertname}/${Object.keys(c.labels)
    .sort()
    .map((k) => `${k}=${c.labels[k]}`)
    .join(',')}`;
}
