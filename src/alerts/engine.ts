// The alert rules and the notification lifecycle, in memory, with time passed in (tests and the
// bench drive it directly; the alerter actor persists what it marks dirty).
//
//   input ──rule──▶ alert  (pending ─▶) firing ──condition over──▶ resolved ──kept 1 h──▶ forgotten
//                     │ into its group (one per alertname)
//   group:  first alert ─groupWaitMs─▶ flush ─▶ changes at most every groupIntervalMs ─▶ flush ...
//           still firing, nothing new: flush again after repeatIntervalMs
//   flush:  firing (not silenced) + resolved that were notified firing ─▶ one Notification, when
//           something is new (a firing alert not notified yet, a resolution) or a repeat is due
//
// An alert resolved before any notification listed it firing is never sent (a blip inside
// groupWaitMs). A silenced alert is kept and shown, never delivered. A flapping bot's stale alerts
// are `pending` (held back) until it has been stable for flap.windowMs.
import { randomUUID } from 'node:crypto';
import type {
  AlerterInput,
  AlertName,
  AlertView,
  NewSilence,
  Severity,
  SilenceView,
} from '../actors/alerter-messages.js';
import {
  checkMatcher,
  fingerprintOf,
  groupKeyOf,
  silenceMatches,
  silenceView,
  type Alert,
  type NotifiedAlert,
  type Notification,
  type Silence,
} from './model.js';

/** Resolved alerts stay visible (kissmon alerts, GET /alerts) this long. */
const RESOLVED_KEEP_MS = 3_600_000;
/** Expired silences stay listed this long. */
const EXPIRED_SILENCE_KEEP_MS = 86_400_000;
/** Forgetting old alerts and silences, and budget periods ending, are checked this often (not every tick). */
const HOUSEKEEPING_MS = 5_000;

export interface EngineSettings {
  groupWaitMs: number;
  groupIntervalMs: number;
  repeatIntervalMs: number;
  flapWindowMs: number;
  flapMaxTransitions: number;
  missingGraceMs: number;
  staleAfterMs: number;
  /**
   * This monitor's host name (config hostName): every alert carries it as its `host` label, so one
   * alert stream from many hosts says where. MonitorHostDown's own `host` (the host that is down) wins.
   */
  host: string;
}

interface Group {
  key: string;
  labels: Record<string, string>;
  members: Set<string>;
  lastFlushAt: number | null;
  nextAt: number | null;
  /** Fingerprints the last notification listed firing. */
  notifiedFiring: Set<string>;
}

interface FlapState {
  times: number[];
  flapping: boolean;
  last: number;
}

type Transition = Extract<AlerterInput, { type: 'transition' }>;
type Budget = Extract<AlerterInput, { type: 'budget' }>;

interface AlertSpec {
  alertname: AlertName;
  severity: Severity;
  labels: Record<string, string>;
  summary: string;
  description?: string;
  startsAt: number;
  pending?: boolean;
}

/** Which condition an alert belongs to: one active alert per key (a new reason or level replaces it). */
function ruleKeyOf(alertname: string, labels: Record<string, string>): string {
  if (labels.channel !== undefined) return `${alertname}/${labels.channel}`;
  if (labels.budget !== undefined) return `${alertname}/${labels.budget}/${labels.period}`;
  const rest = Object.keys(labels)
    .filter((k) => k !== 'alertname' && k !== 'severity')
    .sort();
  return `${alertname}/${rest.map((k) => `${k}=${labels[k]}`).join(',')}`;
}

const DEAD_REASONS: Record<string, string> = {
  process_exited: 'exited',
  pid_reused: 'is gone (its pid now belongs to another process)',
  exited_before_register: 'exited before its register was read',
};

const seconds = (ms: number) => `${Math.round(ms / 100) / 10} s`;

