"""
kissbot-monitor client for Python bots: a drop-in replacement for the old ``core/monitor_client.py``.

Same public names, signatures and return values (bool) as the old module; standard library only;
Python >= 3.9. What changed is inside:

- ``MonitorClient`` keeps ONE persistent, non-blocking connection instead of a connection per
  message. A call never waits on the monitor: when the socket cannot take a line (monitor frozen,
  slow, restarting or absent) the line goes to a small bounded buffer -- heartbeats coalesce to
  one, llm_usage is kept up to ``MAX_BUFFERED_USAGE`` lines, beyond that dropped and counted -- and
  the call returns False at once. The buffer is flushed by the event loop as soon as the socket
  accepts again.
- Every (re)connection sends ``register`` first, so after a monitor restart the bot is online again
  by itself. Reconnects back off from 0.1 s doubling to 5 s, with jitter.
- The legacy one-shot functions connect without blocking: an absent, refusing or frozen monitor
  (full listen backlog) fails at once instead of stalling the caller for ``timeout`` seconds.
- Optional auth token (``token=`` or env ``KISSBOT_MONITOR_TOKEN``) for a monitor started with
  ``--auth-tokens``; the socket path defaults to env ``KISSBOT_MONITOR_SOCKET``.

Usage::

    client = MonitorClient(channel="el_serda", pid=os.getpid())
    await client.register(features={"llm": True})
    await client.start_heartbeat()          # every 30 s
    await client.log_llm_usage("gpt-4o", "jokes", 145, 87, latency_ms=1850)
    ...
    await client.stop_heartbeat()
    await client.unregister()
    await client.close()                    # new: flushes (bounded) and closes the connection

See docs/CLIENT_GUIDE.md and docs/PROTOCOL.md in the kissbot-monitor repository.
"""

import asyncio
import atexit
import collections
import json
import logging
import math
import os
import random
import re
import socket
import threading
import time
import uuid
import weakref
from importlib import resources
from typing import Any, Deque, Dict, Optional

LOGGER = logging.getLogger(__name__)

# The protocol as the monitor defines it: protocol.schema.json ships inside this package, generated
# from the monitor's src/protocol (the monitor's test/protocol-drift.test.ts checks it is current).
PROTOCOL_SCHEMA: Dict[str, Any] = json.loads(
    resources.files("kissbot_monitor_client").joinpath("protocol.schema.json").read_text(encoding="utf-8")
)
_LIMITS: Dict[str, Any] = PROTOCOL_SCHEMA["x-limits"]
_DEFAULTS: Dict[str, str] = PROTOCOL_SCHEMA["x-defaults"]

# Configuration (module constants kept from the old module)
MONITOR_SOCKET_PATH: str = os.environ.get(_DEFAULTS["socketEnv"]) or _DEFAULTS["socketPath"]
SOCKET_TIMEOUT = 2.0  # seconds; upper bound for the legacy one-shot calls
HEARTBEAT_INTERVAL = 30  # seconds

PROTOCOL_VERSION: int = PROTOCOL_SCHEMA["x-protocol-version"]
MAX_BUFFERED_USAGE = 1000  # llm_usage lines held while the monitor cannot take them
BACKOFF_INITIAL = 0.1  # seconds
BACKOFF_MAX = 5.0
CLOSE_FLUSH_MAX = 1.0  # close() flushes for at most min(timeout, this) seconds
ONE_SHOT_TAIL_TIMEOUT = 0.25  # a one-shot line larger than an empty socket buffer (rare) gets this long

# Limits the monitor enforces; lines breaking them are refused there. The patterns are JavaScript
# regular expressions that Python reads the same way; always fullmatch (Python's $ also matches
# before a trailing newline).
_CHANNEL = re.compile(_LIMITS["channelPattern"])
_MAX_PID: int = _LIMITS["maxPid"]
_MAX_TOKENS: int = _LIMITS["maxTokens"]
_MAX_MODEL: int = _LIMITS["maxModelLength"]
_MAX_FEATURE: int = _LIMITS["maxFeatureLength"]
_MAX_USAGE_ID: int = _LIMITS["maxUsageIdLength"]
_MAX_FEATURES: int = _LIMITS["maxFeatures"]
_MAX_TOKEN_LENGTH: int = _LIMITS["maxTokenLength"]
# At most maxFeatureLength code points, a surrogate pair counting as one.
_FEATURE_KEY = re.compile(_LIMITS["featureKeyPattern"])
_MAX_LATENCY_MS: int = _LIMITS["maxLatencyMs"]
_MAX_PROVIDER: int = _LIMITS["maxProviderLength"]
_MAX_ERROR_TYPE: int = _LIMITS["maxErrorTypeLength"]
_MAX_REQUEST_ID: int = _LIMITS["maxRequestIdLength"]
_CALL_STATUSES = tuple(m["const"] for m in PROTOCOL_SCHEMA["$defs"]["llm_usage"]["properties"]["status"]["anyOf"])


