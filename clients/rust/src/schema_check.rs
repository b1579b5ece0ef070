//! Checks the lines this crate builds against docs/protocol.schema.json, which `npm run build`
//! generates from the monitor's own schemas (src/protocol): field names, required fields, and
//! every limit. std only, so a tiny JSON parser and a validator for the keywords the file uses;
//! a keyword it does not know fails the test instead of being skipped.
use crate::limits::*;
use crate::wire::{features_json, llm_usage_line, presence_line, push_json_string, register_line, usage_problem, Identity, LlmUsage};

#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    fn at(&self, path: &[&str]) -> &Json {
        path.iter().fold(self, |v, key| v.get(key).unwrap_or_else(|| panic!("schema has no {}", path.join("."))))
    }
    fn num(&self) -> f64 {
        match self {
            Json::Num(n) => *n,
            other => panic!("expected a number, got {other:?}"),
        }
    }
    fn text(&self) -> &str {
        match self {
            Json::Str(s) => s,
            other => panic!("expected a string, got {other:?}"),
        }
    }
    fn members(&self) -> &[(String, Json)] {
        match self {
            Json::Obj(m) => m,
            other => panic!("expected an object, got {other:?}"),
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn parse(text: &str) -> Json {
        let mut p = Parser { s: text.as_bytes(), i: 0 };
        let v = p.value();
        p.ws();
        assert_eq!(p.i, p.s.len(), "trailing bytes after JSON at {}", p.i);
        v
    }
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\n' | b'\r' | b'\t') {
            self.i += 1;
        }
    }
    fn eat(&mut self, b: u8) {
        self.ws();
        assert_eq!(self.s.get(self.i), Some(&b), "expected {:?} at {}", b as char, self.i);
        self.i += 1;
    }
    fn literal(&mut self, word: &str, v: Json) -> Json {
        assert!(self.s[self.i..].starts_with(word.as_bytes()), "bad literal at {}", self.i);
        self.i += word.len();
        v
    }
    fn value(&mut self) -> Json {
        self.ws();
        match self.s.get(self.i).copied() {
            Some(b'{') => {
                self.i += 1;
                let mut members = Vec::new();
                self.ws();
                if self.s[self.i] == b'}' {
                    self.i += 1;
                    return Json::Obj(members);
                }
                loop {
                    self.ws();
                    let key = self.string();
                    self.eat(b':');
                    members.push((key, self.value()));
                    self.ws();
                    self.i += 1;
                    match self.s[self.i - 1] {
                        b',' => continue,
                        b'}' => return Json::Obj(members),
                        b => panic!("unexpected {:?} in object at {}", b as char, self.i),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s[self.i] == b']' {
                    self.i += 1;
                    return Json::Arr(items);
                }
                loop {
                    items.push(self.value());
                    self.ws();
                    self.i += 1;
                    match self.s[self.i - 1] {
                        b',' => continue,
                        b']' => return Json::Arr(items),
                        b => panic!("unexpected {:?} in array at {}", b as char, self.i),
                    }
                }
            }
            Some(b'"') => Json::Str(self.string()),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(_) => {
                let start = self.i;
                while self.i < self.s.len() && matches!(self.s[self.i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).unwrap();
                Json::Num(text.parse().unwrap_or_else(|_| panic!("bad number {text:?}")))
            }
            None => panic!("unexpected end of JSON"),
        }
    }
    fn hex4(&mut self) -> u32 {
        let h = std::str::from_utf8(&self.s[self.i..self.i + 4]).unwrap();
        self.i += 4;
        u32::from_str_radix(h, 16).unwrap()
    }
    fn string(&mut self) -> String {
        self.eat(b'"');
        let mut out = String::new();
        loop {
            let b = self.s[self.i];
            self.i += 1;
            match b {
                b'"' => return out,
                b'\\' => {
                    let e = self.s[self.i];
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let mut c = self.hex4();
                            if (0xd800..0xdc00).contains(&c) {
                                assert_eq!(&self.s[self.i..self.i + 2], b"\\u", "lone surrogate");
                                self.i += 2;
                                c = 0x10000 + ((c - 0xd800) << 10) + (self.hex4() - 0xdc00);
                            }
                            out.push(char::from_u32(c).expect("valid code point"));
                        }
                        _ => panic!("bad escape at {}", self.i),
                    }
                }
                b if b < 0x20 => panic!("raw control byte in a string at {}", self.i),
                _ => {
                    // Copy the whole UTF-8 sequence.
                    let start = self.i - 1;
                    let len = match b {
                        0..=0x7f => 1,
                        0xc0..=0xdf => 2,
                        0xe0..=0xef => 3,
                        _ => 4,
                    };
                    out.push_str(std::str::from_utf8(&self.s[start..start + len]).unwrap());
                    self.i = start + len;
                }
            }
        }
    }
}