export class AlertEngine {
  readonly #settings: EngineSettings;
  readonly #notify: (notification: Notification) => void;
  readonly #alerts = new Map<string, Alert>();
  /** rule key → fingerprint of its alert that is not resolved. */
  readonly #active = new Map<string, string>();
  readonly #groups = new Map<string, Group>();
  readonly #silences = new Map<string, Silence & { covers: (labels: Record<string, string>) => boolean }>();
  readonly #flap = new Map<string, FlapState>();
  readonly #expected = new Set<string>();
  /** Channels the registry knows (registered at some point, not gone by an unplanned stop). */
  readonly #present = new Set<string>();
  /** Expected channels not present, and since when. */
  readonly #missingSince = new Map<string, number>();
  #presentLoaded = false;
  #activeSilences = '';
  #nextHousekeeping = 0;
  /** What the store has to write: fingerprints, group keys, silence ids (deleted when no longer held). */
  readonly dirty = { alerts: new Set<string>(), groups: new Set<string>(), silences: new Set<string>() };

  constructor(settings: EngineSettings, notify: (notification: Notification) => void) {
    this.#settings = settings;
    this.#notify = notify;
  }

  get settings(): EngineSettings {
    return this.#settings;
  }

  /**
   * State from the store after a restart: alerts and their groups' last flush, silences. What this
   * engine already holds wins (the database may open late, after inputs were applied).
   */
  load(alerts: Alert[], groups: Map<string, number>, silences: Silence[], now: number): void {
    for (const s of silences)
      if (!this.#silences.has(s.id)) this.#silences.set(s.id, { ...s, covers: silenceMatches(s.matcher) });
    this.#activeSilences = this.#activeSilenceKey(now);
    for (const alert of alerts) {
      if (this.#alerts.has(alert.fingerprint)) continue;
      const key = ruleKeyOf(alert.alertname, alert.labels);
      if (alert.state !== 'resolved') {
        if (this.#active.has(key)) continue;
        this.#active.set(key, alert.fingerprint);
      }
      this.#alerts.set(alert.fingerprint, alert);
      if (alert.state === 'resolved' && alert.resolvedNotified) continue;
      const group = this.#groupFor(alert);
      group.members.add(alert.fingerprint);
      if (alert.state === 'firing' && alert.notifiedAt !== null) group.notifiedFiring.add(alert.fingerprint);
    }
    for (const group of this.#groups.values()) {
      group.lastFlushAt ??= groups.get(group.key) ?? null;
      this.#schedule(group, now);
    }
  }

  /** The registry's channels as bot_status had them at start (any status counts as present). */
  setPresent(channels: Iterable<string>): void {
    for (const channel of channels) {
      this.#present.add(channel);
      this.#missingSince.delete(channel);
    }
    this.#presentLoaded = true;
  }

  /** The expected fleet; grace for channels new to it starts now. */
  setExpected(channels: Iterable<string>, now: number): void {
    const next = new Set(channels);
    for (const channel of this.#expected) {
      if (next.has(channel)) continue;
      this.#expected.delete(channel);
      this.#missingSince.delete(channel);
      this.#resolve(`BotMissing/${channel}`, now);
    }
    for (const channel of next) {
      if (this.#expected.has(channel)) continue;
      this.#expected.add(channel);
      if (!this.#present.has(channel)) this.#missingSince.set(channel, now);
    }
  }

  apply(input: AlerterInput, now: number): void {
    switch (input.type) {
      case 'transition':
        this.#transition(input, now);
        return;
      case 'budget':
        this.#budget(input, now);
        return;
      case 'digest':
        this.#notify({
          type: 'digest',
          id: randomUUID(),
          createdAt: now,
          title: input.title,
          text: input.text,
          data: input.data,
        });
        return;
      case 'monitor': {
        const labels = { ...input.labels };
        const key = ruleKeyOf(input.alertname, labels);
        if (!input.firing) {
          this.#resolve(key, now);
          return;
        }
        const severity: Severity = input.alertname === 'MonitorIngestPaused' ? 'warning' : 'critical';
        this.#fire(
          key,
          { alertname: input.alertname, severity, labels, summary: input.summary, startsAt: input.at },
          now,
        );
        return;
      }
      default:
        throw new TypeError(`unknown alerter input type ${String((input as { type?: string }).type)}`);
    }
  }

  /** A monitor that starts again has its actors back: the last run's Monitor* alerts are over. */
  resolveMonitorAlerts(now: number): void {
    for (const [key] of [...this.#active]) if (key.startsWith('Monitor')) this.#resolve(key, now);
  }

  #transition(t: Transition, now: number): void {
    const { channel } = t;
    const pid = t.pid === null ? '' : ` (pid ${t.pid})`;
    if ((t.from === 'stale' && t.to === 'online') || (t.from === 'online' && t.to === 'stale'))
      this.#recordFlap(channel, now);
    switch (t.to) {
      case 'stale':
        this.#present.add(channel);
        this.#fire(
          `BotStale/${channel}`,
          {
            alertname: 'BotStale',
            severity: 'warning',
            labels: { channel },
            startsAt: t.at,
            summary: `${channel}: no heartbeat for ${seconds(this.#settings.staleAfterMs)}${pid}; the process is still running (hung?)`,
            pending: this.#flap.get(channel)?.flapping === true,
          },
          now,
        );
        break;
      case 'online':
        this.#arrived(channel, now);
        this.#resolve(`BotStale/${channel}`, now);
        this.#resolve(`BotDead/${channel}`, now);
        break;
      case 'dead':
        this.#arrived(channel, now);
        this.#resolve(`BotStale/${channel}`, now);
        this.#fire(
          `BotDead/${channel}`,
          {
            alertname: 'BotDead',
            severity: 'critical',
            labels: { channel, reason: t.reason },
            startsAt: t.at,
            summary: `${channel}: process${pid} ${DEAD_REASONS[t.reason] ?? t.reason} without unregistering`,
          },
          now,
        );
        break;
      case 'offline':
        this.#resolve(`BotStale/${channel}`, now);
        this.#resolve(`BotDead/${channel}`, now);
        if (t.planned || !this.#expected.has(channel)) {
          this.#arrived(channel, now);
        } else {
          // An expected bot that stopped without saying why: missing unless it is back within the grace.
          this.#present.delete(channel);
          this.#missingSince.set(channel, now);
        }
        break;
      default:
        break;
    }
  }

  #arrived(channel: string, now: number): void {
    this.#present.add(channel);
    this.#missingSince.delete(channel);
    this.#resolve(`BotMissing/${channel}`, now);
  }

