#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod connection;
#[cfg(test)]
mod schema_check;
mod wire;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use connection::{Queue, Settings, Shared};
use wire::{features_json, is_channel, is_pid, is_token, llm_usage_line, usage_problem, Identity};

pub use wire::limits;
pub use wire::LlmUsage;

/// The socket the monitor listens on when neither the options nor `KISSBOT_MONITOR_SOCKET` say.
pub const DEFAULT_SOCKET: &str = "/tmp/kissbot_monitor.sock";

/// How a [`MonitorClient`] is set up. Built with [`Options::new`] and the setters below.
#[derive(Debug, Clone)]
pub struct Options {
    channel: String,
    pid: u32,
    socket_path: Option<PathBuf>,
    token: Option<String>,
    heartbeat_interval: Option<Duration>,
    queue_capacity: usize,
    close_timeout: Duration,
    backoff_initial: Duration,
    backoff_max: Duration,
}

impl Options {
    /// `channel`: the bot's key, 1-64 characters of `[A-Za-z0-9_]`. `pid`: usually `std::process::id()`.
    pub fn new(channel: impl Into<String>, pid: u32) -> Options {
        Options {
            channel: channel.into(),
            pid,
            socket_path: None,
            token: None,
            heartbeat_interval: None,
            queue_capacity: 1000,
            close_timeout: Duration::from_secs(1),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }

    /// Default: env `KISSBOT_MONITOR_SOCKET`, else [`DEFAULT_SOCKET`].
    pub fn socket_path(mut self, path: impl Into<PathBuf>) -> Options {
        self.socket_path = Some(path.into());
        self
    }

    /// The auth token (monitor started with `--auth-tokens`), sent on every message.
    /// Default: env `KISSBOT_MONITOR_TOKEN`, else none.
    pub fn token(mut self, token: impl Into<String>) -> Options {
        self.token = Some(token.into());
        self
    }

    /// When set, `register()` also starts the heartbeat thread at this interval (as
    /// [`MonitorClient::start_heartbeat`] does). Keep it at most a third of the monitor's `--stale-after`.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Options {
        self.heartbeat_interval = Some(interval);
        self
    }

    /// llm_usage lines held while the monitor cannot take them; more are dropped and counted. Default 1000.
    pub fn queue_capacity(mut self, capacity: usize) -> Options {
        self.queue_capacity = capacity;
        self
    }

    /// The longest `close()` (and `Drop`) spends flushing. Default 1 s.
    pub fn close_timeout(mut self, timeout: Duration) -> Options {
        self.close_timeout = timeout;
        self
    }

    /// Reconnect backoff: the first delay, doubling up to `max`, jittered. Default 100 ms and 5 s.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Options {
        self.backoff_initial = initial;
        self.backoff_max = max;
        self
    }

    fn resolved_socket_path(&self) -> PathBuf {
        self.socket_path.clone().unwrap_or_else(|| match std::env::var_os("KISSBOT_MONITOR_SOCKET") {
            Some(path) if !path.is_empty() => PathBuf::from(path),
            _ => PathBuf::from(DEFAULT_SOCKET),
        })
    }

    fn resolved_token(&self) -> Option<String> {
        self.token.clone().or_else(|| std::env::var("KISSBOT_MONITOR_TOKEN").ok().filter(|t| !t.is_empty()))
    }

    /// The check [`MonitorClient::connect`] makes. With invalid options `connect` still returns a
    /// client, but a closed one whose every call returns `false`; call this first to find out why.
    pub fn validate(&self) -> Result<(), InvalidOptions> {
        if !is_channel(&self.channel) {
            return Err(InvalidOptions("options.channel must be 1-64 characters of [A-Za-z0-9_]"));
        }
        if !is_pid(self.pid) {
            return Err(InvalidOptions("options.pid must be from 1 to 2147483647"));
        }
        let path = self.resolved_socket_path();
        if path.as_os_str().is_empty() || path.as_os_str().len() >= 108 {
            return Err(InvalidOptions("options.socket_path must be a path shorter than 108 bytes"));
        }
        if let Some(token) = self.resolved_token() {
            if !is_token(&token) {
                return Err(InvalidOptions("options.token must be at most 256 characters"));
            }
        }
        if self.heartbeat_interval == Some(Duration::ZERO) {
            return Err(InvalidOptions("options.heartbeat_interval must be positive"));
        }
        if self.backoff_initial.is_zero() || self.backoff_max < self.backoff_initial {
            return Err(InvalidOptions("options.backoff must be positive with max >= initial"));
        }
        Ok(())
    }
}

