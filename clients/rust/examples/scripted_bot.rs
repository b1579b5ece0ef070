//! A bot driven line by line on stdin, answering one JSON line per command on stdout; the
//! project's tests (test/client-rust.test.ts) run it against a real monitor.
//!
//! usage: scripted_bot <socket> <channel> [queue_capacity]
//! commands: register | heartbeat | usage <n> | start_heartbeat <ms> | unregister | stats |
//!           flood <n> | close
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use kissbot_monitor_client::{LlmUsage, MonitorClient, Options, Stats};

fn stats_json(s: &Stats) -> String {
    format!(
        "{{\"state\":\"{:?}\",\"sent\":{},\"buffered\":{},\"buffered_usage\":{},\"heartbeat_pending\":{},\"coalesced\":{},\"dropped\":{},\"dropped_usage\":{},\"invalid\":{},\"dropped_closed\":{},\"requeued\":{},\"reconnects\":{},\"connect_failures\":{},\"last_error\":{}}}",
        s.state,
        s.sent,
        s.buffered,
        s.buffered_usage,
        s.heartbeat_pending,
        s.coalesced,
        s.dropped,
        s.dropped_usage,
        s.invalid,
        s.dropped_closed,
        s.requeued,
        s.reconnects,
        s.connect_failures,
        // The crate's errors are ASCII sentences: Debug quoting is valid JSON for them.
        s.last_error.as_ref().map_or("null".to_string(), |e| format!("{e:?}")),
    )
}

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches(" kB").parse().ok()).unwrap_or(0)
}

fn usage(tokens_in: u64) -> LlmUsage {
    LlmUsage { model: "gpt-4o".into(), feature: "rust_bot".into(), tokens_in, tokens_out: 87, latency_ms: Some(1850.0), ..Default::default() }
}

/// Percentiles in µs of call durations in ns.
fn summary(mut ns: Vec<u64>) -> String {
    ns.sort_unstable();
    let at = |p: f64| ns[((p / 100.0) * ns.len() as f64) as usize].min(ns[ns.len() - 1]) as f64 / 1000.0;
    format!(
        "{{\"p50_us\":{:.1},\"p99_us\":{:.1},\"p999_us\":{:.1},\"max_us\":{:.1},\"over_1ms\":{}}}",
        at(50.0),
        at(99.0),
        at(99.9),
        ns[ns.len() - 1] as f64 / 1000.0,
        ns.iter().filter(|&&n| n >= 1_000_000).count()
    )
}

/// Times `n` heartbeat() and `n` log_llm_usage() calls, interleaved. A call of 1 ms or more is
/// timed again, up to 5 more times after a 2 ms sleep: an OS preemption on a loaded machine hits
/// one attempt, a client that waits on a frozen monitor would hit every attempt.
fn flood(client: &MonitorClient, n: usize) -> String {
    let (mut hb_first, mut hb_best) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut usage_first, mut usage_best) = (Vec::with_capacity(n), Vec::with_capacity(n));
    // Every call counts, re-timings included: each one is queued, coalesced or dropped.
    let (mut hb_calls, mut hb_true, mut usage_calls, mut usage_true, mut retries) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let rss_before = rss_kb();
    for i in 0..n {
        for kind in 0..2 {
            let mut best = u64::MAX;
            for attempt in 0..6 {
                if attempt > 0 {
                    if best < 1_000_000 {
                        break;
                    }
                    retries += 1;
                    std::thread::sleep(Duration::from_millis(2));
                }
                let call = usage(i as u64); // built before the clock starts: the bot's cost, not the client's
                let t0 = Instant::now();
                let ok = if kind == 0 { client.heartbeat() } else { client.log_llm_usage(call) };
                let took = t0.elapsed().as_nanos() as u64;
                if kind == 0 {
                    hb_calls += 1;
                    hb_true += u64::from(ok);
                } else {
                    usage_calls += 1;
                    usage_true += u64::from(ok);
                }
                if attempt == 0 {
                    if kind == 0 { hb_first.push(took) } else { usage_first.push(took) }
                }
                best = best.min(took);
            }
            if kind == 0 { hb_best.push(best) } else { usage_best.push(best) }
        }
    }
    let stats = client.stats();
    let rss_after = rss_kb();
    // Five times more calls: memory must not grow with the length of the freeze.
    for i in 0..5 * n {
        client.heartbeat();
        client.log_llm_usage(usage(i as u64));
    }
    let stats_more = client.stats();
    format!(
        "{{\"calls\":{},\"heartbeat\":{},\"heartbeat_settled\":{},\"usage\":{},\"usage_settled\":{},\"retries\":{},\"heartbeat_calls\":{},\"heartbeat_true\":{},\"usage_calls\":{},\"usage_true\":{},\"stats\":{},\"rss_kb_before\":{},\"rss_kb_after\":{},\"more_calls\":{},\"stats_more\":{},\"rss_kb_more\":{}}}",
        2 * n,
        summary(hb_first),
        summary(hb_best),
        summary(usage_first),
        summary(usage_best),
        retries,
        hb_calls,
        hb_true,
        usage_calls,
        usage_true,
        stats_json(&stats),
        rss_before,
        rss_after,
        10 * n,
        stats_json(&stats_more),
        rss_kb()
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: scripted_bot <socket> <channel> [queue_capacity]");
        std::process::exit(2);
    }
    let mut options = Options::new(args[2].as_str(), std::process::id()).socket_path(&args[1]).backoff(Duration::from_millis(50), Duration::from_millis(500));
    if let Some(capacity) = args.get(3).and_then(|c| c.parse().ok()) {
        options = options.queue_capacity(capacity);
    }
    let client = MonitorClient::connect(options);
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        let mut words = line.split_whitespace();
        let command = words.next().unwrap_or("");
        let arg: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(1);
        let reply = match command {
            "register" => format!("{{\"ok\":{}}}", client.register(&[("llm", true), ("translator", false)])),
            "heartbeat" => format!("{{\"ok\":{}}}", client.heartbeat()),
            "usage" => format!("{{\"ok\":{}}}", (0..arg).filter(|&i| client.log_llm_usage(usage(i))).count()),
            "start_heartbeat" => format!("{{\"ok\":{}}}", client.start_heartbeat(Duration::from_millis(arg))),
            "unregister" => format!("{{\"ok\":{}}}", client.unregister()),
            "stats" => stats_json(&client.stats()),
            "flood" => flood(&client, arg as usize),
            "close" => {
                let t0 = Instant::now();
                client.close();
                format!("{{\"close_ms\":{},\"stats\":{}}}", t0.elapsed().as_millis(), stats_json(&client.stats()))
            }
            other => format!("{{\"error\":\"unknown command {other:?}\"}}"),
        };
        writeln!(out, "{reply}").and_then(|_| out.flush()).expect("stdout");
        if command == "close" {
            break;
        }
    }
}