def _optional_text(value: Any, max_length: int) -> bool:
    return value is None or (isinstance(value, str) and 1 <= len(value) <= max_length)


def _default_token(token: Optional[str]) -> Optional[str]:
    if token is not None:
        return token
    return os.environ.get(_DEFAULTS["tokenEnv"]) or None


def _message(kind: str, channel: str, token: Optional[str], **fields: Any) -> Dict[str, Any]:
    message: Dict[str, Any] = {"type": kind, "channel": channel}
    message.update(fields)
    message["v"] = PROTOCOL_VERSION
    message["ts"] = int(time.time() * 1000)
    if token is not None:
        message["token"] = token
    return message


def _encode(message: Dict[str, Any]) -> bytes:
    # ensure_ascii (the default) keeps the line pure ASCII: it can never fail to encode.
    return (json.dumps(message, separators=(",", ":")) + "\n").encode("ascii")


def _features_problem(features: Dict[str, bool]) -> Optional[str]:
    """Why the monitor would refuse these (already cleaned) features, or None."""
    if len(features) > _MAX_FEATURES:
        return "more than %d entries" % _MAX_FEATURES
    if not all(_FEATURE_KEY.fullmatch(k) for k in features):
        return "a key longer than %d characters" % _MAX_FEATURE
    return None


def _clean_features(features: Optional[Dict[str, Any]]) -> Dict[str, bool]:
    if not features:
        return {}
    clean = {str(k): bool(v) for k, v in features.items()}
    if _features_problem(clean):
        LOGGER.warning(
            "Monitor will refuse these features: at most %d entries with keys of at most %d characters",
            _MAX_FEATURES,
            _MAX_FEATURE,
        )
    return clean