/// Why [`Options::validate`] refused the options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidOptions(&'static str);

impl fmt::Display for InvalidOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for InvalidOptions {}

/// Where the connection thread is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum State {
    /// Nothing sent yet: the first message starts the connection.
    #[default]
    Idle,
    /// A connect attempt is under way (on a Unix socket it settles at once).
    Connecting,
    /// Connected; lines go out as the monitor reads them.
    Connected,
    /// No connection; the next attempt comes after a jittered, capped backoff.
    Backoff,
    /// `close()` finished, or the options were invalid.
    Closed,
}

/// What the client did, as seen from the bot. Every message is in exactly one of `sent`,
/// `buffered`, `coalesced` (heartbeats) or `dropped`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stats {
    /// Where the connection thread is.
    pub state: State,
    /// Lines the kernel took (a re-queued line counts again when re-sent).
    pub sent: u64,
    /// Messages waiting in the client, taken-but-unwritten ones included: at most `queue_capacity`
    /// usage lines plus a register, a heartbeat and an unregister both queued and being written.
    pub buffered: usize,
    /// llm_usage lines among them: at most `queue_capacity`.
    pub buffered_usage: usize,
    /// A heartbeat waits to be sent.
    pub heartbeat_pending: bool,
    /// Heartbeats folded into the one already waiting.
    pub coalesced: u64,
    /// Messages given up: `dropped_usage + invalid + dropped_closed`.
    pub dropped: u64,
    /// llm_usage that found the queue full.
    pub dropped_usage: u64,
    /// Refused locally because the monitor would refuse them (or the options were invalid); never sent.
    pub invalid: u64,
    /// Sent after close(), or still buffered when close() gave up.
    pub dropped_closed: u64,
    /// Lines taken back from a connection that died before the kernel had them, to send again.
    pub requeued: u64,
    /// Successful connections after the first.
    pub reconnects: u64,
    /// Connect attempts that failed (monitor absent, refusing, backlog full).
    pub connect_failures: u64,
    /// The last connection error or refusal reason.
    pub last_error: Option<String>,
}

struct HeartbeatThread {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: JoinHandle<()>,
}

/// Numbers client ids in a process, so two clients started in the same nanosecond differ.
static CLIENTS: AtomicU64 = AtomicU64::new(0);

