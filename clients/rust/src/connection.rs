//! The background thread that owns the connection, and the bounded queue it shares with callers.
//!
//! ```text
//!            first message
//!   idle ──────────────────▶ connect ──ok──▶ connected ──write error / EOF──▶ backoff ─┐
//!                              ▲  │ refused / absent                                    │
//!                              │  └──────────────────────────────────────▶ backoff     │
//!                              └─────────────── (100 ms doubling to 5 s, jittered) ◀────┘
//!   any state ── close() ──▶ flush for at most close_timeout ──▶ closed
//! ```
//!
//! Rules that keep the bot safe:
//! - Callers only take the mutex for a few field updates; the thread never holds it during I/O,
//!   so a frozen monitor cannot make a caller wait.
//! - The queue is bounded: one pending heartbeat (later ones coalesce), at most `capacity`
//!   llm_usage lines counting those the thread has taken but not yet written, then drops counted.
//! - Every connection sends `register` first (the monitor may have restarted and forgotten us).
//! - Lines taken from the queue but not fully written when a connection dies are queued again
//!   (a partly written line is re-sent whole); the monitor rejects the cut-off start of it at EOF
//!   as invalid JSON, counted, so nothing is stored twice or half.
use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::io::{ErrorKind, IoSlice, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::wire::{presence_line, register_line, Identity};
use crate::{State, Stats};

/// A blocked write returns after this long, so the thread can see close() and the deadline.
const WRITE_TIMEOUT: Duration = Duration::from_millis(100);
/// Bytes the thread takes from the queue for one write: bounded, so the queue keeps the data.
const BATCH_BYTES: usize = 64 * 1024;
const MAX_SLICES: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Register,
    Usage,
    Heartbeat,
    Unregister,
}

#[derive(Debug)]
pub(crate) struct Queue {
    /// register() called and no unregister() since: re-sent first on every connection.
    pub registered: bool,
    pub features: Option<String>,
    pub register_pending: bool,
    pub usage: VecDeque<String>,
    pub capacity: usize,
    pub heartbeat_pending: bool,
    pub unregister_pending: bool,
    /// Taken by the thread, not yet fully written.
    pub in_flight: usize,
    pub in_flight_usage: usize,
    pub closing: Option<Instant>,
    pub finished: bool,
    /// The counters, state and last error; stats() fills in the rest of the snapshot.
    pub stats: Stats,
    /// connect() found the options invalid: the client is closed and calls count as invalid.
    pub options_invalid: bool,
    /// The thread sleeps on `wake` only when this is set: callers skip the notify syscall otherwise.
    thread_waiting: bool,
    /// Bumped per connection; the reader of an older connection must not report its EOF.
    connection: u64,
    peer_closed: bool,
}

impl Queue {
    pub fn new(capacity: usize) -> Queue {
        Queue {
            registered: false,
            features: None,
            register_pending: false,
            usage: VecDeque::new(),
            capacity,
            heartbeat_pending: false,
            unregister_pending: false,
            in_flight: 0,
            in_flight_usage: 0,
            closing: None,
            finished: false,
            stats: Stats::default(),
            options_invalid: false,
            thread_waiting: false,
            connection: 0,
            peer_closed: false,
        }
    }

    fn has_work(&self) -> bool {
        self.register_pending || !self.usage.is_empty() || self.heartbeat_pending || self.unregister_pending
    }

    /// A call on a closed client: counted, `false`.
    pub fn refuse(&mut self) -> bool {
        if self.options_invalid {
            self.stats.invalid += 1;
        } else {
            self.stats.dropped_closed += 1;
        }
        false
    }

    pub fn unregister(&mut self) {
        self.registered = false;
        self.register_pending = false;
        self.heartbeat_pending = false;
        self.unregister_pending = true;
    }

    pub fn buffered_usage(&self) -> usize {
        self.usage.len() + self.in_flight_usage
    }

