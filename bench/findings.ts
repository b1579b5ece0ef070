// Profile findings for docs/PERFORMANCE.md. Unlike the tables, these are not re-measured by every
// `npm run bench`: they come from profiled runs (`node dist/bench/run.js --profile DIR`, or one case
// under `node --cpu-prof`) and say where the time went when they were written. Refresh them when the
// code they point at changes.
export const FINDINGS = `## Findings (profiles, 2026-11-27; 6–9: 2026-12-01)

Profiles taken with \`node --cpu-prof\` on the monitor (one profile per thread), summarised by
\`node dist/bench/profile.js DIR\` (self time per function). Percentages are of that thread's busy time.

**1. Overload lost rows instead of pushing back — fixed in b46f459.** \`IngestServer#line\`
(\`src/server/ingest-server.ts\`) handed each llm_usage row to the writer link, and \`Link.send\` (\`src/actors/link.ts\`)
refused it once \`limits.maxPendingPerLink\` (500,000) rows were held: counted as \`dropped_overflow\`, and gone. Nothing
slowed reading down before that but the per-connection line-rate throttle, and a burst the kernel had already buffered
was read faster than the writer committed it. Six 600,000-line bursts from 1,000 bots dropped 9,160, 14,016 and 19,112
rows in three of them (each exactly written − landed); five 1,000,000-line bursts dropped 310,968 to
433,848. Since b46f459 ingest pauses every connection at half the bound and resumes at a quarter (the registry's live
clock does not count the pause against the bots); the overload table above measures that: nothing dropped.

**2. One-shot connections: one postMessage per message — fixed in bfb9185.** \`Link.send\` used to schedule
\`flush()\` with \`setImmediate\`: one batch per event-loop iteration, and under one-shot load an iteration carries about
one message: 55,092 postMessages for 60,152 items in a 60,000-connection burst, \`postMessage\` 21.3 % of the main
thread's busy time (878 ms of 4,129 ms), the largest item in its profile, and the one-shot rate 0.46–0.80× the raw
baseline over seven bench runs (median 0.64×). Since bfb9185 a small batch waits up to 1 ms and a busy one (≥ 64 items) still goes out at the end of its
turn: 3,124–4,024 postMessages for the same burst, 12.8k–16.2k connections/s against ≈ 11.5–12.5k before, and the
one-shot ratio 0.71–0.89× (median of three pairs) in four bench runs since, single pairs 0.54–1.07×: met, narrowly.
What is left (profile after the fix): the main thread is the bottleneck at ~100 % of a core, and most of it is Node's
socket lifecycle — \`close\` 13.4 %, the \`net.Socket\` constructor 12.4 %, \`Duplex\`/\`ReadableState\` 7.6 %, GC 8.8 % —
with \`postMessage\` down to 6.8 % and \`decodeLine\` 4.5 %. The raw baseline pays the same lifecycle; what the monitor adds
per connection is small (\`IngestServer#accept\` 1.5 %: a \`Connection\` object, five listeners, a per-socket idle
\`setTimeout\`). A periodic sweep for idle never-registered connections instead of \`socket.setTimeout\` per connection,
and fewer listeners, are the remaining levers, worth a few percent each. Note the generator takes ~80 % of a core in
this case: monitor and generator together saturate the two cores, for the baseline as well.

**3. Persistent bots: at the SQLite ceiling.** Both threads are busy (≈ 150 % CPU). Writer thread: \`#writeRow\` (the
better-sqlite3 insert itself) 44 %, \`sqliteTransaction\` 10 %, GC 13 %. Main thread: \`decodeLine\` (JSON.parse +
TypeBox check) 21 %, \`Link.flush\` (structured clone of the batch) 14 %, \`IngestServer#line\` 14 %. The clone costs on
both sides (14 % of main, and most of the writer's GC): sending llm_usage batches column-wise (one array per field)
would cut both, but the targets are met without it.

**4. Memory at 10,000 bots: little headroom on peaks.** An empty monitor is 137–140 MB RSS (49 MB of it the mapped
node binary and libraries, the rest mostly the V8 heaps of the main thread and the worker threads). 10,000 idle
persistent bots with their own pids take it to 160–190 MB steady, with peaks of 220–250 MB: the main thread's heap
grows from 17 to ~43 MB with the connections (≈ 2.6 KB of JS objects per \`Connection\` + \`net.Socket\`), the
registry's from 10 to ~30 MB during the registration burst, the sampler's by ~5 MB per 10,000-pid round, and RSS
follows until their GCs run. The fixed per-thread cost is the largest share; the per-connection objects are next. Over five full bench runs the steady RSS was 187–231 MB and the peak 221–265 MB: the
peak crossed 250 MB in one of them. Capping the worker threads' young generation at 8 MB
(\`resourceLimits.maxYoungGenerationSizeMb\`) measured 187 MB (peak 221) against 193 MB (peak 231) without it: within
the noise, not adopted. Next candidates: a lighter per-connection record on the main thread, and not loading kysely
and better-sqlite3 in the registry thread just to rebuild from \`bot_status\`.

**5. Latency resolution — fixed in bfb9185.** The registry took \`Date.now() − ts\` in whole milliseconds, so
sub-millisecond latencies read as 0; it now uses \`performance.timeOrigin + performance.now()\`, and the loadtest's
bots send \`ts\` on that clock with microsecond decimals.

**6. Structured clone of llm_usage batches — cut in lean-plane (2026-12-01).** Profiles of the 1,000-bot, 400k-row
burst (\`node dist/bench/run.js --only throughput --profile DIR\`; before: 3 runs, after: \`--case "1,000 persistent"
--reps 1\`), self time per thread, same 400,000 rows:

| thread | before: busy ms, top three | after: busy ms, top three |
| --- | --- | --- |
| main | 8,379–10,416: \`decodeLine\` (JSON.parse + TypeBox) 25–31 %, \`Link.flush\` (clone) 11.6–13.1 %, \`IngestServer#line\` 6.5–8.3 % | 5,916: \`decodeLine\` 22 %, GC 9.6 %, \`IngestServer#line\` 6.8 % (\`Link.flush\` 5.3 % + \`toColumns\` 4 %) |
| db-writer | 10,276–13,081: \`#writeRow\` 40–46 %, (program) 16.7–25.4 % (the batch's deserialisation), \`sqliteTransaction\` 6–11 % | 7,706: \`#writeRow\` 46 %, GC 13.6 %, \`sqliteTransaction\` 7.4 % ((program) 4.9 %, \`fromColumns\` 5 %) |
| registry | 1,125: \`newBot\` 12.8 %, \`postMessage\` 11.5 %, GC 9.8 % | 617: \`postMessage\` 16 %, GC 14.6 %, (program) 9 % |

What changed: \`Link\` posts a batch as runs of same-shaped items, one array per key (\`toColumns\`/\`fromColumns\` in
\`src/actors/link.ts\`), so structured clone copies flat arrays instead of writing every row's property names; the
receiver rebuilds the items before \`onBatch\` (actor contracts, acks, re-sends and spooling unchanged). In-process, 409,600
rows through a Link pair took 1.0–1.4 s → 0.7–1.0 s. The registry reads \`/proc/<pid>/stat\` once per pid per batch (a
fleet of channels sharing a process registered with one read each before). Every connection shares one set of socket
handlers (a one-shot connection allocated five closures). TypeBox's compiled check is ~1.5 % of the main thread (its
\`check\` 0.9 %, the channel RegExp 0.7 %): a hand-specialised validator would buy little, so it was not written; what
\`decodeLine\` costs is JSON.parse itself, which the raw sink pays too.

Before/after in the same session, each round raw sink → monitor after → monitor before, fresh servers
(\`node dist-after/bench/run.js --only throughput --no-overload --before-cli dist-before/src/cli.js\`, 16:39–16:54 UTC,
**load average 7–14 on 2 cores, other sessions using 80–165 % of a core during every measurement**): the ratios to the
raw sink are not meaningful in that state (the monitor got 40–80 % of a core), the after/before pairs are:

| case | after rows/s | before rows/s | after ÷ before per round (median) | RSS peak MB after / before |
| --- | --- | --- | --- | --- |
| 1,000 persistent bots, 400k rows | 31,218, 38,768, 61,303 | 26,338, 32,756, 54,229 | 1.19, 1.18, 1.13 (**1.18**) | 346, 355, 385 / 385, 384, 385 |
| 10,000 persistent bots, 400k rows | 31,359, 70,400, 48,271 | 60,880, 43,303, 39,134 | 0.52, 1.63, 1.23 (**1.23**) | 461, 478, 464 / 469, 437, 415 |
| one-shot, 60k connections | 5,854, 4,495, 3,992 | 4,363, 5,103, 3,683 | 1.34, 0.88, 1.08 (**1.08**) | 251, 256, 235 / 248, 252, 256 |

Ratios to the raw sink in that run (median of 3): 1,000 bots 0.33× (0.33, 0.27, 1.04), 10,000 bots 0.58×, one-shot
0.96×. **Not shown: the issue's 0.85× / 0.9× / 1.0× targets and the memory targets** (peak RSS ≤ 250 MB in the 400k
burst: 346–385 MB here; 10,000 idle bots and the 30 s fall-back were not measured in this round). The peak is mostly
rows held between ingest and the writer (up to half of \`limits.maxPendingPerLink\`, 250,000 rows, before reading
pauses) as objects on the main thread plus the batches in flight; a lower pause threshold or rows held column-wise
from the start are the next levers. Re-measure on a quiet box.

**7. Memory after a burst: rows promoted and left as garbage — cut in lean-memory (2026-12-01).** Where the memory of
a 1,000-bot, 400k-row burst sits (\`node dist/bench/memory.js\`: RSS split by \`/proc/<pid>/smaps_rollup\`, every
thread's V8 heap in use from \`GET /health\`, then 30 s of quiet with the bots still connected). One run per line, on
the shared 2-core box at **load average 17–155** (other sessions' builds and tests; RSS depends far less on load than
rows/s does, but when GCs run still does, so read ±15 MB into each figure). "Heap after" is the heap in use when the
last row landed, MB: main thread / db-writer / alerter.

| build | RSS empty MB | RSS peak MB | RSS at the end MB | RSS 30 s later MB | heap after (main / db / alerter) |
| --- | --- | --- | --- | --- | --- |
| before (6f20e84) | 199 | 416 | 415 | 402 | 78 / 70 / 16 |
| reading pauses at 65,536 rows held; alerter without kysely | 192 | 362 | 359 | 354 | 86 / 27 / 9 |
| + Link keeps posted batches as column runs | 192 | 338 | 333 | 335 | 55 / 30 / 12 |
| that build, the actors' young generation capped at 8 MB (not kept) | 187 | 328 | 328 | 313 | 64 / 44 / 13 |
| that build under \`NODE_OPTIONS=--max-semi-space-size=2\`, every thread (not kept) | 164 | 337 | 261 | 214 | 27 / 47 / 9 |
| that build, that flag and \`MALLOC_ARENA_MAX=2\` (not kept) | 162 | 292 | 292 | 249 | 68 / 40 / 12 |

What it shows: (1) the heaps in use stay where the burst left them for 30 s and more: every llm_usage row lived
~100 ms waiting for its commit (on the main thread in the Link's unacknowledged batches, in the writer until COMMIT),
long enough to be promoted to the old generation, and with nothing allocating after the burst no major GC comes to
collect it. Fewer rows held (pause at 65,536, not 250,000) cut the writer's share; keeping posted batches as their
column runs (flat arrays, no per-row objects) cut the main thread's. (2) RSS minus the heaps in use is ~150 MB of
anonymous memory: what V8 keeps committed (each isolate's young generation grows to ~48 MB under a burst and stays
committed; five isolates) and native allocations in malloc arenas (one per thread; structured-clone buffers,
better-sqlite3). A 2 MB semi-space for every thread gave back ~120 MB within 30 s and took 28 MB off an empty monitor,
but only a node flag sets the main thread's (\`--max-semi-space-size\` at launch: the systemd unit's \`ExecStart\` or
\`NODE_OPTIONS\`), not \`resourceLimits\`; capping the actors' young generation alone measured within the noise, as in
Findings 4, and was not kept. Fewer malloc arenas took ~45 MB off the peak in one run; both are launch settings,
candidates for the unit file once re-measured on a quiet box. **Not shown:** peak ≤ 250 MB (338 MB here) and back
under 200 MB within 30 s (335 MB at 30 s). Next levers: the main thread's semi-space at launch; holding the writer's
rows column-wise until COMMIT (src/llm / the writer's plan, other engineers' rooms in this session); a major GC hint
once a link has drained after a burst.

The bench itself on this build (19:27–19:35 UTC, load average 16–28, other sessions using 136–190 % of a core
during every measurement, so the rows/s are not comparable with anything): \`node dist/bench/run.js --only throughput
--case "10,000 persistent" --reps 1 --no-write\`: 10,000 bots, 400k rows, 400,000/400,000 landed, 0 dropped, RSS peak
432 MB, **not under 200 MB within 30 s** (432 MB at the end, 407 MB at 30 s); the overload cases 1,000,000/1,000,000
landed, 0 dropped (25 pauses, 14.7 s paused: the writer got little CPU), and 600,000/600,000 with the database locked
for 5 s, 0 dropped, at most 39,905 rows held (250,085 before). \`node dist/bench/run.js --only idle --no-write\`:
10,000 idle bots 297 MB steady (peak 303), other work 156 %; the same section with the build before (\`node dist-before/bench/run.js --only idle
--no-write\`, right after) 273 MB (peak 296, other work 150 %): within what one pair on this box can tell, no gain at idle —
the levers here act on rows held during a burst, and the idle RSS is the fixed per-thread cost (Findings 4; both
figures well above the 187–231 MB of quieter earlier runs). **Not shown: ≤ 180 MB steady.** Throughput before/after was not measured
in a meaningful state (the monitor got 30–50 % of a core): re-measure with \`--before-cli\` on a quiet box.

**8. Heartbeats under 10,000-pid sample rounds — the registry's round block cut in lean-heartbeat (2026-12-01).**
Profile of the sampler-latency case (\`kissmon start --sample-interval 2\` under \`node --cpu-prof\` + \`kissmon
loadtest --bots 10000 --duration 20 --heartbeat-interval 1 --llm-rate 0 --pid-per-bot --json\`), 25 s of the
measured window, load average 10 → 23 (the profiler samples wall time, so on a loaded box a thread that waits for a
core is counted in the function it waits in: read the shares, not the ms). Top costs per thread, before:

| thread | busy in the window | top three (self time) | the next |
| --- | --- | --- | --- |
| main | 54 % | \`decodeLine\` (toString + JSON.parse + TypeBox) 16.6 %, \`onStreamRead\` 8.5 %, \`nextTick\` 7.9 % ((program) 16.7 %) | \`postMessage\` 6.4 %, \`#frame\` 4.4 %, GC 4.4 %, \`#line\` 3.1 %, \`Link.flush\` 2.9 % |
| registry | 59 % | \`#heartbeat\` 15.9 %, \`#touch\` 15.8 %, \`#applySamples\` 13.3 % | \`#markStale\` 9.8 %, \`stats\` 4.3 %, \`statusRow\` 4.2 %, GC 3.2 %, \`postMessage\` 2.3 % |
| sampler | 36 % | \`read\` 38.6 %, \`open\` 32.2 %, \`close\` 9.5 % (the /proc syscalls) | \`#judge\` 3 %, GC 2.2 %, \`Link.signal\` 1.6 % |
| db-writer | 33 % | \`#writeRow\` 49.7 %, \`sqliteTransaction\` 28.8 %, \`isoTime\` 8 % (10,000 metric rows per round, 10,000 status rows per 5 s) | \`fromColumns\` 3.8 % |

What it says: on the heartbeat path itself nothing stands out — the main thread's cost is Node's socket read path
and JSON.parse, which the raw sink pays too; heartbeats cost the registry a Map lookup and three stores
(\`#heartbeat\` + \`#touch\`, no system call: \`/proc\` is read only for registers, once per pid per batch, and for
heartbeats of unknown channels). What hurt the p99 was *when* the registry worked: \`#applySamples\` plus the
round's deserialisation, one 16–19 ms task every 2 s, holding back about 1 % of the heartbeats — the p99. Cut:
the round crosses column-wise and is applied 500 samples per turn ("Sampler" above).
Left as they were (\`#markStale\` and \`#flushDirty\` since changed: lean-heartbeat2 below): \`#markStale\` and \`stats\` each walk the 10,000 bots (every second; ~0.5 ms each when the box
is quiet), and \`#flushDirty\` posts 10,000 status rows every 5 s in one task; slicing that flush the same way is the
next lever for the p99, and the metric and status rows are most of the writer's CPU (the writer is rollup-cost's
and lean-memory's room this session). **Not shown on this box: the issue's heartbeat p99 ≤ 20 ms and monitor CPU ≤
50 % under 10,000-pid rounds**: at load average 20–45 the fleet of 10,000 pids did not even finish registering in
60 s (5,442 and 5,527 of 10,000), nor 240 s (6,118 before, 6,786 after), and a controlled variant (10,000 bots on
4 bot processes, so each round still posts 10,000 samples but reads 4 pids) ended with the loadtest's control calls
timing out (HTTP 408, "registry is restarting", "did not answer within 5000 ms") for both builds at load 20–30. One
pair of that variant did complete (19:32–19:36 UTC, load 16–20, before then after, \`kissmon start --sample-interval 2\`
+ \`kissmon loadtest --bots 10000 --duration 20 --heartbeat-interval 1 --llm-rate 0 --connect-timeout 240 --json\`):
before p50 2,894 ms, p99 125,698 ms, monitor CPU 65.7 %; after p50 582 ms, p99 107,020 ms, CPU 67.9 %; false stale
0 in both. Latencies of seconds to minutes mean both monitors were far behind (their heartbeats waited for a core
behind the registration backlog), so these are not p99 figures to compare with the target, and the CPU figures
are the same within this box's noise. At 19:42 the box went quiet (load 0.3–5) and two full-scale pairs ran (the
exact sampler-latency command above, 10,000 pids, alternated; monitor CPU from its own /proc over the window):

| run (UTC) | build | load | heartbeats | p50 ms | p99 ms | max ms | false stale | monitor CPU % |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
| 19:43:00 | after | 0.4 → 2.6 | 201,293 | 0.95 | 75.97 | 152.32 | 0 | 75.6 |
| 19:43:40 | before | 2.4 → 4.1 | 203,571 | 1 | 133.38 | 272.38 | 0 | 76.6 |
| 19:44:53 | before | 3.2 → 5.3 | 200,947 | 0.84 | 46.02 | 75.65 | 0 | 64 |
| 19:45:41 | after | 4.8 → 5.1 | 202,418 | 1.15 | 221.44 | 305.92 | 0 | 81.9 |

Inconclusive: each build has the better and the worse p99 of a pair, the load was rising through them, and CPU is
64–82 % for both. The change removes one 16–19 ms task per round (measured in CPU time above); whether that moves
the p99 is for the quiet-box re-measurement, with more pairs than these two. Re-measure on a quiet box: \`node dist/bench/run.js --only sampler\`
from this build and from one before 13d9076, alternated (\`--before-cli\` covers only the throughput rounds).

**lean-heartbeat2 (2026-12-01, 21:40–23:10 UTC): what the registry and the decoder do per heartbeat, cut.** The box
was never quiet in this window (load average 20–1,477, other sessions using 110–170 % of a core during every
measurement), so no p99 here is comparable with the target; CPU time is. Where the monitor's CPU goes, per thread
from \`/proc/<pid>/task/*/stat\` over the loadtest's measured window (\`node dist/bench/heartbeat-ab.js\`, which
alternates two builds with a fresh monitor per run): in the variant whose rounds still carry 10,000 samples but read
4 pids (\`--shared-pids\`, registers take seconds instead of minutes here), the monitor takes 42–52 % of a core, of
which the **main thread 21–28 %** (≈ 25 µs per heartbeat: Node's socket read path, one \`read\` and one \`data\`
event per line, since each bot's line arrives on its own connection), the **registry 12–16 %**, the writer 4–5 %
(10,000 metric rows per round, 10,000 status rows per 5 s) and the sampler 1.5 %. With one real pid per bot the
sampler's \`/proc\` reads come on top (150–235 ms CPU per 10,000-pid round, ~10 % of a core at a round every 2 s:
the sampler-fd branch's room). \`stats\` still walks the bots once per \`/health\` call. Changed:

- **Heartbeat lines decoded from their bytes** (\`decodeHeartbeatFast\`, \`src/protocol/decode.ts\`): a compact flat
  heartbeat of the keys type, channel, pid, v, ts, token in any order, each once, values as plain ASCII/decimals,
  is decoded in one pass without \`toString\`, \`JSON.parse\` or the TypeBox check; anything else (spaces, escapes,
  \`1e3\`, \`1.0\`, a repeated or unknown key, a bad value) takes the full path unchanged, so a bad line is rejected
  with the same reason and detail. \`ts\` is rounded exactly as JSON.parse rounds it (digits ≤ 2^53 and ≤ 22
  decimals: one IEEE division, Clinger's fast path; longer ones through \`Number()\`). \`test/decode-fast-path.test.ts\`
  holds it to the full path over 50,000 seeded lines, valid and broken. CPU per loadtest-shaped line, 500,000
  lines, alternated (\`/tmp\` script over \`decodeLine\` of both builds, process CPU, load ~140): before 1,311 / 1,398 /
  1,161 ns, after 588 / 606 / 677 ns (0.45×, 0.43×, 0.58×); instructions per line (callgrind, load-independent; 110,000 lines less 10,000, same script) 11,018 before,
  5,499 after (0.50×).
- **The 5 s \`bot_status\` flush is sliced** (\`STATUS_SLICE\`, 500 rows per event-loop turn, as the sample rounds are):
  10,000 heartbeating bots made \`#flushDirty\` one task of 10,000 \`statusRow\`s plus their posting every 5 s, during
  which no heartbeat batch was applied. Dirty bots are a flag on the bot plus an array, not a \`Set\`: a heartbeat
  now tests one property of the bot it already holds instead of hashing into a 10,000-entry set. Found on the way: a
  channel that began a new life (re-registered with another pid) after a heartbeat had its new row overwritten at
  the next flush by the old life's pending row (the old \`Bot\` object stayed in the dirty set): \`bot_status\` then
  said online with the old pid until the new life's first heartbeat, for ever if it was dead at once.
  \`test/status-flush.test.ts\` fails on the build before (\`{ pid: <old>, status: 'online' }\`).
- **\`#markStale\` walks only when a bot can have expired**: it walked every bot each tick (each second at the default
  \`staleAfterMs\`); now it remembers the oldest online heartbeat of its last walk and skips until that plus
  \`staleAfterMs\`. Exact, not approximate: a bot's \`heartbeatLive\` only moves forward, and a bot that turns online
  (always through \`#transition\`, or the rebuild, which forces the next walk) lowers the check time to its own due
  time. With bots heartbeating every second and a 120 s window that is one walk per ~2 minutes instead of 120.
  \`test/lifecycle.test.ts\` (a hung bot turns stale) goes red when the transition does not lower the check time.

Before/after, the shared-pid variant, three alternated pairs (22:11–22:16 UTC, \`node dist/bench/heartbeat-ab.js
--before-cli dist-before/src/cli.js --pairs 3 --shared-pids\`, which runs \`kissmon start --sample-interval 2\` +
\`kissmon loadtest --bots 10000 --duration 20 --heartbeat-interval 1 --llm-rate 0 --json\`), monitor CPU and the
two busiest threads, % of a core:

| pair | load | after: CPU (main / registry) | before: CPU (main / registry) | CPU after ÷ before | p99 ms after / before | false stale |
| --- | --- | --- | --- | --- | --- | --- |
| 1 | 74 → 64 | 44.6 (24.0 / 14.7) | 43.4 (25.3 / 14.8) | 1.03 | 242 / 1,320 | 0 / 0 |
| 2 | 64 → 54 | 49.0 (21.4 / 11.9) | 51.7 (28.5 / 16.5) | 0.95 | 10,019 / 63 | 0 / 0 |
| 3 | 54 → 141 | 41.8 (24.4 / 13.1) | 45.8 (24.6 / 13.4) | 0.91 | 419 / 1,099 | 0 / 0 |

Median CPU ratio **0.95** (other work 110–125 % of a core in every run): a few per cent, about what the parts cut
are worth (the decoder's ~0.6 µs per line is ~2 % of the main thread's ~25 µs per heartbeat; the walks and the
dirty set were a few ms per second of the registry), and within this box's noise. The p99s (63 ms to 10 s) only
say how long each monitor waited for a core.

The issue's case itself, one real pid per bot (22:22–22:33 UTC, \`node dist/bench/heartbeat-ab.js --before-cli
dist-before/src/cli.js --pairs 3\`: \`kissmon start --sample-interval 2\` + \`kissmon loadtest --bots 10000 --duration 20
--heartbeat-interval 1 --llm-rate 0 --pid-per-bot --json\`; the first "after" run was retried: the loadtest's first
control call got "registry is restarting" while 10,000 registers were applied at load 60, as in the runs above
before this change). The third thread is the sampler (its \`/proc\` reads), the fourth the writer:

| pair | load | after: CPU (main / registry / sampler / writer) | before: CPU (main / registry / sampler / writer) | CPU after ÷ before | p99 ms after / before | false stale |
| --- | --- | --- | --- | --- | --- | --- |
| 1 | 60 → 148 | 49.9 (22.4 / 12.6 / 8.6 / 5.5) | 57.1 (24.3 / 13.1 / 9.4 / 5.5) | 0.87 | 64 / 797 | 0 / 0 |
| 2 | 148 → 903 | 49.8 (21.7 / 12.1 / 8.2 / 5.3) | 49.8 (22.1 / 11.5 / 8.9 / 5.0) | 1.00 | 364 / 1,485 | 0 / 0 |
| 3 | 903 → 801 | 45.5 (20.0 / 10.7 / 8.5 / 5.0) | 52.8 (23.1 / 13.2 / 8.5 / 5.0) | 0.86 | 815 / 950 | 0 / 0 |

Median CPU ratio **0.87**, the main thread lower in all three pairs (by 2–14 %), p99 lower in all three (other
work 121–147 % of a core, load average up to 1,477: the box was being flooded with processes). These CPU figures are
lower than the quiet box's 75–82 % for the same case because a starved monitor reads more lines per wakeup and posts
bigger batches (less per-line overhead): compare within a pair only. A quiet-box re-measure of this table is what
would say whether p99 ≤ 20 ms and CPU ≤ 50 % are met.

Measured and not done: **a multi-row metric insert** — 10,000 metric rows as 64-row prepared statements against one
statement per row, same transaction, same schema (a copy of a monitor's file, process CPU, four alternated rounds):
39.0 / 43.2 / 48.8 ms against 46.2 / 44.9 / 45.9 ms per 10,000 rows, no gain: the cost is the two indexes of
\`bot_metrics\` (ts; channel, ts), not the statement; **a narrower status write** (\`UPDATE … SET last_seen,
last_heartbeat\` for a heartbeat-only change instead of the 9-column upsert): 24.5–32.6 against 39.2–39.6 ms per
10,000 rows, ~2 ms of writer CPU per second at 10,000 bots — a new row type through the writer contract and both
stores for that, not taken; **gathering heartbeats 5 ms instead of 1 ms before posting them** to the registry
(a patched Link, two alternated pairs): CPU 42.6 / 41.7 against 41.7 / 47.8 %, no difference, p50 1 → 3.5 ms.
What is left is the main thread's read path (a \`read\` syscall, a Buffer and a \`data\` event through the stream
machinery per line per connection) and the sampler's \`/proc\` reads: reading sockets through a reused buffer
(\`net.Socket\` \`onread\`, not offered for a server's sockets) or reading many connections' lines per wakeup is the
lever for the main thread, in the per-connection code (another engineer's room this session). **Not shown: heartbeat
p99 ≤ 20 ms and monitor CPU ≤ 50 % with 10,000-pid rounds.**
**9. Start-up: module loading per thread — bundled at build time (2026-12-01, branch startup).** A \`kissmon start\`
ran six isolates (main, db writer, alerter, registry, sampler, the registry's one-shot rebuild reader; the read pool's
threads come later), and each resolved, read, compiled and linked its own copy of every ES module it imported: main
~940 modules (kysely 263, TypeBox 249, fastify and its ~60 helpers, prom-client, pg), the db writer ~550 (kysely,
TypeBox), alerter and registry ~270 each (TypeBox 249). In \`node --cpu-prof\` profiles (one per thread) Node's ES module
loader was 55–70 % of every thread's start-up, and the libuv pool threads that read those files were a quarter of the
process's CPU. Since then \`src/entry-bundles.ts\` bundles each thread's entry point with esbuild (packages inlined,
except native addons, piscina and what is loaded with \`createRequire\`; what only \`import()\` reaches is a chunk beside
it), and the monitor loads the dashboard server (fastify, @fastify/static, ajv: 1.7 MB of the main thread's bundle) only
with \`--http-port\`. Per-thread CPU up to the first answered \`GET /status\` (\`/proc/<pid>/task/<tid>/stat\`; each thread
named by a preload that writes its tid; 3 alternated pairs at load average 300–1,375, the box shared), before → after:
whole process 2,130–2,470 → 740–1,310 ms (ratios 0.34, 0.37, 0.53); main 580–710 → 290–440, pool and V8 threads
580–680 → 40–130, db writer 440–510 → 180–290, alerter 190–240 → 80–160, registry 180–240 → 70–160, sampler 70–90 →
60–130. Four earlier pairs of the bundling alone at load 14–15: 2,080–2,870 → 710–1,110 ms CPU, wall to \`/status\` 2.7–17.3
→ 1.2–4.7 s (ratios 0.34, 1.0, 0.27, 0.25). V8 heap used right after start (\`GET /health\`): main 20.7–21.3 → 13.7–15.7 MB,
db writer 19.5–21.2 → 14.6, alerter 12.7–13.4 → 9.3–9.8, registry 11.7–11.8 → 6.9–8.5, sampler 8.0–8.1 → 5.7–7.6.
\`kissmon --version\` 0.12–0.24 → 0.09–0.15 s CPU (\`node -e 0\` alone: 0.08 s), \`kissmon usage --help\` 0.12–0.15 →
0.10–0.14 s (5 alternated pairs each; wall times at load 600–740 are noise). \`node --test dist/test/crash-restart.test.js\`
(the test and its monitors): 7.1–9.4 → 4.3–4.7 s CPU, 35–66 → 24–42 s wall (3 pairs, load 410 → 83). What is left is
mostly V8 compiling the bundles (main ~1.8 MB, of it kysely 0.5 and pg 0.2 MB that a SQLite start does not run: the
hosts' PostgreSQL presence and \`src/db/backend.ts\` import them statically) and each isolate's own ICU time-zone set-up in the
config check.

**10. Launch settings: a 2 MB semi-space and two malloc arenas for every thread — lean-rss (2026-12-01).**
\`bin/kissmon.js\` now launches node with \`--max-semi-space-size=2\` and \`MALLOC_ARENA_MAX=2\` (its shebang, \`#!/usr/bin/env
-S MALLOC_ARENA_MAX=2 node --max-semi-space-size=2\`; defined in \`src/launch-settings.ts\`), and so does everything that
executes it: npm's \`kissmon\` bin link, \`npm start\` (now \`./bin/kissmon.js start\`), the systemd unit of
docs/OPERATIONS.md (\`ExecStart=…/bin/kissmon.js\`, no longer \`node …/bin/kissmon.js\`); the bench harness's \`startMonitor\`
launches the monitor the same way, so every bench section measures the product as launched. V8's flags are
process-wide: a worker's isolate is configured with them when it starts, so one flag sizes every thread's young
generation (checked: \`v8.setFlagsFromString('--max-semi-space-size=2')\` before \`new Worker()\` also gives the worker a
4 MB new space under allocation, against 32 MB without, but cannot change the main thread's, whose heap is configured
at launch — so a launch flag it is). Each thread's \`heap_limit_mb\` in \`GET /health\` (V8's heap size limit: the
old-generation limit + 3 semi-spaces) shows it: the writer 1,030 MB with the flag, 1,072 without; the main thread
4,102 against 4,144 on this box. \`test/launch-settings.test.ts\` starts a monitor through \`bin/kissmon.js\` and checks
every thread's figure and the process's environment.

Memory (\`node dist/bench/memory.js\`, 1,000 bots, 400k rows, then 30 s quiet; before = the build without the
settings, \`node dist-before/bench/memory.js\`; variants = this build with \`src/launch-settings.js\` edited in a copy of
dist; one run per line, 21:43–22:02 UTC, **load average 8 → 420** (other sessions' test runs; RSS depends little on load, the
burst's duration a lot, and whether a major GC has run by the 30-s mark a lot), MB:

| launch | RSS empty | RSS peak in the burst | RSS when the last row landed | RSS 30 s later | burst s | main-thread heap in use at the end / 30 s later |
| --- | --- | --- | --- | --- | --- | --- |
| before (no settings), run 1 (load 8–10) | 192 | 358 | 358 | 343 | 7.2 | 69 / 62 |
| before, run 2 (load 41–34) | 196 | 350 | 350 | 342 | 13.2 | 50 / 56 |
| **semi-space 2 + 2 arenas (kept)**, run 1 (load 74) | 163 | 288 | 281 | **199** | 15.0 | 67 / 20 |
| kept, run 2 (load 420) | 163 | 322 | 313 | **199** | 13.1 | 96 / 20 |
| kept, run 3 (load 26) | 163 | 314 | 310 | 304 | 24.3 | 89 / 89 |
| semi-space 1 + 2 arenas, 2 runs | 158, 154 | 300, 305 | 294, 267 | 261, 265 | 19.7, 55.2 | 78, 26 / 80, 27 |
| semi-space 4 + 2 arenas, 2 runs | 175, 177 | 305, 297 | 305, 297 | 253, 293 | 28.2, 23.8 | 67, 69 / 66, 67 |
| semi-space 2 + 2 arenas + \`--optimize-for-size\`, 2 runs (not kept) | 134, 140 | 236, 236 | 215, 230 | 197, 198 | 65.4, 59.2 | 24, 28 / 20, 20 |

What it shows: the settings take ~30 MB off an empty monitor (192–196 → 163) and 30–70 MB off the burst's peak
(350–358 → 288–322). Back under 200 MB 30 s after the burst in two of three runs: there the main thread had run a
major GC by then (its heap in use 67–96 → 20 MB); in the third it had not (89 MB, RSS 304), and with the default
semi-space RSS stays near the peak whether or not it does (342–343). What is left in the peak is mostly the main
thread's old generation: rows held for the writer (up to 65,536 per link before reading pauses), promoted sooner with
a small young generation, collected only at a major GC, which V8 starts later on the main thread than on the actors (it scales the
heap-growing factor with the heap limit: node's default, 4 GB here, against the actors' 256–1,024 MB; read from V8's
heap controller, not measured here).
\`--optimize-for-size\` reaches the peak target (236 MB) but costs CPU (below): not kept.

Throughput cost (scavenges per row: a 2 MB semi-space fills 8× as often as the default 16 MB): \`node
<build>/bench/run.js --only throughput --case "1,000 persistent" --reps 1 --no-overload --no-write\`, the builds
alternated (before, kept, semi-space 4, \`--optimize-for-size\`), 22:02–22:27 UTC, **load average 11–124 and other
sessions using 108–183 % of the 2 cores during every measurement**, so rows/s and the ratios to the sink are noise
(the monitor got 17–84 % of a core); the monitor's CPU time for the 400,000 rows (rows ÷ rows/s × CPU %) is the figure
to read:

| build (launch) | runs (time, UTC) | rows/s | monitor CPU % | CPU s for the 400k rows | ratio to the sink, same run | RSS peak MB |
| --- | --- | --- | --- | --- | --- | --- |
| before (no settings) | 22:02, 22:05, 22:08, 22:15 | 40,390 · 104,829 · 28,517 · 15,507 | 39.2 · 83.9 · 28.2 · 19.2 | 3.88 · 3.20 · 3.96 · 4.95 (median **3.92**) | 0.52 · 0.94 · 0.60 · 0.29 | 366 · 371 · 349 · 376 |
| semi-space 2 + 2 arenas (kept) | 22:03, 22:06, 22:09, 22:18, 22:22 | 21,427 · 64,831 · 34,208 · 26,013 · 29,988 | 24.1 · 62.7 · 35.1 · 27.9 · 31.8 | 4.50 · 3.87 · 4.10 · 4.29 · 4.24 (median **4.24**) | 0.36 · 0.55 · 0.37 · 0.27 · 0.69 | 323 · 322 · 298 · 317 · 332 |
| semi-space 4 + 2 arenas | 22:10, 22:11, 22:19 | 34,971 · 13,941 · 17,908 | 36.7 · 17.3 · 19.5 | 4.20 · 4.96 · 4.36 (median 4.36) | 0.32 · 0.39 · 0.47 | 316 · 317 · 313 |
| semi-space 2 + 2 arenas + \`--optimize-for-size\` | 22:04 | 29,798 | 50.1 | 6.73 | 0.17 | 242 |

Four runs did not land their burst and are left out (kept 3,600, before 242,480 and 19,984, semi-space 4 104,000 of
400,000 rows: the generator's burst ended early while another session ran ~10,000 processes on the box). CPU per row,
kept ÷ before: **1.08×** (medians 4.24 / 3.92 CPU s; the three rounds where both landed: 1.16, 1.21, 1.04); semi-space
4 is no cheaper within this noise; \`--optimize-for-size\` 1.7× (one run): not kept.
Re-measure the throughput ratio on a quiet box (\`node dist/bench/run.js --only throughput\` against \`node
dist-before/bench/run.js …\`, a build before lean-rss): the 0.85× target is not this branch's, and this cost is its
price in CPU.

10,000 idle bots with their own pids (\`node <build>/bench/run.js --only idle --no-write\`, this build then the
build before, twice, 22:26–22:41 UTC, **load average 87–860, other work 164–181 % of a core during each**): steady RSS
kept 227 and 197 MB (peaks 227, 235), before 250 and 273 MB (peaks 291, 279): −23 and −76 MB per pair; monitor CPU
12.4 / 17.3 % against 11.7 / 17.6 %.

**Not shown:** peak ≤ 250 MB in the 400k burst (288–322 MB here, 298–332 MB in the throughput runs); back under 200 MB
within 30 s in every run (two of three); 10,000 idle bots ≤ 180 MB steady (197–227 MB).
Next levers: a major GC once the links have drained after a burst (V8 exposes none without \`--expose-gc\`; not done),
fewer rows held on the main thread during a burst (\`PAUSE_READING_AT\` in src/server/ingest-server.ts, another
engineer's room this session), and a lower old-generation limit for the main thread, which would lower V8's heap
growing factor at the risk of the whole process, not one actor, running out of memory.

`;

