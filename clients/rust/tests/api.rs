//! The public API against a real Unix-socket listener (std's UnixListener stands in for the
//! monitor; test/client-rust.test.ts runs the real one).
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use kissbot_monitor_client::{LlmUsage, MonitorClient, Options, State};

/// A socket path in a private temp dir, removed with the dir when the test ends (even on failure).
struct TempSocket {
    dir: PathBuf,
    path: PathBuf,
}

impl Drop for TempSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn socket(name: &str) -> TempSocket {
    let dir = std::env::temp_dir().join(format!("kbm-rust-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempSocket { path: dir.join("m.sock"), dir }
}

/// Accepts connections and sends every line, tagged with its connection number, to the channel.
fn listen(path: &PathBuf) -> mpsc::Receiver<(usize, String)> {
    let listener = UnixListener::bind(path).unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(conn) = conn else { return };
            let tx = tx.clone();
            thread::spawn(move || {
                for line in BufReader::new(conn).lines() {
                    let Ok(line) = line else { return };
                    if tx.send((n, line)).is_err() {
                        return;
                    }
                }
            });
        }
    });
    rx
}

fn next(rx: &mpsc::Receiver<(usize, String)>) -> (usize, String) {
    rx.recv_timeout(Duration::from_secs(5)).expect("a line within 5 s")
}

fn usage() -> LlmUsage {
    LlmUsage { model: "gpt-4o".into(), feature: "jokes".into(), tokens_in: 145, tokens_out: 87, latency_ms: Some(1850.0), ..Default::default() }
}

#[test]
fn invalid_options_give_a_closed_client_whose_calls_return_false() {
    for options in [
        Options::new("has-dash", 1),
        Options::new("", 1),
        Options::new("x".repeat(65), 1),
        Options::new("ok", 0),
        Options::new("ok", 2_147_483_648),
        Options::new("ok", 1).socket_path(format!("/tmp/{}", "x".repeat(120))),
        Options::new("ok", 1).token("t".repeat(257)),
        Options::new("ok", 1).heartbeat_interval(Duration::ZERO),
    ] {
        let problem = options.validate().expect_err("invalid");
        let client = MonitorClient::connect(options);
        assert!(!client.register(&[("llm", true)]));
        assert!(!client.heartbeat());
        assert!(!client.log_llm_usage(usage()));
        let s = client.stats();
        assert_eq!(s.state, State::Closed);
        assert_eq!(s.invalid, 3);
        assert_eq!(s.last_error, Some(format!("invalid options: {problem}")));
        client.close();
    }
}

#[test]
fn absent_monitor_costs_nothing_and_close_returns_at_once() {
    let absent = socket("absent");
    let client = MonitorClient::connect(Options::new("absent_bot", std::process::id()).socket_path(&absent.path));
    let t0 = Instant::now();
    assert!(client.register(&[("llm", true)]));
    assert!(client.heartbeat());
    assert!(client.log_llm_usage(usage()));
    assert!(t0.elapsed() < Duration::from_millis(100), "calls do not wait for the monitor");
    let t0 = Instant::now();
    client.close();
    assert!(t0.elapsed() < Duration::from_millis(900), "close() tries once, it does not wait out the backoff");
    let s = client.stats();
    assert_eq!(s.state, State::Closed);
    assert!(s.connect_failures >= 1);
    assert!(s.last_error.is_some());
    assert!(!client.heartbeat());
    assert_eq!(client.stats().dropped_closed, s.dropped_closed + 1);
}

#[test]
fn lines_arrive_in_order_on_one_connection_register_first_again_after_a_reconnect() {
    let sock = socket("order");
    let path = &sock.path;
    let rx = listen(path);
    let client = MonitorClient::connect(Options::new("order_bot", 4242).socket_path(path).token("s3cret").backoff(Duration::from_millis(20), Duration::from_millis(100)));
    assert!(client.register(&[("llm", true)]));
    assert!(client.log_llm_usage(usage()));
    assert!(client.log_llm_usage(LlmUsage { id: Some("my-id".into()), ..usage() }));
    assert!(!client.log_llm_usage(LlmUsage { tokens_in: 1_000_000_001, ..usage() }), "refused locally");
    assert!(client.heartbeat());
    let lines: Vec<(usize, String)> = (0..4).map(|_| next(&rx)).collect();
    assert!(lines.iter().all(|(conn, _)| *conn == 0), "one connection");
    assert!(lines[0].1.starts_with("{\"type\":\"register\",\"channel\":\"order_bot\",\"pid\":4242,\"features\":{\"llm\":true}"), "{}", lines[0].1);
    assert!(lines[1].1.contains("\"type\":\"llm_usage\"") && lines[1].1.contains("\"id\":\"1092-"), "{}", lines[1].1);
    assert!(lines[2].1.contains("\"id\":\"my-id\""));
    assert!(lines[3].1.starts_with("{\"type\":\"heartbeat\""));
    assert!(lines.iter().all(|(_, l)| l.contains("\"v\":1") && l.contains("\"token\":\"s3cret\"")));
    assert_eq!(client.stats().invalid, 1);

    // The listener goes away and comes back on the same path: the client registers again first.
    drop(rx);
    std::fs::remove_file(path).unwrap();
    let rx = listen(path);
    let t0 = Instant::now();
    while client.stats().reconnects == 0 {
        assert!(client.heartbeat());
        assert!(t0.elapsed() < Duration::from_secs(5), "reconnected within 5 s: {:?}", client.stats());
        thread::sleep(Duration::from_millis(20));
    }
    let (_, first) = next(&rx);
    assert!(first.starts_with("{\"type\":\"register\""), "register first after a reconnect: {first}");
    client.close();
    let mut rest = Vec::new();
    while let Ok((_, line)) = rx.recv_timeout(Duration::from_secs(2)) {
        rest.push(line);
        if rest.last().is_some_and(|l| l.contains("\"type\":\"unregister\"")) {
            break;
        }
    }
    assert!(rest.last().is_some_and(|l| l.contains("\"type\":\"unregister\"")), "close() unregisters: {rest:?}");
    assert_eq!(client.stats().state, State::Closed);
}

