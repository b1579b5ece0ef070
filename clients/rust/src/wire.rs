//! Protocol v1 lines, built by hand (std only). Field names and limits are those of
//! docs/protocol.schema.json, generated from the monitor's own schemas; `schema_check.rs` tests
//! every line built here against that file.
use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// The limits a message must respect (the monitor refuses a line that breaks one).
/// String lengths are counted in UTF-16 code units, as the monitor counts them; feature keys in
/// code points (Unicode characters), as the monitor's key pattern counts them.
pub mod limits {
    /// Sent as `v` on every message.
    pub const PROTOCOL_VERSION: u32 = 1;
    /// `channel`: 1-64 characters of `[A-Za-z0-9_]`.
    pub const MAX_CHANNEL_LENGTH: usize = 64;
    /// `pid`: 1 to this.
    pub const MAX_PID: u32 = 2_147_483_647;
    /// `tokens_in` and `tokens_out`: 0 to this.
    pub const MAX_TOKENS: u64 = 1_000_000_000;
    /// `model`: 1 to this many characters.
    pub const MAX_MODEL_LENGTH: usize = 128;
    /// The `feature` of an llm_usage and every key of `features` in a register.
    pub const MAX_FEATURE_LENGTH: usize = 64;
    /// Entries of `features` in a register.
    pub const MAX_FEATURES: usize = 64;
    /// The auth `token`.
    pub const MAX_TOKEN_LENGTH: usize = 256;
    /// `latency_ms`: a finite number from 0 to this.
    pub const MAX_LATENCY_MS: f64 = 86_400_000.0;
    /// The llm_usage `id` the client attaches so the monitor can drop a line it already stored.
    pub const MAX_ID_LENGTH: usize = 64;
}
use limits::*;

/// Length as the monitor measures it (JavaScript `.length`).
pub(crate) fn utf16_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.encode_utf16().count()
    }
}

pub(crate) fn is_channel(s: &str) -> bool {
    (1..=MAX_CHANNEL_LENGTH).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

pub(crate) fn is_pid(pid: u32) -> bool {
    (1..=MAX_PID).contains(&pid)
}

fn length_within(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&utf16_len(s))
}

pub(crate) fn is_token(s: &str) -> bool {
    length_within(s, 0, MAX_TOKEN_LENGTH)
}

/// One LLM call as the bot reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LlmUsage {
    /// 1-128 characters.
    pub model: String,
    /// 1-64 characters.
    pub feature: String,
    /// 0 to 1,000,000,000.
    pub tokens_in: u64,
    /// 0 to 1,000,000,000.
    pub tokens_out: u64,
    /// A finite number from 0 to 86,400,000.
    pub latency_ms: Option<f64>,
    /// 1-64 characters, unique per call. `None`: the client generates one. The same id goes out
    /// again when the line is re-sent after a reconnect, so the monitor can tell a re-send.
    pub id: Option<String>,
}

/// Why the monitor would refuse this llm_usage, or `None`.
pub(crate) fn usage_problem(u: &LlmUsage) -> Option<&'static str> {
    if !length_within(&u.model, 1, MAX_MODEL_LENGTH) {
        return Some("model must be 1-128 characters");
    }
    if !length_within(&u.feature, 1, MAX_FEATURE_LENGTH) {
        return Some("feature must be 1-64 characters");
    }
    if u.tokens_in > MAX_TOKENS || u.tokens_out > MAX_TOKENS {
        return Some("tokens_in and tokens_out must be at most 1000000000");
    }
    if let Some(ms) = u.latency_ms {
        // `!(a && b)` is also true for NaN.
        if !(ms.is_finite() && (0.0..=MAX_LATENCY_MS).contains(&ms)) {
            return Some("latency_ms must be a finite number from 0 to 86400000");
        }
    }
    if let Some(id) = &u.id {
        if !length_within(id, 1, MAX_ID_LENGTH) {
            return Some("id must be 1-64 characters");
        }
    }
    None
}