  #recordFlap(channel: string, now: number): void {
    const state = this.#flap.get(channel) ?? { times: [], flapping: false, last: now };
    this.#flap.set(channel, state);
    state.times.push(now);
    state.last = now;
    while (state.times.length > 0 && state.times[0] <= now - this.#settings.flapWindowMs) state.times.shift();
    if (state.flapping || state.times.length <= this.#settings.flapMaxTransitions) return;
    state.flapping = true;
    this.#fire(
      `BotFlapping/${channel}`,
      {
        alertname: 'BotFlapping',
        severity: 'warning',
        labels: { channel },
        startsAt: now,
        summary: `${channel}: ${state.times.length} changes between online and stale within ${seconds(this.#settings.flapWindowMs)}; its stale alerts are held until it is stable that long`,
      },
      now,
    );
    const stale = this.#activeAlert(`BotStale/${channel}`);
    if (stale?.state === 'firing') this.#setState(stale, 'pending', now);
  }

  #budget(b: Budget, now: number): void {
    const labelsOf = { budget: b.budget, period: b.period };
    const key = ruleKeyOf('LlmBudgetExceeded', labelsOf);
    const current = this.#activeAlert(key);
    if (current && b.periodStart < Date.parse(current.labels.period_start)) return; // a late word about an older period
    if (b.level === 'ok') {
      this.#resolve(key, now);
      return;
    }
    const start = new Date(b.periodStart).toISOString();
    const end = new Date(b.periodEnd).toISOString();
    const pct = Math.round(b.pct * 10) / 10;
    this.#fire(
      key,
      {
        alertname: 'LlmBudgetExceeded',
        severity: b.level,
        labels: { ...labelsOf, period_start: start, period_end: end },
        startsAt: b.at,
        summary: `LLM budget ${b.budget} (${b.period}): $${b.spentUsd.toFixed(2)} of $${b.limitUsd.toFixed(2)} spent (${pct} %)`,
      },
      now,
    );
  }

  #activeAlert(key: string): Alert | undefined {
    const fp = this.#active.get(key);
    return fp === undefined ? undefined : this.#alerts.get(fp);
  }

  #fire(key: string, spec: AlertSpec, now: number): void {
    const labels = { alertname: spec.alertname, severity: spec.severity, host: this.#settings.host, ...spec.labels };
    const fingerprint = fingerprintOf(labels);
    const activeFp = this.#active.get(key);
    if (activeFp === fingerprint) return; // already active: nothing new
    if (activeFp !== undefined) this.#resolve(key, now); // a new reason or level replaces the old alert
    const state = spec.pending ? 'pending' : 'firing';
    const annotations = spec.description
      ? { summary: spec.summary, description: spec.description }
      : { summary: spec.summary };
    const previous = this.#alerts.get(fingerprint);
    let alert: Alert;
    if (previous && !previous.resolvedNotified && previous.notifiedAt !== null) {
      // Back before its resolution went out: the receivers still see it firing, so it is the same alert.
      alert = previous;
      alert.state = state;
      alert.endsAt = null;
      alert.annotations = annotations;
    } else {
      alert = {
        fingerprint,
        alertname: spec.alertname,
        severity: spec.severity,
        labels,
        annotations,
        state,
        startsAt: spec.startsAt,
        endsAt: null,
        notifiedAt: null,
        resolvedNotified: false,
        lastDelivery: previous?.lastDelivery ?? null,
      };
      this.#alerts.set(fingerprint, alert);
    }
    this.#active.set(key, fingerprint);
    this.#changed(alert, now);
  }

  #resolve(key: string, now: number): void {
    const alert = this.#activeAlert(key);
    this.#active.delete(key);
    if (!alert) return;
    alert.state = 'resolved';
    alert.endsAt = now;
    // Never notified firing: nobody needs to hear it is over.
    if (alert.notifiedAt === null) alert.resolvedNotified = true;
    this.#changed(alert, now);
  }

  #setState(alert: Alert, state: Alert['state'], now: number): void {
    alert.state = state;
    this.#changed(alert, now);
  }

  #changed(alert: Alert, now: number): void {
    this.dirty.alerts.add(alert.fingerprint);
    const group = this.#groupFor(alert);
    group.members.add(alert.fingerprint);
    this.#schedule(group, now);
  }

  #groupFor(alert: Alert): Group {
    const labels = { alertname: alert.alertname };
    const key = groupKeyOf(labels);
    let group = this.#groups.get(key);
    if (!group) {
      group = { key, labels, members: new Set(), lastFlushAt: null, nextAt: null, notifiedFiring: new Set() };
      this.#groups.set(key, group);
    }
    return group;
  }

  /** Next flush: groupWaitMs after a new group's first alert, else at most every groupIntervalMs. */
  #schedule(group: Group, now: number): void {
    const due =
      group.lastFlushAt === null
        ? now + this.#settings.groupWaitMs
        : Math.max(now, group.lastFlushAt + this.#settings.groupIntervalMs);
    if (group.nextAt === null || due < group.nextAt) group.nextAt = due;
  }

  /** Runs the timers: flap damping ends, missing channels, budget periods, silences, group flushes. */
  tick(now: number): void {
    for (const [channel, state] of this.#flap) {
      if (state.flapping && now - state.last >= this.#settings.flapWindowMs) {
        state.flapping = false;
        state.times = [];
        this.#resolve(`BotFlapping/${channel}`, now);
        const stale = this.#activeAlert(`BotStale/${channel}`);
        if (stale?.state === 'pending') this.#setState(stale, 'firing', now);
      }
      if (!state.flapping && now - state.last >= this.#settings.flapWindowMs) this.#flap.delete(channel);
    }
    if (this.#presentLoaded) {
      for (const [channel, since] of this.#missingSince) {
        if (now - since < this.#settings.missingGraceMs || this.#active.has(`BotMissing/${channel}`)) continue;
        this.#fire(
          `BotMissing/${channel}`,
          {
            alertname: 'BotMissing',
            severity: 'warning',
            labels: { channel },
            startsAt: now,
            summary: `${channel} is expected but not registered (for ${seconds(now - since)})`,
          },
          now,
        );
      }
    }
    if (now >= this.#nextHousekeeping) this.#housekeeping(now);
    const silenceKey = this.#activeSilenceKey(now);
    if (silenceKey !== this.#activeSilences) {
      // A silence started or ended: what each group may send changed.
      this.#activeSilences = silenceKey;
      for (const group of this.#groups.values()) this.#schedule(group, now);
    }
    for (const group of [...this.#groups.values()])
      if (group.nextAt !== null && group.nextAt <= now) this.#flush(group, now);
  }

  #housekeeping(now: number): void {
    this.#nextHousekeeping = now + HOUSEKEEPING_MS;
    for (const [key, fp] of this.#active) {
      const alert = this.#alerts.get(fp)!;
      if (alert.alertname === 'LlmBudgetExceeded' && now >= Date.parse(alert.labels.period_end))
        this.#resolve(key, now);
    }
    for (const [id, s] of this.#silences) {
      if (s.endsAt < now - EXPIRED_SILENCE_KEEP_MS) {
        this.#silences.delete(id);
        this.dirty.silences.add(id);
      }
    }
    for (const [fp, alert] of this.#alerts) {
      if (alert.state === 'resolved' && alert.resolvedNotified && alert.endsAt! < now - RESOLVED_KEEP_MS) {
        this.#alerts.delete(fp);
        this.dirty.alerts.add(fp);
      }
    }
  }

  /** Flushes every group now, whatever its timers say (a monitor about to exit). */
  flushAll(now: number): void {
    for (const group of [...this.#groups.values()]) this.#flush(group, now);
  }

  #flush(group: Group, now: number): void {
    group.nextAt = null;
    const firing: Alert[] = [];
    const resolved: Alert[] = [];
    for (const fp of group.members) {
      const alert = this.#alerts.get(fp);
      if (!alert) {
        group.members.delete(fp);
        continue;
      }
      const silenced = this.#silencedBy(alert.labels, now).length > 0;
      if (alert.state === 'firing' && !silenced) firing.push(alert);
      else if (alert.state === 'resolved' && !alert.resolvedNotified) {
        if (!silenced) resolved.push(alert);
        else {
          alert.resolvedNotified = true;
          this.dirty.alerts.add(fp);
        }
      }
    }
    const isNew = firing.some((a) => !group.notifiedFiring.has(a.fingerprint));
    const repeatDue =
      firing.length > 0 && group.lastFlushAt !== null && now - group.lastFlushAt >= this.#settings.repeatIntervalMs;
    if (isNew || resolved.length > 0 || repeatDue) {
      const notified =
        (status: NotifiedAlert['status']) =>
        (a: Alert): NotifiedAlert => ({
          fingerprint: a.fingerprint,
          status,
          labels: a.labels,
          annotations: a.annotations,
          startsAt: a.startsAt,
          endsAt: a.endsAt,
        });
      this.#notify({
        type: 'alerts',
        id: randomUUID(),
        createdAt: now,
        groupKey: group.key,
        groupLabels: group.labels,
        status: firing.length > 0 ? 'firing' : 'resolved',
        alerts: [...firing.map(notified('firing')), ...resolved.map(notified('resolved'))],
      });
      group.lastFlushAt = now;
      this.dirty.groups.add(group.key);
      for (const a of firing) {
        a.notifiedAt = now;
        this.dirty.alerts.add(a.fingerprint);
      }
      for (const a of resolved) {
        a.resolvedNotified = true;
        this.dirty.alerts.add(a.fingerprint);
      }
      group.notifiedFiring = new Set(firing.map((a) => a.fingerprint));
    } else {
      const still = new Set(firing.map((a) => a.fingerprint));
      for (const fp of group.notifiedFiring) if (!still.has(fp)) group.notifiedFiring.delete(fp);
    }
    for (const fp of group.members) {
      const alert = this.#alerts.get(fp)!;
      if (alert.state === 'resolved' && alert.resolvedNotified) group.members.delete(fp);
    }
    if (group.members.size === 0) {
      this.#groups.delete(group.key);
      this.dirty.groups.add(group.key);
      return;
    }
    // Pending or not-yet-due members are picked up by the flush their next change schedules.
    if (firing.length > 0) group.nextAt = (group.lastFlushAt ?? now) + this.#settings.repeatIntervalMs;
  }

  /** A delivery result for the alerts a notification listed (shown as lastDelivery). */
  delivered(fingerprints: string[], result: Alert['lastDelivery']): void {
    for (const fp of fingerprints) {
      const alert = this.#alerts.get(fp);
      if (!alert) continue;
      alert.lastDelivery = result;
      this.dirty.alerts.add(fp);
    }
  }

  #silencedBy(labels: Record<string, string>, now: number): string[] {
    const ids: string[] = [];
    for (const s of this.#silences.values())
      if (s.startsAt <= now && now < s.endsAt && s.covers(labels)) ids.push(s.id);
    return ids;
  }

  #activeSilenceKey(now: number): string {
    return [...this.#silences.values()]
      .filter((s) => s.startsAt <= now && now < s.endsAt)
      .map((s) => s.id)
      .join(',');
  }

  addSilence(input: NewSilence, now: number): SilenceView {
    if (!(input.forMs > 0) || !Number.isFinite(input.forMs)) throw new TypeError('for must be a positive duration');
    const matcher = checkMatcher(input.matcher);
    const silence: Silence = {
      id: randomUUID(),
      matcher,
      startsAt: now,
      endsAt: now + input.forMs,
      comment: input.comment.slice(0, 500),
      createdBy: input.createdBy.slice(0, 100),
    };
    this.#silences.set(silence.id, { ...silence, covers: silenceMatches(matcher) });
    this.dirty.silences.add(silence.id);
    this.tick(now); // alerts it covers stop being delivered from this flush on
    return silenceView(silence, now);
  }

  /** Ends a silence (it is deleted, not expired); false when there is none with that id. */
  removeSilence(id: string, now: number): boolean {
    if (!this.#silences.delete(id)) return false;
    this.dirty.silences.add(id);
    this.tick(now);
    return true;
  }

  silence(id: string): Silence | undefined {
    const s = this.#silences.get(id);
    if (!s) return undefined;
    const { covers: _covers, ...silence } = s;
    return silence;
  }

  alert(fingerprint: string): Alert | undefined {
    return this.#alerts.get(fingerprint);
  }

  group(key: string): number | null | undefined {
    return this.#groups.get(key)?.lastFlushAt;
  }

  alertViews(now: number): AlertView[] {
    const iso = (ms: number) => new Date(ms).toISOString();
    return [...this.#alerts.values()]
      .sort((a, b) => a.startsAt - b.startsAt || a.fingerprint.localeCompare(b.fingerprint))
      .map((a) => {
        const silencedBy = this.#silencedBy(a.labels, now);
        return {
          fingerprint: a.fingerprint,
          alertname: a.alertname,
          severity: a.severity,
          labels: a.labels,
          annotations: a.annotations,
          state: a.state,
          startsAt: iso(a.startsAt),
          endsAt: a.endsAt === null ? null : iso(a.endsAt),
          silenced: silencedBy.length > 0,
          silencedBy,
          lastDelivery: a.lastDelivery,
        };
      });
  }

  silenceViews(now: number): SilenceView[] {
    return [...this.#silences.values()].sort((a, b) => a.startsAt - b.startsAt).map((s) => silenceView(s, now));
  }

  /** Alerts by alertname and state (metrics), and how many are active. */
  counts(): { alertname: string; state: string; count: number }[] {
    const counts = new Map<string, number>();
    for (const a of this.#alerts.values())
      counts.set(`${a.alertname}\u0000${a.state}`, (counts.get(`${a.alertname}\u0000${a.state}`) ?? 0) + 1);
    return [...counts].map(([k, count]) => {
      const [alertname, state] = k.split('\u0000');
      return { alertname, state, count };
    });
  }

  get size(): number {
    return this.#alerts.size;
  }
}