fn schema() -> Json {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protocol.schema.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    Parser::parse(&text)
}

/// The longest key a `patternProperties` pattern allows: `^(.*)$` any, a pattern of characters
/// ending in `{0,N}$` (one repeated code point alternative) N code points; any other panics.
fn key_pattern_max(pattern: &str) -> Option<usize> {
    if pattern == "^(.*)$" {
        return None;
    }
    let n = pattern.strip_suffix("}$").and_then(|p| p.rsplit_once("{0,")).and_then(|(_, n)| n.parse().ok());
    Some(n.unwrap_or_else(|| panic!("a key pattern this check does not know: {pattern}")))
}

/// The checks of one property schema on one value; `Err` names the keyword that failed.
fn check(prop: &Json, value: &Json, channel_pattern: &str) -> Result<(), String> {
    for (keyword, arg) in prop.members() {
        let ok = match (keyword.as_str(), value) {
            ("description", _) => true,
            ("type", v) => match (arg.text(), v) {
                ("string", Json::Str(_)) | ("boolean", Json::Bool(_)) | ("object", Json::Obj(_)) | ("number", Json::Num(_)) => true,
                ("integer", Json::Num(n)) => n.fract() == 0.0,
                _ => false,
            },
            ("const", v) => arg == v,
            ("minimum", Json::Num(n)) => *n >= arg.num(),
            ("maximum", Json::Num(n)) => *n <= arg.num(),
            ("minLength", Json::Str(s)) => s.encode_utf16().count() as f64 >= arg.num(),
            ("maxLength", Json::Str(s)) => s.encode_utf16().count() as f64 <= arg.num(),
            // The one pattern the protocol has; x-limits.channelPattern is checked to be it.
            ("pattern", Json::Str(s)) => {
                assert_eq!(arg.text(), channel_pattern, "a pattern this check does not know");
                (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            }
            ("maxProperties", Json::Obj(m)) => m.len() as f64 <= arg.num(),
            ("patternProperties", Json::Obj(m)) => {
                let [(pattern, inner)] = arg.members() else { panic!("one pattern expected") };
                let max_key = key_pattern_max(pattern);
                m.iter().all(|(k, v)| max_key.is_none_or(|n| k.chars().count() <= n) && check(inner, v, channel_pattern).is_ok())
            }
            ("propertyNames", Json::Obj(m)) => m.iter().all(|(k, _)| check(arg, &Json::Str(k.clone()), channel_pattern).is_ok()),
            ("additionalProperties", _) => true, // objects the crate builds have only listed keys
            (k, _) if ["minimum", "maximum", "minLength", "maxLength", "pattern", "maxProperties", "patternProperties", "propertyNames"].contains(&k) => true,
            (k, _) => panic!("schema keyword {k:?} is unknown to schema_check.rs: teach it"),
        };
        if !ok {
            return Err(format!("{keyword} {arg:?} fails for {value:?}"));
        }
    }
    Ok(())
}

/// Validates one line the crate built against `$defs.<type>`: only known fields, required ones present.
fn validate(schema: &Json, line: &str) -> Result<(), String> {
    assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'), "one line, newline-terminated");
    let message = Parser::parse(line);
    let kind = message.get("type").expect("a type").text().to_string();
    let def = schema.at(&["$defs", &kind]);
    let channel_pattern = schema.at(&["x-limits", "channelPattern"]).text();
    let props = def.at(&["properties"]);
    for (field, value) in message.members() {
        match props.get(field) {
            Some(prop) => check(prop, value, channel_pattern).map_err(|e| format!("{kind}.{field}: {e}"))?,
            // Until the schema of this checkout lists `id`, the monitor ignores it (unknown fields are allowed).
            None if kind == "llm_usage" && field == "id" => {}
            None => return Err(format!("{kind} has no field {field:?} in the schema")),
        }
    }
    let Json::Arr(required) = def.at(&["required"]) else { panic!("required is a list") };
    for field in required {
        if message.get(field.text()).is_none() {
            return Err(format!("{kind} lacks required {:?}", field.text()));
        }
    }
    Ok(())
}

fn identity(token: Option<&str>) -> Identity {
    Identity { channel: "el_serda".into(), pid: 4242, token: token.map(String::from) }
}

fn usage() -> LlmUsage {
    LlmUsage { model: "gpt-4o".into(), feature: "jokes".into(), tokens_in: 145, tokens_out: 87, latency_ms: Some(1850.5), id: None }
}

#[test]
fn limits_are_those_of_the_schema() {
    let s = schema();
    let limit = |name: &str| s.at(&["x-limits", name]).num();
    assert_eq!(s.at(&["x-protocol-version"]).num(), f64::from(PROTOCOL_VERSION));
    assert_eq!(s.at(&["x-limits", "channelPattern"]).text(), format!("^[A-Za-z0-9_]{{1,{MAX_CHANNEL_LENGTH}}}$"));
    assert_eq!(limit("maxPid"), f64::from(MAX_PID));
    assert_eq!(limit("maxTokens"), MAX_TOKENS as f64);
    assert_eq!(limit("maxModelLength"), MAX_MODEL_LENGTH as f64);
    assert_eq!(limit("maxFeatureLength"), MAX_FEATURE_LENGTH as f64);
    assert_eq!(limit("maxFeatures"), MAX_FEATURES as f64);
    assert_eq!(limit("maxTokenLength"), MAX_TOKEN_LENGTH as f64);
    assert_eq!(limit("maxLatencyMs"), MAX_LATENCY_MS);
    // The same limits where the message schemas apply them.
    let usage = s.at(&["$defs", "llm_usage", "properties"]);
    assert_eq!(usage.at(&["model", "maxLength"]).num(), MAX_MODEL_LENGTH as f64);
    assert_eq!(usage.at(&["feature", "maxLength"]).num(), MAX_FEATURE_LENGTH as f64);
    assert_eq!(usage.at(&["tokens_in", "maximum"]).num(), MAX_TOKENS as f64);
    assert_eq!(usage.at(&["latency_ms", "maximum"]).num(), MAX_LATENCY_MS);
    match usage.get("id") {
        Some(id) => assert_eq!(id.at(&["maxLength"]).num(), MAX_ID_LENGTH as f64),
        None => eprintln!("note: this schema has no llm_usage.id yet; the crate sends it (<= {MAX_ID_LENGTH} chars) and the monitor ignores unknown fields"),
    }
    let register = s.at(&["$defs", "register", "properties"]);
    assert_eq!(register.at(&["pid", "maximum"]).num(), f64::from(MAX_PID));
    assert_eq!(register.at(&["token", "maxLength"]).num(), MAX_TOKEN_LENGTH as f64);
    assert_eq!(register.at(&["features", "maxProperties"]).num(), MAX_FEATURES as f64);
    if let Some(key) = register.at(&["features"]).get("propertyNames") {
        assert_eq!(key.at(&["maxLength"]).num(), MAX_FEATURE_LENGTH as f64);
    }
    let [(key_pattern, _)] = register.at(&["features", "patternProperties"]).members() else { panic!("one key pattern") };
    if let Some(max) = key_pattern_max(key_pattern) {
        assert_eq!(max, MAX_FEATURE_LENGTH, "feature key length in the key pattern");
    }
    if let Some(max) = s.at(&["x-limits"]).get("maxUsageIdLength") {
        assert_eq!(max.num(), MAX_ID_LENGTH as f64);
    }
}

#[test]
fn every_line_the_crate_builds_validates_with_all_optional_fields() {
    let s = schema();
    let features = features_json(&[("llm", true), ("translator", false)]).unwrap();
    for token in [None, Some("s3cret")] {
        let id = identity(token);
        let lines = [
            register_line(&id, Some(&features)),
            register_line(&id, None),
            presence_line(&id, "heartbeat"),
            presence_line(&id, "unregister"),
            llm_usage_line(&id, &usage(), "4242-1-0-0"),
            llm_usage_line(&id, &LlmUsage { latency_ms: None, ..usage() }, "x"),
        ];
        for line in &lines {
            validate(&s, line).unwrap_or_else(|e| panic!("{line}: {e}"));
            let m = Parser::parse(line);
            assert_eq!(m.get("v"), Some(&Json::Num(1.0)));
            assert!(m.get("ts").is_some());
            assert_eq!(m.get("token").map(Json::text), token);
        }
    }
}

#[test]
fn values_at_the_limits_pass_and_one_past_them_are_refused_by_crate_and_schema() {
    let s = schema();
    let id = identity(Some(&"t".repeat(MAX_TOKEN_LENGTH)));
    let at_limit = LlmUsage {
        model: "m".repeat(MAX_MODEL_LENGTH),
        feature: "é".repeat(MAX_FEATURE_LENGTH),
        tokens_in: MAX_TOKENS,
        tokens_out: 0,
        latency_ms: Some(MAX_LATENCY_MS),
        id: Some("i".repeat(MAX_ID_LENGTH)),
    };
    assert_eq!(usage_problem(&at_limit), None);
    validate(&s, &llm_usage_line(&id, &at_limit, at_limit.id.as_deref().unwrap())).unwrap();
    let keys: Vec<String> = (0..MAX_FEATURES).map(|i| format!("{i:0>64}")).collect();
    let max_features: Vec<(&str, bool)> = keys.iter().map(|k| (k.as_str(), true)).collect();
    validate(&s, &register_line(&id, Some(&features_json(&max_features).unwrap()))).unwrap();

    // One past each limit: the crate refuses it, and the schema would too (checked by building
    // the line anyway, bypassing the crate's own check).
    let past = [
        LlmUsage { model: "m".repeat(MAX_MODEL_LENGTH + 1), ..usage() },
        LlmUsage { model: String::new(), ..usage() },
        // 65 astral characters are 130 UTF-16 units: the monitor counts those.
        LlmUsage { model: "😀".repeat(65), ..usage() },
        LlmUsage { feature: "f".repeat(MAX_FEATURE_LENGTH + 1), ..usage() },
        LlmUsage { tokens_in: MAX_TOKENS + 1, ..usage() },
        LlmUsage { tokens_out: MAX_TOKENS + 1, ..usage() },
        LlmUsage { latency_ms: Some(MAX_LATENCY_MS + 1.0), ..usage() },
        LlmUsage { latency_ms: Some(-0.5), ..usage() },
    ];
    for u in &past {
        assert!(usage_problem(u).is_some(), "the crate accepts {u:?}");
        assert!(validate(&s, &llm_usage_line(&id, u, "x")).is_err(), "the schema accepts {u:?}");
    }
    for bad in [f64::NAN, f64::INFINITY] {
        assert!(usage_problem(&LlmUsage { latency_ms: Some(bad), ..usage() }).is_some());
    }
    assert!(usage_problem(&LlmUsage { id: Some("i".repeat(MAX_ID_LENGTH + 1)), ..usage() }).is_some());
    assert!(usage_problem(&LlmUsage { id: Some(String::new()), ..usage() }).is_some());

    let too_many: Vec<(String, bool)> = (0..=MAX_FEATURES).map(|i| (format!("f{i}"), true)).collect();
    let too_many: Vec<(&str, bool)> = too_many.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert!(features_json(&too_many).is_err());
    let unchecked = format!("{{{}}}", too_many.iter().map(|(k, _)| format!("\"{k}\":true")).collect::<Vec<_>>().join(","));
    assert!(validate(&s, &register_line(&id, Some(&unchecked))).is_err());
    assert!(features_json(&[(&"k".repeat(MAX_FEATURE_LENGTH + 1), true)]).is_err());
    assert!(features_json(&[("llm", true), ("llm", false)]).is_err());
    let long_token = identity(Some(&"t".repeat(MAX_TOKEN_LENGTH + 1)));
    assert!(validate(&s, &presence_line(&long_token, "heartbeat")).is_err());
    assert!(!crate::wire::is_token(long_token.token.as_deref().unwrap()));
}

#[test]
fn strings_are_escaped_into_json_that_parses_back_to_them() {
    let cases = ["plain", "quote \" and backslash \\", "line\nfeed\rtab\t", "\u{0}\u{1}\u{1f}\u{7f}", "ü é 中文 😀", "</script>\u{2028}\u{2029}", ""];
    for case in cases {
        let mut out = String::new();
        push_json_string(&mut out, case);
        assert!(!out.bytes().any(|b| b < 0x20), "raw control byte in {out:?}");
        assert_eq!(Parser::parse(&out), Json::Str(case.to_string()), "{out}");
    }
    let tricky = LlmUsage { model: "gpt \"4o\"\n".into(), feature: "a\\b".into(), ..usage() };
    let line = llm_usage_line(&identity(None), &tricky, "id\"1");
    let m = Parser::parse(&line);
    assert_eq!(m.get("model").map(Json::text), Some("gpt \"4o\"\n"));
    assert_eq!(m.get("feature").map(Json::text), Some("a\\b"));
    assert_eq!(m.get("id").map(Json::text), Some("id\"1"));
    assert_eq!(m.get("latency_ms"), Some(&Json::Num(1850.5)));
}