/**
 * Measured figures behind single code choices (each code site points here). Measured by hand or
 * taken from profiles, not by `npm run bench`; the table says how.
 */
export const CODE_CHOICES = `## Numbers behind code choices

Measured figures that a piece of code relies on; the code keeps a one-line reason and points here.
Not re-measured by \`npm run bench\`: each says how it was measured. Refresh a line when its code changes.

| choice | where | measured |
| --- | --- | --- |
| Reports read whole ISO weeks from \`llm_usage_weekly\`, days only at the edges | \`src/llm/rollups.ts\`, \`src/llm/report.ts\` | \`kissmon usage --since 90d --by channel,model\` on 10M rows, main vs this level alternated five times at load 48–88 (PERFORMANCE.md, LLM accounting, "The weekly level"): the query 176–230 → 65–91 ms CPU (median ratio 0.40), the CLI process 0.42–0.45 → 0.25–0.38 s CPU (0.67); a monthly level (TEMP table) cut the daily part to 71–107 ms but leaves ~59 days daily for a window that starts early in a month and ends late in one |
| \`kissmon\`'s tables laid out by its own few lines (\`plainTable\`), not cli-table3 | \`src/cli-options.ts\` | a 400-row × 12-column table (the 90-day \`usage --by channel,model\`): cli-table3 took 215–307 ms of CPU (120–234 ms with \`compact\`), per-cell option merging and ANSI scans in its profile; the whole text command went 0.48–0.75 → 0.27–0.33 s wall on the quiet box (10M rows, load 1.6–4.6); string-width only for cells that are not plain ASCII |
| Link batches wait up to 1 ms | \`src/actors/link.ts\` (\`BUSY_BATCH\`) | Findings 2 above: one postMessage per item was 21 % of the main thread under one-shot load; gathering for 1 ms gave +19 % one-shot connects/s |
| Ingest pauses reading at 65,536 rows held per link (resumes at half) | \`src/server/ingest-server.ts\` (\`PAUSE_READING_AT\`) | Findings 7 above: at half of \`maxPendingPerLink\` (250,000) the db-writer's heap after a 1,000-bot 400k-row burst was 70 MB, at 65,536 27–44 MB, peak RSS 416 → 362 MB (one run each, load average 17–155); the writer commits in transactions of up to 20,000 rows, so 65,536 held keeps it fed. \`writer.maxHeldRows\` (50,000) stays below it, so a long lock still spools rather than pausing ingest |
| A Link keeps a posted batch as its column runs until acknowledged | \`src/actors/link.ts\` (\`#unacked\`) | Findings 7 above: the main thread's heap in use after a 1,000-bot 400k-row burst 86 → 55 MB, RSS at the end 359 → 333 MB (one run each): the row objects die young instead of being promoted while they wait for their commit |
| The alerter loads kysely only for a PostgreSQL store | \`workers/alerter.ts\`, \`src/db/schema-constants.ts\` | Findings 7 above: the alerter's heap in use 16 → 9–12 MB; \`test/thread-imports.test.ts\` keeps its static imports free of kysely and pg |
| Link batches go column-wise (one array per key) | \`src/actors/link.ts\` (\`toColumns\`) | Findings 6 above: the writer's deserialisation fell from 17–25 % to ~5 % of its busy time, the main thread's clone from 12–13 % to 9 %; 1,000-bot bursts 1.18× the rows/s of the same build without it |
| The line-rate throttle counts empty lines | \`src/server/ingest-server.ts\` (\`#frame\`) | unthrottled, one connection flooding bare newlines pushed the other bots' heartbeat p99 from 2 ms to 520 ms (commit b46f459, before the throttle counted empty lines) |
| Actor heap limits (\`supervisor.maxOldGenerationSizeMb\`) | \`src/config.ts\` | V8 heap used at 10,000 bots: registry 45 MB, db-writer 23 MB, sampler 14 MB; db-writer with 256k rows held (database locked) 81 MB. (commit 0ba8398); the limits, 512 MB and 1024 MB for the writer, leave headroom over these |
| \`bot_metrics.features_json\` is kept, not dropped | \`src/db/schema.ts\` (migration \`0002_bot_identity\`) | dropping a column rewrites the table under the write lock: 1.7 s per million rows; a week of 10,000 bots is ~400M rows, minutes of a locked database at start-up (commit ecb0f3e) |
| \`isoTime\` reuses the text of the same millisecond | \`src/db/schema-constants.ts\` | without it \`toISOString\` was ~12 % of the writer's CPU at 150k rows/s (commit 8fe92ca) |
| The sampler reads cpu and rss from its one \`/proc/<pid>/stat\` read, parsed from the bytes; pidusage only without \`/proc\` | \`workers/sampler.ts\`, \`src/proc.ts\` | \`node dist/bench/sampler.js 100 1000 10000\` (2026-12-01, box shared with other test runs): a steady 10,000-pid round 322 ms wall, 164 ms CPU, no fd held, against 329 ms wall, 382 ms CPU for the earlier design (pidusage reading through fds we seeded into its private history) and 183 ms for plain pidusage, which keeps 10,000 fds open. Parsing the line from its bytes instead of decoding and splitting it into ~50 strings (three alternated runs of \`node dist/bench/sampler.js 10000\`, before/after, load average 10–130): the steady round 208 / 232 / 258 → 153 / 162 / 167 ms CPU, the reads alone 156–185 → 129–141 ms CPU. Floor: a small C program (not in the tree) doing the same open + pread + close over the same pids took 108–135 ms (open + close ~6 µs, the kernel's rendering of the line ~10 µs per pid); ours is now ~15 % on top of those syscalls, so the 150 ms target for a 10,000-pid round is at the kernel's own cost on this box (before the held fds of the next row) |
| The sampler holds one fd per watched pid on \`/proc/<pid>/stat\` and preads it each round (one syscall per pid), within an fd budget | \`src/proc.ts\` (\`HeldStatFds\`), \`workers/sampler.ts\` | Six alternated pairs of \`node dist-before/bench/sampler.js 10000\` (the build before) and \`node dist/bench/sampler.js 10000\` (2026-12-01 22:07–22:17 and 22:48–22:52 UTC, load average 19–93, once 280): the steady 10,000-pid round 147.2 / 154.1 / 171.2 / 156.7 / 169.6 / 159.7 → 96.6 / 77.0 / 124.5 / 84.4 / 91.4 / 71.2 ms CPU (ratios 0.66 / 0.50 / 0.73 / 0.54 / 0.54 / 0.45, **median 0.54**; medians 158 → 88 ms), wall 499 / 219 / 643 / 452 / 729 / 566 → 307 / 162 / 777 / 307 / 141 / 79 ms (median 533 → 234; the load's more than ours); the reads alone by open + pread + close 116–168 ms CPU, through held fds 61–80 ms. open + close were ~45 % of a round's syscall time (Findings 8: \`open\` 32.2 %, \`close\` 9.5 %, \`read\` 38.6 %). The cost: one fd per pid, and fds are shared with the bot connections, so held fds never take the process above three quarters of RLIMIT_NOFILE (a quarter, at least 1,024, stays free; counted from /proc/self/fd every 10 rounds, ~1 µs per fd): with this box's 20,000 and 10,000 connections about 4,950 pids would be held and the rest read by path (arithmetic, not measured with a live fleet). EMFILE/ENFILE gives every held fd back and reads by open + close (logged once, \`fd_limit_hits\`); a held fd whose process exited (ESRCH) is re-read by path, so pid reuse is still judged by start time |
| A sample round crosses to the registry column-wise and is applied 500 samples per turn | \`workers/registry.ts\` (\`SAMPLE_SLICE\`), \`workers/sampler.ts\` | \`v8.deserialize\` of a 10,000-sample round, process CPU, 2026-12-01, load ~20: objects 12–13.5 ms, columns 2.8–3.7 ms (+ \`fromColumns\`: 4.6–5.9 ms); applying 10,000 samples 3.2–5.7 ms, so ~0.3 ms per 500 (Findings 8) |
| The registry's rebuild reads \`bot_status\` in a one-shot thread | \`workers/registry.ts\`, \`src/actors/rebuild-reader.ts\` | a fresh idle monitor, three alternated starts each (\`kissmon start\`, \`GET /health\` 6 s later, 2026-12-01): the registry's V8 heap 10.4–10.7 → 8.0–8.1 MB and the process RSS 177–183 → 172–177 MB once the registry no longer imports kysely and better-sqlite3 for its one read at start-up; a worker that imports \`src/db/schema.js\` alone holds +2.9 MB heap used, +16 MB heap committed. (The alerter no longer loads kysely either: see above) |
| A compact heartbeat line is decoded from its bytes, not by JSON.parse and the schema | \`src/protocol/decode.ts\` (\`decodeHeartbeatFast\`) | Findings 8 above (lean-heartbeat2): 1,161–1,398 → 588–677 ns CPU per loadtest-shaped line (three alternated runs, load ~140); \`test/decode-fast-path.test.ts\` holds it to the full path |
| The 5 s \`bot_status\` flush writes 500 rows per turn | \`workers/registry.ts\` (\`STATUS_SLICE\`) | Findings 8 above: one task of 10,000 rows every 5 s at 10,000 heartbeating bots, as the sample rounds were before \`SAMPLE_SLICE\` |
| \`#markStale\` skips its walk until the oldest online heartbeat can have expired | \`workers/registry.ts\` (\`#staleCheckAt\`) | Findings 8 above: the walk over every bot ran each tick (each second); with bots heartbeating every second it now runs about once per \`staleAfterMs\` |
| Launch settings: \`--max-semi-space-size=2\`, \`MALLOC_ARENA_MAX=2\` | \`src/launch-settings.ts\`, \`bin/kissmon.js\` (shebang) | Findings 9 above: RSS of an empty monitor 192–196 → 163 MB, the 1,000-bot 400k-row burst's peak 350–358 → 288–322 MB and 30 s later 342–343 → 199 MB in two of three runs (304 in the third); ~8 % more CPU per row (median CPU s 3.92 → 4.24, load average 11–124). Semi-space 1 or 4 no better; \`--optimize-for-size\` 236 MB peak but 1.7× the CPU |
| No per-bot labels in \`/metrics\` | \`src/http/metrics.ts\` | not measured here: the product brief's figure for 10,000 series is 45 ms and 0.5 MB per scrape |
`;