    pub fn buffered(&self) -> usize {
        self.usage.len() + self.in_flight + [self.register_pending, self.heartbeat_pending, self.unregister_pending].iter().filter(|&&b| b).count()
    }
}

pub(crate) struct Shared {
    pub queue: Mutex<Queue>,
    wake: Condvar,
    /// close() waits here for the thread to finish.
    pub done: Condvar,
}

impl Shared {
    pub fn new(queue: Queue) -> Shared {
        Shared { queue: Mutex::new(queue), wake: Condvar::new(), done: Condvar::new() }
    }

    /// A poisoned lock only means a panic elsewhere; the queue's fields stay consistent.
    pub fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn heartbeat(&self) -> bool {
        let mut q = self.lock();
        if q.closing.is_some() {
            return q.refuse();
        }
        if q.heartbeat_pending {
            q.stats.coalesced += 1;
        } else {
            q.heartbeat_pending = true;
        }
        self.notify(&q);
        true
    }

    /// Call after changing the queue, with the lock held.
    pub fn notify(&self, q: &Queue) {
        if q.thread_waiting {
            self.wake.notify_one();
        }
    }
}

pub(crate) struct Settings {
    pub path: PathBuf,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

struct Outgoing {
    kind: Kind,
    line: String,
}

struct Connection {
    stream: UnixStream,
    since: Instant,
}

/// The connection thread's own state; only it touches these.
struct Worker {
    shared: Arc<Shared>,
    id: Arc<Identity>,
    settings: Settings,
    connection: Option<Connection>,
    pending: VecDeque<Outgoing>,
    /// Bytes of `pending[0]` the kernel already took.
    offset: usize,
    backoff: Duration,
    next_attempt: Instant,
    ever_connected: bool,
    /// close() found no connection: one immediate attempt is made, then the thread gives up.
    close_attempted: bool,
}

pub(crate) fn spawn(shared: Arc<Shared>, id: Arc<Identity>, settings: Settings) -> std::io::Result<thread::JoinHandle<()>> {
    let backoff = settings.backoff_initial;
    let mut worker = Worker {
        shared,
        id,
        settings,
        connection: None,
        pending: VecDeque::new(),
        offset: 0,
        backoff,
        next_attempt: Instant::now(),
        ever_connected: false,
        close_attempted: false,
    };
    thread::Builder::new().name("kissbot-monitor".into()).stack_size(128 * 1024).spawn(move || worker.run())
}

impl Worker {
    fn run(&mut self) {
        let shared = Arc::clone(&self.shared);
        loop {
            let mut q = shared.lock();
            let now = Instant::now();
            if let Some(deadline) = q.closing {
                let drained = !q.has_work() && self.pending.is_empty();
                if drained || now >= deadline || (self.connection.is_none() && self.close_attempted) {
                    self.finish(q);
                    return;
                }
            }
            if self.connection.is_none() {
                // A registered bot keeps a connection even with nothing to send, so a restarted
                // monitor learns of it at once rather than at its next message.
                if !q.has_work() && self.pending.is_empty() && !q.registered {
                    drop(self.wait(q, None));
                    continue;
                }
                if q.closing.is_some() {
                    self.close_attempted = true;
                } else if now < self.next_attempt {
                    drop(self.wait(q, Some(self.next_attempt - now)));
                    continue;
                }
                q.stats.state = State::Connecting;
                drop(q);
                self.connect();
                continue;
            }
            if q.peer_closed {
                q.stats.last_error = Some("connection closed by the monitor".into());
                self.lost(q);
                continue;
            }
            // A new batch only once the last one is fully written: while the monitor is frozen,
            // later heartbeats coalesce in the queue instead of piling up in `pending`.
            if self.pending.is_empty() {
                self.take_batch(&mut q);
            }
            if self.pending.is_empty() {
                let timeout = q.closing.map(|deadline| deadline.saturating_duration_since(now));
                drop(self.wait(q, timeout));
                continue;
            }
            drop(q);
            self.write();
        }
    }