/// The `{"llm":true,...}` object of a register, or why the monitor would refuse it.
pub(crate) fn features_json(features: &[(&str, bool)]) -> Result<String, &'static str> {
    if features.len() > MAX_FEATURES {
        return Err("features must have at most 64 entries");
    }
    let mut out = String::with_capacity(2 + features.len() * 16);
    out.push('{');
    for (i, (key, value)) in features.iter().enumerate() {
        // Keys are counted in code points, as the monitor's key pattern counts them.
        if key.chars().count() > MAX_FEATURE_LENGTH {
            return Err("feature keys must be at most 64 characters");
        }
        // A repeated key would reach the monitor as the last value only: refuse the ambiguity.
        if features[..i].iter().any(|(k, _)| k == key) {
            return Err("feature keys must be unique");
        }
        if i > 0 {
            out.push(',');
        }
        push_json_string(&mut out, key);
        out.push_str(if *value { ":true" } else { ":false" });
    }
    out.push('}');
    Ok(out)
}

/// Who is speaking: fixed for a client's lifetime.
#[derive(Debug)]
pub(crate) struct Identity {
    pub channel: String,
    pub pid: u32,
    pub token: Option<String>,
}

/// A JSON string literal: quotes, backslashes and control characters escaped (RFC 8259 §7).
pub(crate) fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(s);
    } else {
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
    }
    out.push('"');
}

fn now_ms() -> Option<u64> {
    SystemTime::now().duration_since(UNIX_EPOCH).ok().map(|d| d.as_millis() as u64)
}

fn start(out: &mut String, kind: &str, id: &Identity) {
    out.push_str("{\"type\":\"");
    out.push_str(kind);
    out.push_str("\",\"channel\":");
    push_json_string(out, &id.channel);
}

/// `v`, `ts` and `token`: the optional extensions every message may carry; then the newline.
fn finish(out: &mut String, id: &Identity) {
    let _ = write!(out, ",\"v\":{PROTOCOL_VERSION}");
    if let Some(ts) = now_ms() {
        let _ = write!(out, ",\"ts\":{ts}");
    }
    if let Some(token) = &id.token {
        out.push_str(",\"token\":");
        push_json_string(out, token);
    }
    out.push_str("}\n");
}

pub(crate) fn register_line(id: &Identity, features: Option<&str>) -> String {
    let mut out = String::with_capacity(128 + features.map_or(0, str::len));
    start(&mut out, "register", id);
    let _ = write!(out, ",\"pid\":{}", id.pid);
    if let Some(features) = features {
        out.push_str(",\"features\":");
        out.push_str(features);
    }
    finish(&mut out, id);
    out
}

/// `kind` is "heartbeat" or "unregister": the two messages with only channel and pid.
pub(crate) fn presence_line(id: &Identity, kind: &str) -> String {
    let mut out = String::with_capacity(128);
    start(&mut out, kind, id);
    let _ = write!(out, ",\"pid\":{}", id.pid);
    finish(&mut out, id);
    out
}

/// Call only with a usage `usage_problem` accepted, and with the id to send.
pub(crate) fn llm_usage_line(id: &Identity, u: &LlmUsage, usage_id: &str) -> String {
    let mut out = String::with_capacity(192 + u.model.len() + u.feature.len());
    start(&mut out, "llm_usage", id);
    out.push_str(",\"model\":");
    push_json_string(&mut out, &u.model);
    out.push_str(",\"feature\":");
    push_json_string(&mut out, &u.feature);
    let _ = write!(out, ",\"tokens_in\":{},\"tokens_out\":{}", u.tokens_in, u.tokens_out);
    if let Some(ms) = u.latency_ms {
        // Display of a finite f64 is its shortest round-trip form without an exponent: valid JSON.
        let _ = write!(out, ",\"latency_ms\":{ms}");
    }
    out.push_str(",\"id\":");
    push_json_string(&mut out, usage_id);
    finish(&mut out, id);
    out
}