#[test]
fn the_client_can_be_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<MonitorClient>();
    let sock = socket("shared");
    let client = std::sync::Arc::new(MonitorClient::connect(Options::new("shared_bot", 1).socket_path(&sock.path)));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let client = std::sync::Arc::clone(&client);
            thread::spawn(move || (0..100).filter(|_| client.log_llm_usage(usage())).count())
        })
        .collect();
    let queued: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let s = client.stats();
    assert_eq!(queued, 400);
    assert_eq!(s.buffered_usage + s.dropped_usage as usize, 400, "no monitor: everything queued (capacity 1000)");
}

#[test]
fn lines_cut_off_by_a_dying_connection_are_re_sent_whole_with_the_same_id() {
    let sock = socket("requeue");
    let path = &sock.path;
    // The first "monitor" accepts and never reads, so the kernel buffer fills and lines wait in the client.
    let first = UnixListener::bind(path).unwrap();
    let client = MonitorClient::connect(Options::new("requeue_bot", 4242).socket_path(path).queue_capacity(100_000).backoff(Duration::from_millis(20), Duration::from_millis(100)));
    assert!(client.register(&[]));
    let (stuck, _) = first.accept().unwrap();
    const N: u64 = 20_000; // ~5 MB of lines: far more than a Unix socket buffers
    for i in 0..N {
        let id = (i % 2 == 0).then(|| format!("user-{i}"));
        assert!(client.log_llm_usage(LlmUsage { tokens_in: i, id, ..usage() }));
    }
    let t0 = Instant::now();
    while client.stats().buffered_usage as u64 == N || client.stats().sent < 2 {
        assert!(t0.elapsed() < Duration::from_secs(5), "the client started writing: {:?}", client.stats());
        thread::sleep(Duration::from_millis(10));
    }
    // Replace the monitor: a new listener on the path; the old connection refuses further data
    // (shutdown of its read side: the client's next write fails with EPIPE) but keeps what its
    // kernel buffer holds, read below, so every line can be accounted for.
    drop(first);
    std::fs::remove_file(path).unwrap();
    let rx = listen(path);
    stuck.shutdown(std::net::Shutdown::Read).unwrap();
    let mut on_first = String::new();
    std::io::Read::read_to_string(&mut &stuck, &mut on_first).unwrap();
    let t0 = Instant::now();
    while client.stats().buffered > 0 || client.stats().reconnects == 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "everything re-sent to the new listener: {:?}", client.stats());
        thread::sleep(Duration::from_millis(10));
    }
    let stats = client.stats();
    assert!(stats.requeued > 0, "lines were taken back from the dead connection: {stats:?}");
    client.close();

    let mut lines = Vec::new();
    loop {
        let (_, line) = next(&rx);
        if line.contains("\"type\":\"unregister\"") {
            break;
        }
        lines.push(line);
    }
    assert!(lines[0].starts_with("{\"type\":\"register\""), "register first: {}", lines[0]);
    let field = |line: &str, name: &str| -> String {
        let start = line.find(&format!("\"{name}\":")).unwrap_or_else(|| panic!("{name} in {line}")) + name.len() + 3;
        line[start..].split([',', '}']).next().unwrap().trim_matches('"').to_string()
    };
    let usage: Vec<(u64, String)> = lines[1..].iter().map(|l| (field(l, "tokens_in").parse().unwrap(), field(l, "id"))).collect();
    // The first connection got whole lines 0..k (the register first) and maybe the start of line
    // k+1, cut off; the new one gets everything from the cut-off line on, whole, in order, each
    // line with the id it was given at the call.
    let complete: Vec<&str> = on_first.split_inclusive('\n').filter(|l| l.ends_with('\n')).collect();
    assert!(complete.len() > 1, "some lines reached the first connection");
    let last_whole: u64 = field(complete[complete.len() - 1], "tokens_in").parse().unwrap();
    assert_eq!(complete.len() as u64, last_whole + 2, "the first connection got the register and usage 0..={last_whole}");
    let first_resent = usage[0].0;
    assert_eq!(first_resent, last_whole + 1, "nothing lost between the connections");
    for (k, (tokens_in, id)) in usage.iter().enumerate() {
        assert_eq!(*tokens_in, first_resent + k as u64, "in order, none missing");
        if tokens_in % 2 == 0 {
            assert_eq!(id, &format!("user-{tokens_in}"));
        } else {
            // Generated ids end in the call's number among the generated ones, in hex.
            assert!(id.ends_with(&format!("-{:x}", tokens_in / 2)), "{id} for call {tokens_in}");
        }
    }
    assert_eq!(usage.last().unwrap().0, N - 1);
}