def _token_count(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and 0 <= value <= _MAX_TOKENS:
        return value
    return None


def _running_loop() -> Optional[asyncio.AbstractEventLoop]:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


# ============================================================================
# MonitorClient
# ============================================================================


class MonitorClient:
    """
    Client for the kissbot monitor over its Unix socket (JSON lines, fire-and-forget, no replies).

    Message types: register, heartbeat, unregister, llm_usage (docs/PROTOCOL.md).

    Every async method returns True when its line was handed to the socket, False when it could
    not be sent now (buffered for the next connection / drain, or dropped: see ``stats()``). None of
    them ever raises or waits because of the monitor.

    Example::

        client = MonitorClient(channel="el_serda", pid=1234)
        await client.register(features={"llm": True})
        await client.heartbeat()
        await client.unregister()
    """

    def __init__(
        self,
        channel: str,
        pid: int,
        socket_path: str = MONITOR_SOCKET_PATH,
        timeout: float = SOCKET_TIMEOUT,
        token: Optional[str] = None,
        max_buffered_usage: int = MAX_BUFFERED_USAGE,
    ):
        """
        Args:
            channel: the bot's key (Twitch login or user id): 1-64 characters of [A-Za-z0-9_]
            pid: the bot's process id
            socket_path: the monitor's Unix socket
            timeout: upper bound (seconds) for close() flushing (capped at 1 s); kept for compatibility
            token: auth token when the monitor runs with --auth-tokens (default env KISSBOT_MONITOR_TOKEN)
            max_buffered_usage: llm_usage lines held while the monitor cannot take them
        """
        self.channel = channel
        self.pid = pid
        self.socket_path = socket_path
        self.timeout = timeout
        self.token = _default_token(token)
        self.max_buffered_usage = max(0, int(max_buffered_usage))
        self._heartbeat_task: Optional["asyncio.Task[None]"] = None
        if not (isinstance(channel, str) and _CHANNEL.fullmatch(channel)):
            LOGGER.warning("Monitor will refuse channel %r: it must be 1-64 characters of [A-Za-z0-9_]", channel)
        if not (isinstance(pid, int) and not isinstance(pid, bool) and 1 <= pid <= _MAX_PID):
            LOGGER.warning("Monitor will refuse pid %r: it must be a positive integer", pid)
        if self.token is not None and len(self.token) > _MAX_TOKEN_LENGTH:
            LOGGER.warning("Monitor will refuse the token: it must be at most %d characters", _MAX_TOKEN_LENGTH)

        # One lock around the connection state: event-loop callbacks and calls never interleave
        # mid-line. Held only for non-blocking work (microseconds).
        self._lock = threading.RLock()
        self._sock: Optional[socket.socket] = None
        self._connected_at = 0.0
        self._ever_connected = False
        self._backoff = BACKOFF_INITIAL
        self._next_attempt = 0.0  # time.monotonic() before which no connect is attempted
        self._closed = False
        # The unsent tail of a line the kernel took only part of. It must go before anything else
        # or the stream is corrupted; `_out_line`/`_out_kind` allow re-queueing the whole line.
        self._out = b""
        self._out_line: Optional[bytes] = None
        self._out_kind: Optional[str] = None
        # What waits for the socket, sent in this order: register, usage, heartbeat, unregister.
        self._registered = False  # register() called, no unregister() since: re-sent on every connection
        self._features: Dict[str, bool] = {}
        self._register_pending = False
        self._usage: Deque[bytes] = collections.deque()
        self._heartbeat_pending = False
        self._unregister_pending = False
        # Event-loop integration: a reader sees EOF when the monitor goes away, a writer flushes
        # the buffer once the socket accepts again, a timer retries connecting.
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._watch_fd = -1
        self._writing = False
        self._retry: Optional[asyncio.TimerHandle] = None
        self._stats = {
            "sent": 0,
            "coalesced": 0,
            "dropped_usage": 0,
            "invalid": 0,
            "dropped_closed": 0,
            "requeued": 0,
            "reconnects": 0,
            "connect_failures": 0,
        }
        self._last_error: Optional[str] = None
        _LIVE_CLIENTS.add(self)

    # ---- public API (old names and signatures) ----

    async def register(self, features: Optional[Dict[str, bool]] = None) -> bool:
        """
        Registers this bot (and re-registers it on every reconnection).

        Args:
            features: enabled features, e.g. {"llm": True, "translator": False}

        Returns:
            True if the register line was handed to the socket now; False if the monitor is not
            reachable yet -- it is sent as soon as it is.
        """
        with self._lock:
            if self._closed:
                self._stats["dropped_closed"] += 1
                return False
            self._registered = True
            self._features = _clean_features(features)
            self._unregister_pending = False
            self._register_pending = True
            if self._sock is None:
                self._connect()  # an explicit register tries right away, backoff or not
            else:
                self._flush()
            success = self._sock is not None and not self._register_pending
        if success:
            LOGGER.info("Registered with Monitor: %s (PID %s)", self.channel, self.pid)
        else:
            LOGGER.warning("Monitor not available, continuing without monitoring (will register when it is)")
        return success

    async def heartbeat(self) -> bool:
        """Sends a heartbeat. Returns True if handed to the socket, False if kept pending (coalesced)."""
        with self._lock:
            if self._closed:
                self._stats["dropped_closed"] += 1
                return False
            self._maybe_connect()
            if self._can_write() and self._send_line("heartbeat", self._line("heartbeat")):
                return True
            if self._heartbeat_pending:
                self._stats["coalesced"] += 1
            else:
                self._heartbeat_pending = True
            return False

    async def unregister(self) -> bool:
        """
        Unregisters this bot: stops the heartbeat task (a later heartbeat would register the bot
        again) and re-registration, then sends ``unregister`` after whatever is still buffered.

        Returns:
            True if the unregister line was handed to the socket now.
        """
        self._cancel_heartbeat_task()
        with self._lock:
            if self._closed:
                self._stats["dropped_closed"] += 1
                return False
            self._registered = False
            self._register_pending = False
            self._heartbeat_pending = False
            self._maybe_connect()
            success = self._can_write() and self._send_line("unregister", self._line("unregister"))
            if not success:
                self._unregister_pending = True
        if success:
            LOGGER.info("Unregistered from Monitor: %s", self.channel)
        return success

    async def log_llm_usage(
        self,
        model: str,
        feature: str,
        tokens_in: int,
        tokens_out: int,
        latency_ms: Optional[int] = None,
        call_id: Optional[str] = None,
        tokens_cached: Optional[int] = None,
        tokens_reasoning: Optional[int] = None,
        provider: Optional[str] = None,
        status: Optional[str] = None,
        error_type: Optional[str] = None,
        request_id: Optional[str] = None,
    ) -> bool:
        """
        Reports one LLM call.

        Args:
            model: model name, e.g. "gpt-4o" (1-128 characters)
            feature: the bot feature that called it, e.g. "jokes" (1-64 characters)
            tokens_in: input tokens (integer, 0..1e9)
            tokens_out: output tokens (integer, 0..1e9)
            latency_ms: call latency in milliseconds (optional)
            call_id: identifies this call (1-64 characters) so the monitor stores it once even if
                it is sent twice; default a random UUID. The line is built once, so a re-send after
                a reconnect keeps it.
            tokens_cached: input tokens served from the provider's cache, part of tokens_in (optional)
            tokens_reasoning: output tokens spent on reasoning, part of tokens_out (optional)
            provider: who served the call, e.g. "openai" (optional, 1-64 characters)
            status: "ok" | "error" | "timeout" | "rate_limited" (optional; absent means ok)
            error_type: the error class or code when status is not ok (optional)
            request_id: the provider's id of the response (optional)

        Returns:
            True if handed to the socket; False if buffered, dropped (buffer full) or refused here
            because the monitor would refuse it (see stats()).
        """
        t_in = _token_count(tokens_in)
        t_out = _token_count(tokens_out)
        t_cached = None if tokens_cached is None else _token_count(tokens_cached)
        t_reasoning = None if tokens_reasoning is None else _token_count(tokens_reasoning)
        valid = (
            isinstance(model, str)
            and 1 <= len(model) <= _MAX_MODEL
            and isinstance(feature, str)
            and 1 <= len(feature) <= _MAX_FEATURE
            and t_in is not None
            and t_out is not None
            and (
                latency_ms is None
                or (
                    isinstance(latency_ms, (int, float))
                    and not isinstance(latency_ms, bool)
                    and math.isfinite(latency_ms)
                    and 0 <= latency_ms <= _MAX_LATENCY_MS
                )
            )
            and (call_id is None or (isinstance(call_id, str) and 1 <= len(call_id) <= _MAX_USAGE_ID))
            # Parts of their totals: the monitor refuses a part above its total (invalid_token_parts).
            and (tokens_cached is None or (t_cached is not None and t_in is not None and t_cached <= t_in))
            and (tokens_reasoning is None or (t_reasoning is not None and t_out is not None and t_reasoning <= t_out))
            and _optional_text(provider, _MAX_PROVIDER)
            and (status is None or status in _CALL_STATUSES)
            and _optional_text(error_type, _MAX_ERROR_TYPE)
            and _optional_text(request_id, _MAX_REQUEST_ID)
        )
        with self._lock:
            if not valid:
                self._stats["invalid"] += 1
                LOGGER.debug("llm_usage refused locally (the monitor would refuse it): %r %r %r %r", model, feature, tokens_in, tokens_out)
                return False
            if self._closed:
                self._stats["dropped_closed"] += 1
                return False
            self._maybe_connect()
            writable = self._can_write()
            # Buffer full and nothing to send on: count it before building the line, so a long
            # freeze costs no allocation per call.
            if not writable and len(self._usage) >= self.max_buffered_usage:
                self._stats["dropped_usage"] += 1
                return False
            fields: Dict[str, Any] = {
                "model": model,
                "feature": feature,
                "tokens_in": t_in,
                "tokens_out": t_out,
                "id": call_id if call_id is not None else uuid.uuid4().hex,
            }
            if latency_ms is not None:
                fields["latency_ms"] = latency_ms
            for name, value in (
                ("tokens_cached", t_cached),
                ("tokens_reasoning", t_reasoning),
                ("provider", provider),
                ("status", status),
                ("error_type", error_type),
                ("request_id", request_id),
            ):
                if value is not None:
                    fields[name] = value
            line = _encode(_message("llm_usage", self.channel, self.token, **fields))
            if writable and self._send_line("usage", line):
                return True
            self._buffer_usage(line)
            return False

    async def start_heartbeat(self, interval: float = HEARTBEAT_INTERVAL) -> None:
        """
        Starts a periodic heartbeat task (first beat after one interval).

        Args:
            interval: seconds between heartbeats
        """
        self._cancel_heartbeat_task()

        async def _heartbeat_loop() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    await self.heartbeat()
                except Exception as e:  # never let a heartbeat kill the task
                    LOGGER.debug("Heartbeat error for %s: %s", self.channel, e)

        self._heartbeat_task = asyncio.create_task(_heartbeat_loop())
        LOGGER.debug("Heartbeat loop started for %s", self.channel)

    async def stop_heartbeat(self) -> None:
        """Stops the periodic heartbeat task."""
        task = self._heartbeat_task
        self._heartbeat_task = None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                pass
            LOGGER.debug("Heartbeat loop stopped for %s", self.channel)

    # ---- additions ----

    async def close(self) -> None:
        """
        Stops the heartbeat task, flushes what is buffered for at most min(timeout, 1 s), then closes
        the connection. Idempotent. Lines still buffered when it gives up are counted in
        stats()["dropped_closed"].
        """
        await self.stop_heartbeat()
        deadline = time.monotonic() + min(self.timeout, CLOSE_FLUSH_MAX)
        while True:
            with self._lock:
                if self._closed:
                    return
                if self._sock is None and self._backlogged():
                    self._connect()
                else:
                    self._flush()
                if self._sock is None or not self._backlogged():
                    break
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.01)
        with self._lock:
            self._shutdown()

    def stats(self) -> Dict[str, Any]:
        """Counters: sent, buffered, dropped (by reason), reconnects, connection state."""
        with self._lock:
            buffered = (
                len(self._usage)
                + int(self._heartbeat_pending)
                + int(self._unregister_pending)
                + int(self._register_pending)
            )
            result: Dict[str, Any] = dict(self._stats)
            result.update(
                connected=self._sock is not None,
                closed=self._closed,
                buffered=buffered,
                buffered_usage=len(self._usage),
                heartbeat_pending=self._heartbeat_pending,
                partial_line_bytes=len(self._out),
                dropped=self._stats["dropped_usage"] + self._stats["invalid"] + self._stats["dropped_closed"],
                last_error=self._last_error,
            )
            return result

    # ---- internals (caller holds self._lock) ----

    def _line(self, kind: str) -> bytes:
        if kind == "register":
            return _encode(_message("register", self.channel, self.token, pid=self.pid, features=self._features))
        return _encode(_message(kind, self.channel, self.token, pid=self.pid))

    def _backlogged(self) -> bool:
        return bool(
            self._out or self._register_pending or self._usage or self._heartbeat_pending or self._unregister_pending
        )

    def _can_write(self) -> bool:
        # A direct write must never overtake something already waiting.
        return self._sock is not None and not self._backlogged()

    def _buffer_usage(self, line: bytes) -> None:
        if len(self._usage) < self.max_buffered_usage:
            self._usage.append(line)
            self._want_flush()
        else:
            self._stats["dropped_usage"] += 1

    def _maybe_connect(self) -> None:
        if self._sock is None and not self._closed and time.monotonic() >= self._next_attempt:
            self._connect()

    def _connect(self) -> None:
        """One non-blocking connect attempt: on a Unix socket it succeeds or fails at once."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(self.socket_path)
        except OSError as e:  # ENOENT, ECONNREFUSED, EAGAIN (backlog full: monitor frozen), ...
            sock.close()
            self._stats["connect_failures"] += 1
            self._last_error = type(e).__name__ if not e.strerror else e.strerror
            self._schedule_retry()
            return
        self._sock = sock
        self._connected_at = time.monotonic()
        if self._ever_connected:
            self._stats["reconnects"] += 1
        self._ever_connected = True
        self._cancel_retry()
        LOGGER.debug("Connected to Monitor at %s", self.socket_path)
        # The monitor may have restarted and forgotten us: register goes first on every connection.
        if self._registered:
            self._register_pending = True
        self._watch(False)
        self._flush()

    def _schedule_retry(self) -> None:
        delay = self._backoff / 2 + random.random() * self._backoff / 2  # jitter: no reconnect stampede
        self._backoff = min(self._backoff * 2, BACKOFF_MAX)
        self._next_attempt = time.monotonic() + delay
        loop = _running_loop()
        if loop is None:
            return  # no loop to wake us: the next call retries once the delay has passed
        self._cancel_retry()
        self._retry = loop.call_later(delay, self._on_retry)

    def _cancel_retry(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None

    def _on_retry(self) -> None:
        with self._lock:
            self._retry = None
            if self._sock is None and not self._closed and (self._registered or self._backlogged()):
                self._connect()

    def _send_line(self, kind: str, line: bytes) -> bool:
        """Writes one line. True once the kernel took any of it (the rest goes first, next)."""
        try:
            n = self._sock.send(line)  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            self._want_flush()
            return False
        except OSError as e:  # EPIPE / ECONNRESET: the monitor went away
            self._drop(e.strerror or type(e).__name__)
            return False
        self._stats["sent"] += 1
        if n < len(line):
            self._out = line[n:]
            self._out_line = line
            self._out_kind = kind
            self._want_flush()
        return True

    def _flush(self) -> None:
        """Sends what waits, in order, until everything is out or the socket is full."""
        if self._sock is None:
            return
        if self._out:
            try:
                n = self._sock.send(self._out)
            except (BlockingIOError, InterruptedError):
                self._want_flush()
                return
            except OSError as e:
                self._drop(e.strerror or type(e).__name__)
                return
            self._out = self._out[n:]
            if self._out:
                self._want_flush()
                return
            self._out_line = None
            self._out_kind = None
        if self._register_pending:
            if not self._send_line("register", self._line("register")):
                return
            self._register_pending = False
            if self._out:
                return
        while self._usage:
            if not self._send_line("usage", self._usage[0]):
                return
            self._usage.popleft()
            if self._out:
                return
        if self._heartbeat_pending:
            if not self._send_line("heartbeat", self._line("heartbeat")):
                return
            self._heartbeat_pending = False
            if self._out:
                return
        if self._unregister_pending:
            if not self._send_line("unregister", self._line("unregister")):
                return
            self._unregister_pending = False
            if self._out:
                return
        self._watch(False)

    def _requeue(self, kind: Optional[str], line: Optional[bytes]) -> None:
        """A line cut off by a dead connection is sent again on the next one."""
        if kind is None or line is None or kind == "register":
            return  # register is re-sent on every connection anyway
        self._stats["requeued"] += 1
        if kind == "heartbeat":
            self._heartbeat_pending = True
        elif kind == "usage":
            if len(self._usage) < self.max_buffered_usage:
                self._usage.appendleft(line)
            else:
                self._stats["dropped_usage"] += 1
        elif kind == "unregister" and not self._registered:
            self._unregister_pending = True

    def _drop(self, reason: str) -> None:
        """The connection is gone: forget it, keep what waits, retry with backoff."""
        sock = self._sock
        if sock is None:
            return
        self._unwatch()  # before close(): the fd number may be reused at once
        _close_quietly(sock)
        self._sock = None
        self._last_error = reason
        self._requeue(self._out_kind, self._out_line)
        self._out = b""
        self._out_line = None
        self._out_kind = None
        LOGGER.debug("Monitor connection lost (%s); reconnecting", reason)
        # A connection that stayed up a while means the monitor was healthy: retry fast.
        if time.monotonic() - self._connected_at >= BACKOFF_MAX:
            self._backoff = BACKOFF_INITIAL
        self._schedule_retry()

    def _want_flush(self) -> None:
        self._watch(True)

    def _watch(self, want_write: bool) -> None:
        """Keeps the running event loop watching our socket: always for EOF, for writability while backlogged."""
        loop = _running_loop()
        sock = self._sock
        if loop is None or sock is None:
            return
        fd = sock.fileno()
        if self._loop is not loop or self._watch_fd != fd:
            self._unwatch()
            try:
                loop.add_reader(fd, self._on_readable)
            except (NotImplementedError, RuntimeError):
                return  # a loop without add_reader (Windows proactor): calls flush lazily instead
            self._loop = loop
            self._watch_fd = fd
        if want_write and not self._writing:
            loop.add_writer(fd, self._on_writable)
            self._writing = True
        elif not want_write and self._writing:
            loop.remove_writer(fd)
            self._writing = False

    def _unwatch(self) -> None:
        loop, fd = self._loop, self._watch_fd
        self._loop = None
        self._watch_fd = -1
        self._writing = False
        if loop is None or fd < 0 or loop.is_closed():
            return
        try:
            loop.remove_reader(fd)
            loop.remove_writer(fd)
        except Exception:
            pass

    def _on_readable(self) -> None:
        with self._lock:
            sock = self._sock
            if sock is None:
                return
            try:
                data = sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._drop(e.strerror or type(e).__name__)
                return
            if not data:
                self._drop("monitor closed the connection")
            # The monitor never replies; anything else read is ignored.

    def _on_writable(self) -> None:
        with self._lock:
            self._flush()

    def _shutdown(self) -> None:
        self._closed = True
        self._cancel_retry()
        self._stats["dropped_closed"] += (
            len(self._usage) + int(self._heartbeat_pending) + int(self._unregister_pending)
        )
        self._usage.clear()
        self._heartbeat_pending = False
        self._unregister_pending = False
        self._register_pending = False
        sock = self._sock
        if sock is not None:
            self._unwatch()
            self._sock = None
            _close_quietly(sock)

    def _cancel_heartbeat_task(self) -> None:
        task = self._heartbeat_task
        self._heartbeat_task = None
        if task is not None and not task.done():
            task.cancel()

    def _flush_at_exit(self) -> None:
        # One last non-blocking attempt at interpreter exit: never waits.
        with self._lock:
            if not self._closed and self._sock is not None:
                self._flush()


_LIVE_CLIENTS: "weakref.WeakSet[MonitorClient]" = weakref.WeakSet()


@atexit.register
def _flush_clients_at_exit() -> None:
    for client in list(_LIVE_CLIENTS):
        try:
            client._flush_at_exit()
        except Exception:
            pass


# ============================================================================
# Legacy functions (one connection per message), kept for backward compatibility
# ============================================================================


def _send_failed(error: Exception, socket_path: str) -> bool:
    """A one-shot send failed: log why (debug only, a bot must not get noisy) and return False."""
    if isinstance(error, (BlockingIOError, InterruptedError)):
        LOGGER.debug("Monitor busy (listen backlog full)")
    elif isinstance(error, ConnectionRefusedError):
        LOGGER.debug("Monitor not running")
    elif isinstance(error, FileNotFoundError):
        LOGGER.debug("Monitor socket not found: %s", socket_path)
    elif isinstance(error, asyncio.TimeoutError):
        LOGGER.debug("Monitor send timeout")
    else:
        LOGGER.debug("Failed to send message: %s", error)
    return False


def _close_quietly(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


def _send_message_sync(message: Dict[str, Any], socket_path: str = MONITOR_SOCKET_PATH, timeout: float = SOCKET_TIMEOUT) -> bool:
    """
    Sends one message on its own connection (synchronous). Never blocks on a frozen monitor: a
    Unix-socket connect either succeeds or fails at once (EAGAIN when its backlog is full).

    LEGACY: prefer MonitorClient.
    """
    data = _encode(message)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.connect(socket_path)
        n = sock.send(data)
        if n < len(data):  # only for a line larger than an empty socket buffer
            sock.settimeout(min(timeout, ONE_SHOT_TAIL_TIMEOUT))
            sock.sendall(data[n:])
        return True
    except Exception as e:
        return _send_failed(e, socket_path)
    finally:
        _close_quietly(sock)


async def _send_message_async(message: Dict[str, Any], socket_path: str = MONITOR_SOCKET_PATH, timeout: float = SOCKET_TIMEOUT) -> bool:
    """
    Sends one message on its own connection without blocking the event loop: non-blocking
    connect and send; only a line larger than an empty socket buffer awaits the rest (bounded).

    LEGACY: prefer MonitorClient.
    """
    data = _encode(message)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.connect(socket_path)
        n = sock.send(data)
        if n < len(data):
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(loop.sock_sendall(sock, data[n:]), timeout=min(timeout, ONE_SHOT_TAIL_TIMEOUT))
        return True
    except Exception as e:
        return _send_failed(e, socket_path)
    finally:
        _close_quietly(sock)


def register_with_monitor(channel: str, pid: int, features: Dict[str, bool], socket_path: str = MONITOR_SOCKET_PATH, *, token: Optional[str] = None) -> bool:
    """LEGACY: prefer await MonitorClient(channel, pid).register(features)"""
    message = _message("register", channel, _default_token(token), pid=pid, features=_clean_features(features))
    success = _send_message_sync(message, socket_path)
    if success:
        LOGGER.info("Registered with Monitor: %s (PID %s)", channel, pid)
    else:
        LOGGER.warning("Monitor not available, continuing without monitoring")
    return success


async def register_with_monitor_async(channel: str, pid: int, features: Dict[str, bool], socket_path: str = MONITOR_SOCKET_PATH, *, token: Optional[str] = None) -> bool:
    """LEGACY: prefer await MonitorClient(channel, pid).register(features)"""
    message = _message("register", channel, _default_token(token), pid=pid, features=_clean_features(features))
    success = await _send_message_async(message, socket_path)
    if success:
        LOGGER.info("Registered with Monitor: %s (PID %s)", channel, pid)
    else:
        LOGGER.warning("Monitor not available, continuing without monitoring")
    return success


def send_heartbeat(channel: str, pid: int, socket_path: str = MONITOR_SOCKET_PATH, *, token: Optional[str] = None) -> bool:
    """LEGACY: prefer await MonitorClient(channel, pid).heartbeat()"""
    return _send_message_sync(_message("heartbeat", channel, _default_token(token), pid=pid), socket_path)


async def send_heartbeat_async(channel: str, pid: int, socket_path: str = MONITOR_SOCKET_PATH, *, token: Optional[str] = None) -> bool:
    """LEGACY: prefer await MonitorClient(channel, pid).heartbeat()"""
    return await _send_message_async(_message("heartbeat", channel, _default_token(token), pid=pid), socket_path)


def unregister_from_monitor(channel: str, pid: int, socket_path: str = MONITOR_SOCKET_PATH, *, token: Optional[str] = None) -> bool:
    """LEGACY: prefer await MonitorClient(channel, pid).unregister()"""
    success = _send_message_sync(_message("unregister", channel, _default_token(token), pid=pid), socket_path)
    if success:
        LOGGER.info("Unregistered from Monitor: %s", channel)
    return success


async def unregister_from_monitor_async(channel: str, pid: int, socket_path: str = MONITOR_SOCKET_PATH, *, token: Optional[str] = None) -> bool:
    """LEGACY: prefer await MonitorClient(channel, pid).unregister()"""
    success = await _send_message_async(_message("unregister", channel, _default_token(token), pid=pid), socket_path)
    if success:
        LOGGER.info("Unregistered from Monitor: %s", channel)
    return success


class HeartbeatTask:
    """
    DEPRECATED: prefer MonitorClient.start_heartbeat().

    Periodic heartbeats: ``asyncio.create_task(task.start())`` runs until ``await task.stop()``.
    Uses one persistent MonitorClient connection (the old one opened a connection per beat).
    """

    def __init__(self, channel: str, pid: int, interval: int = HEARTBEAT_INTERVAL, socket_path: str = MONITOR_SOCKET_PATH, *, token: Optional[str] = None):
        self.channel = channel
        self.pid = pid
        self.interval = interval
        self.socket_path = socket_path
        self._token = token
        self._running = False
        self._wake: Optional[asyncio.Event] = None

    async def start(self) -> None:
        """Sends a heartbeat every `interval` seconds until stop() is called."""
        self._running = True
        self._wake = asyncio.Event()  # created here, inside the running loop (Python 3.9 binds it)
        client = MonitorClient(self.channel, self.pid, self.socket_path, token=self._token)
        try:
            while self._running:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
                except asyncio.TimeoutError:
                    pass
                if self._running:
                    await client.heartbeat()
        finally:
            await client.close()

    async def stop(self) -> None:
        """Stops the heartbeat loop (promptly: it does not wait for the current interval to end)."""
        self._running = False
        if self._wake is not None:
            self._wake.set()


# === Helper for the bots' FeatureManager ===


def features_to_dict(feature_manager: Any) -> Dict[str, bool]:
    """
    Turns a FeatureManager into the {feature_name: enabled} dict register() takes.

    Uses the bots' ``core.feature_manager.Feature`` enum when it is importable (as the old module
    did); otherwise accepts a mapping or an object with ``to_dict()``.
    """
    try:
        from core.feature_manager import Feature  # type: ignore[import]
    except ImportError:
        Feature = None
    if Feature is not None:
        return {feature.config_key: bool(feature_manager.is_enabled(feature)) for feature in Feature}
    if hasattr(feature_manager, "to_dict"):
        feature_manager = feature_manager.to_dict()
    if hasattr(feature_manager, "items"):
        return {str(k): bool(v) for k, v in feature_manager.items()}
    return {}