/**
 * The monitor guarding itself (issue 9). Measured by hand, not by `npm run bench`: the commands are
 * in the text; refresh the numbers when the supervisor, the writer or the log sink change.
 */
export const SELF_PROTECTION = `## Self-protection: hung actors, locked database, wedged stdout

Measured on this 2-core box with the commands shown (they start their own monitors).

**A hung actor** (\`node dist/bench/liveness.js --repeats 3\`: 200 bots under \`kissmon loadtest\`,
default liveness settings — ping every 1 s, hung after 5 s; \`POST /fault/hang\` makes the actor's
thread spin; /health polled every 20 ms):

| actor | fault → detected, ms (3 runs) | fault → restarted and ready, ms (3 runs) |
| --- | --- | --- |
| registry | 4,760 · 4,660 · 4,542 | 5,878 · 5,362 · 5,385 |
| db | 4,938 · 4,301 · 5,131 | 5,678 · 5,250 · 6,761 |
| sampler | 5,220 · 4,039 · 4,327 | 5,549 · 4,464 · 4,890 |

(2026-12-01, measured on the supervision branch before the final merge; the loadtest around it:
19,998 rows, 0 lost, 0 false stale.)

**SIGTERM while another connection holds the write lock** (\`node dist/bench/self-protection.js
--rows 50000\`, default 20 s deadline): exit 0 after 11.5 s, no signal; every row
committed or spooled (here the writer had already spooled the held rows at \`writer.maxHeldMs\`); the
next start had all 50,000 stored 2.5 s after it was launched, 50,000 distinct ids (exactly once).
Before the fix in this commit's parent series, the same run lost 19,512 rows (spool out of order).

**Heartbeats while stdout is a pipe nobody reads** (same command; 1,000 bots, a heartbeat each
second, 500 llm_usage lines/s, \`kissmon loadtest ... --duration 15\`): heartbeat p50 1.26 ms / p99 4.46 ms with the pipe
full (nothing read; the 4 MB queue not yet past its bound, so 0 dropped), against p50 1.23 / p99
3.50 ms with stdout on /dev/null; 0 lost, 0 false stale in both. With synchronous logging the same
wedge held a register ~6 s and could stop the registry thread in write(2).
`;