/// One persistent connection to the monitor, owned by a background thread, that can never hurt
/// the bot: no call waits for the monitor, panics, or grows memory without bound. `Send + Sync`:
/// share it with an `Arc`. Dropping it is `close()`.
pub struct MonitorClient {
    shared: Arc<Shared>,
    id: Arc<Identity>,
    heartbeat_interval: Option<Duration>,
    close_timeout: Duration,
    /// `<pid>-<start ns>-<client>-`: with a per-call number, a usage id unique across restarts.
    usage_id_prefix: String,
    usage_seq: AtomicU64,
    heartbeat: Mutex<Option<HeartbeatThread>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl MonitorClient {
    /// Starts the connection thread and returns at once: it never fails or waits because the
    /// monitor is absent (the first message starts connecting). With invalid options (see
    /// [`Options::validate`]) the client is closed from the start, every call returns `false` and
    /// counts in `stats().invalid`, and `stats().last_error` says why.
    pub fn connect(options: Options) -> MonitorClient {
        let mut queue = Queue::new(options.queue_capacity);
        let id = Arc::new(Identity { channel: options.channel.clone(), pid: options.pid, token: options.resolved_token() });
        let start_ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let client_no = CLIENTS.fetch_add(1, Ordering::Relaxed);
        let problem = options.validate().err().map(|e| format!("invalid options: {e}"));
        if problem.is_some() {
            queue.options_invalid = true;
            queue.closing = Some(Instant::now());
            queue.finished = true;
            queue.stats.state = State::Closed;
            queue.stats.last_error = problem;
        }
        let valid = !queue.finished;
        let shared = Arc::new(Shared::new(queue));
        let mut thread = None;
        if valid {
            let settings = Settings { path: options.resolved_socket_path(), backoff_initial: options.backoff_initial, backoff_max: options.backoff_max };
            match connection::spawn(Arc::clone(&shared), Arc::clone(&id), settings) {
                Ok(handle) => thread = Some(handle),
                Err(err) => {
                    let mut q = shared.lock();
                    q.closing = Some(Instant::now());
                    q.finished = true;
                    q.stats.state = State::Closed;
                    q.stats.last_error = Some(format!("could not start the connection thread: {err}"));
                }
            }
        }
        MonitorClient {
            shared,
            id,
            heartbeat_interval: options.heartbeat_interval,
            close_timeout: options.close_timeout,
            usage_id_prefix: format!("{:x}-{:x}-{:x}-", options.pid, start_ns, client_no),
            usage_seq: AtomicU64::new(0),
            heartbeat: Mutex::new(None),
            thread: Mutex::new(thread),
        }
    }

    /// Registers the bot with `features` (e.g. `&[("llm", true)]`; `&[]` for none) and remembers
    /// them, so every later connection registers again first. `true`: handed to the connection's
    /// queue. `false`: the client is closed, or the features would be refused by the monitor
    /// (more than 64, a key longer than 64 characters, a repeated key; counted in `stats().invalid`).
    pub fn register(&self, features: &[(&str, bool)]) -> bool {
        let features = match features_json(features) {
            Ok(json) => (!features.is_empty()).then_some(json),
            Err(problem) => return self.refuse_invalid(problem),
        };
        {
            let mut q = self.shared.lock();
            if q.closing.is_some() {
                return q.refuse();
            }
            q.registered = true;
            q.features = features;
            q.register_pending = true;
            q.unregister_pending = false;
            self.shared.notify(&q);
        }
        if let Some(interval) = self.heartbeat_interval {
            if self.heartbeat.lock().unwrap_or_else(|e| e.into_inner()).is_none() {
                self.start_heartbeat(interval);
            }
        }
        true
    }

    /// Queues a heartbeat; one already waiting absorbs it (coalesced: the latest is enough).
    /// `false` only once the client is closed.
    pub fn heartbeat(&self) -> bool {
        self.shared.heartbeat()
    }

    /// Reports one LLM call. `true`: queued. `false`: the queue is full (`dropped_usage`), the
    /// fields would be refused by the monitor (`invalid`: see [`LlmUsage`] for the limits), or
    /// the client is closed (`dropped_closed`). Never blocks, never panics.
    pub fn log_llm_usage(&self, usage: LlmUsage) -> bool {
        if let Some(problem) = usage_problem(&usage) {
            return self.refuse_invalid(problem);
        }
        // A full queue is counted before the line is built: a long freeze costs no allocation per call.
        if !self.usage_has_room() {
            return false;
        }
        let line = match &usage.id {
            Some(id) => llm_usage_line(&self.id, &usage, id),
            None => {
                let seq = self.usage_seq.fetch_add(1, Ordering::Relaxed);
                llm_usage_line(&self.id, &usage, &format!("{}{seq:x}", self.usage_id_prefix))
            }
        };
        let mut q = self.shared.lock();
        if !Self::room_for_usage(&mut q) {
            return false;
        }
        q.usage.push_back(line);
        self.shared.notify(&q);
        true
    }

    fn usage_has_room(&self) -> bool {
        Self::room_for_usage(&mut self.shared.lock())
    }

    /// Counts the refusal when there is no room (closed, or the queue full).
    fn room_for_usage(q: &mut Queue) -> bool {
        if q.closing.is_some() {
            return q.refuse();
        }
        if q.buffered_usage() >= q.capacity {
            q.stats.dropped_usage += 1;
            return false;
        }
        true
    }

    /// Starts (or restarts) the heartbeat thread: one heartbeat every `interval`, the first one
    /// interval from now. `false` for a zero interval or a closed client.
    pub fn start_heartbeat(&self, interval: Duration) -> bool {
        if interval.is_zero() || self.shared.lock().closing.is_some() {
            return false;
        }
        self.stop_heartbeat();
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let shared = Arc::clone(&self.shared);
        let stop_seen = Arc::clone(&stop);
        let spawned = thread::Builder::new().name("kissbot-monitor-heartbeat".into()).stack_size(32 * 1024).spawn(move || {
            let (stopped, signal) = &*stop_seen;
            let mut next = Instant::now() + interval;
            loop {
                let guard = stopped.lock().unwrap_or_else(|e| e.into_inner());
                let wait = next.saturating_duration_since(Instant::now());
                let (guard, _) = signal.wait_timeout_while(guard, wait, |stopped| !*stopped).unwrap_or_else(|e| e.into_inner());
                if *guard {
                    return;
                }
                drop(guard);
                shared.heartbeat();
                // A late wake (a busy machine) does not cause a burst of catch-up beats.
                next = (next + interval).max(Instant::now());
            }
        });
        match spawned {
            Ok(handle) => {
                *self.heartbeat.lock().unwrap_or_else(|e| e.into_inner()) = Some(HeartbeatThread { stop, handle });
                true
            }
            Err(err) => {
                self.shared.lock().stats.last_error = Some(format!("could not start the heartbeat thread: {err}"));
                false
            }
        }
    }

    /// Stops the heartbeat thread, if one runs.
    pub fn stop_heartbeat(&self) {
        let running = self.heartbeat.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(beat) = running {
            let (stopped, signal) = &*beat.stop;
            *stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
            signal.notify_one();
            let _ = beat.handle.join();
        }
    }

    /// Says goodbye: stops the heartbeat thread (a later heartbeat would register the bot again),
    /// stops re-registering on reconnect, and queues `unregister` after what is still queued.
    /// `false` only once the client is closed.
    pub fn unregister(&self) -> bool {
        self.stop_heartbeat();
        let mut q = self.shared.lock();
        if q.closing.is_some() {
            return q.refuse();
        }
        q.unregister();
        self.shared.notify(&q);
        true
    }

    /// Unregisters (if registered), flushes for at most `close_timeout`, closes the connection and
    /// stops the threads. Idempotent; `Drop` calls it. What is still queued when it gives up is
    /// counted in `dropped_closed`; calls after it return `false`.
    pub fn close(&self) {
        self.stop_heartbeat();
        let deadline = Instant::now() + self.close_timeout;
        let mut q = self.shared.lock();
        if q.closing.is_none() {
            if q.registered {
                q.unregister();
            }
            q.closing = Some(deadline);
            self.shared.notify(&q);
        }
        // The thread checks its deadline at least every write timeout (100 ms); allow for that.
        let give_up = deadline + Duration::from_millis(250);
        while !q.finished {
            let left = give_up.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break; // blocked in a connect to a frozen monitor's full backlog: it ends on its own
            }
            q = self.shared.done.wait_timeout(q, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        let finished = q.finished;
        drop(q);
        if finished {
            if let Some(handle) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let _ = handle.join();
            }
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let q = self.shared.lock();
        let s = &q.stats;
        Stats {
            buffered: q.buffered(),
            buffered_usage: q.buffered_usage(),
            heartbeat_pending: q.heartbeat_pending,
            dropped: s.dropped_usage + s.invalid + s.dropped_closed,
            last_error: s.last_error.clone(),
            ..*s
        }
    }

    fn refuse_invalid(&self, problem: &'static str) -> bool {
        let mut q = self.shared.lock();
        q.stats.invalid += 1;
        q.stats.last_error = Some(problem.to_string());
        false
    }
}

impl Drop for MonitorClient {
    fn drop(&mut self) {
        self.close();
    }
}

impl fmt::Debug for MonitorClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitorClient").field("channel", &self.id.channel).field("pid", &self.id.pid).field("stats", &self.stats()).finish()
    }
}