    fn wait<'a>(&self, mut q: MutexGuard<'a, Queue>, timeout: Option<Duration>) -> MutexGuard<'a, Queue> {
        q.thread_waiting = true;
        let mut q = match timeout {
            Some(t) => self.shared.wake.wait_timeout(q, t).unwrap_or_else(|e| e.into_inner()).0,
            None => self.shared.wake.wait(q).unwrap_or_else(|e| e.into_inner()),
        };
        q.thread_waiting = false;
        q
    }

    fn connect(&mut self) {
        let attempt = UnixStream::connect(&self.settings.path).and_then(|stream| {
            stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
            let reader = stream.try_clone()?;
            Ok((stream, reader))
        });
        let shared = Arc::clone(&self.shared);
        let mut q = shared.lock();
        match attempt {
            Ok((stream, reader)) => {
                q.connection += 1;
                q.peer_closed = false;
                if self.ever_connected {
                    q.stats.reconnects += 1;
                }
                self.ever_connected = true;
                // The monitor may have restarted and forgotten us: register goes first.
                if q.registered {
                    q.register_pending = true;
                }
                q.stats.state = State::Connected;
                let generation = q.connection;
                drop(q);
                self.connection = Some(Connection { stream, since: Instant::now() });
                self.spawn_reader(reader, generation);
            }
            Err(err) => {
                q.stats.connect_failures += 1;
                q.stats.last_error = Some(err.to_string());
                self.schedule_reconnect(&mut q);
            }
        }
    }

    /// The monitor never replies; a blocked read on a clone of the stream learns at once when it
    /// goes away (EOF), so the bot reconnects and registers again without waiting for a message.
    fn spawn_reader(&self, mut reader: UnixStream, generation: u64) {
        let shared = Arc::clone(&self.shared);
        let spawned = thread::Builder::new().name("kissbot-monitor-reader".into()).stack_size(32 * 1024).spawn(move || {
            let mut buf = [0u8; 512];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let mut q = shared.lock();
            if q.connection == generation {
                q.peer_closed = true;
                shared.notify(&q);
            }
        });
        // Without a reader a dead monitor is still noticed, on the next write.
        if let Err(err) = spawned {
            self.shared.lock().stats.last_error = Some(format!("no reader thread: {err}"));
        }
    }

    fn schedule_reconnect(&mut self, q: &mut Queue) {
        q.stats.state = State::Backoff;
        let base = self.backoff;
        self.backoff = (base * 2).min(self.settings.backoff_max);
        // Jitter into [base/2, base]: after a monitor restart, a fleet must not reconnect at once.
        let random = RandomState::new().build_hasher().finish();
        let delay = base / 2 + base.mul_f64((random % 1000) as f64 / 2000.0);
        self.next_attempt = Instant::now() + delay;
    }

    /// Moves lines from the queue to `pending`, in the order register, usage, heartbeat, unregister.
    fn take_batch(&mut self, q: &mut Queue) {
        let mut bytes = 0;
        if q.register_pending {
            q.register_pending = false;
            let line = register_line(&self.id, q.features.as_deref());
            bytes += self.take(q, Kind::Register, line);
        }
        while bytes < BATCH_BYTES {
            match q.usage.pop_front() {
                Some(line) => bytes += self.take(q, Kind::Usage, line),
                None => break,
            }
        }
        if !q.usage.is_empty() {
            return; // heartbeat and unregister go after the older usage lines
        }
        if q.heartbeat_pending {
            q.heartbeat_pending = false;
            let line = presence_line(&self.id, "heartbeat");
            self.take(q, Kind::Heartbeat, line);
        }
        if q.unregister_pending {
            q.unregister_pending = false;
            let line = presence_line(&self.id, "unregister");
            self.take(q, Kind::Unregister, line);
        }
    }

    fn take(&mut self, q: &mut Queue, kind: Kind, line: String) -> usize {
        q.in_flight += 1;
        if kind == Kind::Usage {
            q.in_flight_usage += 1;
        }
        let len = line.len();
        self.pending.push_back(Outgoing { kind, line });
        len
    }

    fn write(&mut self) {
        let shared = Arc::clone(&self.shared);
        let Some(connection) = self.connection.as_mut() else { return };
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(MAX_SLICES.min(self.pending.len()));
        for (i, o) in self.pending.iter().take(MAX_SLICES).enumerate() {
            let bytes = o.line.as_bytes();
            slices.push(IoSlice::new(if i == 0 { &bytes[self.offset..] } else { bytes }));
        }
        let result = connection.stream.write_vectored(&slices);
        drop(slices);
        match result {
            Ok(0) => {
                let mut q = shared.lock();
                q.stats.last_error = Some("the socket took no bytes".into());
                self.lost(q);
            }
            Ok(mut n) => {
                let (mut sent, mut usage) = (0, 0);
                while n > 0 {
                    let Some(first) = self.pending.front() else { break };
                    let rest = first.line.len() - self.offset;
                    if n < rest {
                        self.offset += n;
                        break;
                    }
                    n -= rest;
                    self.offset = 0;
                    if first.kind == Kind::Usage {
                        usage += 1;
                    }
                    self.pending.pop_front();
                    sent += 1;
                }
                let mut q = shared.lock();
                q.stats.sent += sent;
                q.in_flight -= sent as usize;
                q.in_flight_usage -= usage;
            }
            // The monitor is not reading (frozen, or slow): try again after checking for close().
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(e) => {
                let mut q = shared.lock();
                q.stats.last_error = Some(e.to_string());
                self.lost(q);
            }
        }
    }

    /// The connection is gone: what was not fully written goes back to the queue.
    fn lost(&mut self, mut q: MutexGuard<'_, Queue>) {
        if let Some(connection) = self.connection.take() {
            let _ = connection.stream.shutdown(Shutdown::Both); // also ends the reader thread
            // A connection that stayed up a while means the monitor is healthy: retry fast.
            if connection.since.elapsed() >= self.settings.backoff_max {
                self.backoff = self.settings.backoff_initial;
            }
        }
        q.connection += 1;
        q.peer_closed = false;
        self.offset = 0;
        while let Some(o) = self.pending.pop_back() {
            match o.kind {
                Kind::Register => {} // sent again first on the next connection
                Kind::Usage => {
                    q.usage.push_front(o.line);
                    q.stats.requeued += 1;
                }
                Kind::Heartbeat => {
                    q.heartbeat_pending = true;
                    q.stats.requeued += 1;
                }
                Kind::Unregister => {
                    if !q.registered {
                        q.unregister_pending = true;
                        q.stats.requeued += 1;
                    }
                }
            }
        }
        q.in_flight = 0;
        q.in_flight_usage = 0;
        if q.closing.is_some() {
            self.close_attempted = true;
        }
        self.schedule_reconnect(&mut q);
    }

    fn finish(&mut self, mut q: MutexGuard<'_, Queue>) {
        if let Some(connection) = self.connection.take() {
            // Everything written is in the monitor's receive buffer already; shutdown keeps it.
            let _ = connection.stream.shutdown(Shutdown::Both);
        }
        let leftover = self.pending.iter().filter(|o| o.kind != Kind::Register).count()
            + q.usage.len()
            + usize::from(q.heartbeat_pending)
            + usize::from(q.unregister_pending);
        q.stats.dropped_closed += leftover as u64;
        self.pending.clear();
        q.usage.clear();
        q.heartbeat_pending = false;
        q.unregister_pending = false;
        q.register_pending = false;
        q.in_flight = 0;
        q.in_flight_usage = 0;
        q.stats.state = State::Closed;
        q.finished = true;
        self.shared.done.notify_all();
    }
}
