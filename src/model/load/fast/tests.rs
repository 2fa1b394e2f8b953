//! The fast path against the general one on generated input: whatever the
//! fast path accepts must be exactly what the general path yields, in
//! both modes, and whatever it refuses must come out of the general path
//! unchanged (errors included).

use super::super::{Loaded, Mode, parse_general, parse_with};
use super::parse_json;
use serde_json::{Value, json};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    /// Mostly the first (valid) half of `xs`, sometimes anything.
    fn pick(&mut self, xs: &[Value]) -> Value {
        let n = if self.chance(90) {
            xs.len().div_ceil(2)
        } else {
            xs.len()
        };
        xs[self.below(n)].clone()
    }
}

fn strings(xs: &[&str]) -> Vec<Value> {
    xs.iter().map(|s| json!(s)).collect()
}

fn maybe(r: &mut Rng, m: &mut serde_json::Map<String, Value>, key: &str, pct: u64, xs: &[Value]) {
    if r.chance(pct) {
        m.insert(key.to_string(), r.pick(xs));
    }
}

fn route(r: &mut Rng) -> Value {
    let nets = strings(&[
        "10.0.0.1/32",
        "10.0.0.2/32",
        "10.1.0.0/16",
        "10.2.0.0/16",
        "10.3.0.0/16",
        "10.0.0.9/32",
        "fd00::1/128",
        "10.0.0.1/8",
        "bad",
        "10.0.0.3",
        "::1",
        "10.4.0.0/16",
    ]);
    let ips = strings(&[
        "10.0.0.1", "10.0.0.2", "10.0.0.1", "fd00::1", "x", "10.0.0.3",
    ]);
    let devs = strings(&["eth0", "e1", "", "a/b"]);
    let scopes = strings(&["link", "global", "host", "bogus"]);
    let mut m = serde_json::Map::new();
    let mut dst = nets.clone();
    dst.push(Value::Null);
    dst.push(json!(5));
    maybe(r, &mut m, "dst", 97, &dst);
    maybe(r, &mut m, "gw", 75, &ips);
    maybe(r, &mut m, "src", 5, &ips);
    maybe(r, &mut m, "dev", 60, &devs);
    maybe(r, &mut m, "scope", 15, &scopes);
    maybe(
        r,
        &mut m,
        "onlink",
        10,
        &[json!(true), json!(false), json!("yes")],
    );
    maybe(
        r,
        &mut m,
        "targetRef",
        10,
        &[json!({"kind": "Pod", "name": "p"}), json!({"kind": 1})],
    );
    maybe(
        r,
        &mut m,
        "nextHops",
        10,
        &[
            json!([{"gw": "10.0.0.1", "dev": "eth0"}, {"gw": "10.0.0.2", "dev": "e1", "weight": 3}]),
            json!([{"gw": "10.0.0.1", "dev": "eth0", "weight": 7}]),
            json!([]),
            json!(null),
            json!([{"gw": "10.0.0.1"}]),
            json!([{"gw": "10.0.0.1", "dev": "eth0", "weight": 256}]),
            json!([{"gw": "fd00::1", "dev": "eth0"}, {"gw": "fd00::1", "dev": "eth0"}]),
            json!([{"gw": "10.0.0.1", "dev": "eth0", "weight": "1"}]),
            json!({"gw": "10.0.0.1"}),
        ],
    );
    maybe(r, &mut m, "comment", 5, &[json!({"any": [1, 2]})]);
    Value::Object(m)
}

fn rule(r: &mut Rng) -> Value {
    let nets = strings(&[
        "10.0.0.0/8",
        "10.80.0.2/32",
        "10.0.0.1/8",
        "fd00::/64",
        "nope",
    ]);
    let mut m = serde_json::Map::new();
    maybe(r, &mut m, "dst", 40, &nets);
    maybe(r, &mut m, "src", 15, &nets);
    maybe(r, &mut m, "iif", 50, &strings(&["liqo-tunnel", "x", "a b"]));
    maybe(r, &mut m, "oif", 10, &strings(&["o1", "o:2"]));
    maybe(
        r,
        &mut m,
        "fwmark",
        15,
        &[json!(1), json!(0), json!(-1), json!("7")],
    );
    maybe(r, &mut m, "priority", 10, &[json!(100), json!(1.5)]);
    maybe(r, &mut m, "targetRef", 5, &[json!({"name": "n"})]);
    if r.chance(95) {
        let routes: Vec<Value> = (0..r.below(6)).map(|_| route(r)).collect();
        let v = if r.chance(97) {
            json!(routes)
        } else {
            Value::Null
        };
        m.insert("routes".into(), v);
    }
    Value::Object(m)
}

fn object(r: &mut Rng) -> Value {
    let mut m = serde_json::Map::new();
    maybe(
        r,
        &mut m,
        "apiVersion",
        80,
        &strings(&[
            "networking.liqo.io/v1beta1",
            "networking.liqo.io/v1",
            "other.io/v1",
            "",
        ]),
    );
    maybe(
        r,
        &mut m,
        "kind",
        90,
        &[
            json!("RouteConfiguration"),
            json!("RouteConfiguration"),
            json!("RouteConfiguration"),
            json!("ConfigMap"),
            json!(""),
            json!(3),
        ],
    );
    let mut meta = serde_json::Map::new();
    maybe(r, &mut meta, "name", 95, &strings(&["a", "b", ""]));
    maybe(r, &mut meta, "namespace", 70, &strings(&["liqo", "x"]));
    maybe(
        r,
        &mut meta,
        "labels",
        30,
        &[json!({"app": "x"}), json!({"liqo.io/managed": true})],
    );
    maybe(
        r,
        &mut meta,
        "deletionTimestamp",
        5,
        &strings(&["2024-05-01T10:00:00Z"]),
    );
    maybe(
        r,
        &mut meta,
        "managedFields",
        10,
        &[json!([{"manager": "m"}])],
    );
    if r.chance(97) {
        m.insert("metadata".into(), Value::Object(meta));
    }
    let mut table = serde_json::Map::new();
    maybe(r, &mut table, "name", 95, &strings(&["t", "u", "", "a b"]));
    if r.chance(95) {
        let rules: Vec<Value> = (0..r.below(4)).map(|_| rule(r)).collect();
        table.insert("rules".into(), json!(rules));
    }
    maybe(r, &mut table, "targetRef", 5, &[json!({"kind": "Node"})]);
    let spec = if r.chance(98) {
        json!({"table": table})
    } else {
        json!({"table": null})
    };
    m.insert("spec".into(), spec);
    maybe(
        r,
        &mut m,
        "status",
        5,
        &[json!({"conditions": [{"host": "h", "type": "Applied", "status": "True"}]})],
    );
    Value::Object(m)
}

fn document(r: &mut Rng) -> Value {
    match r.below(20) {
        0 => json!({"apiVersion": "networking.liqo.io/v1beta1", "kind": "RouteConfigurationList",
                    "metadata": {"resourceVersion": "9"},
                    "items": (0..r.below(3)).map(|_| {
                        let mut o = object(r);
                        if let Value::Object(m) = &mut o {
                            if r.chance(80) { m.remove("kind"); }
                        }
                        o
                    }).collect::<Vec<_>>()}),
        1 => {
            json!({"kind": "List", "items": (0..r.below(3)).map(|_| object(r)).collect::<Vec<_>>()})
        }
        2 => json!([object(r)]),
        _ => object(r),
    }
}

/// JSON text with keys in random order, random spacing, and now and then
/// a key spelled with an escape or written twice.
fn write(r: &mut Rng, v: &Value, out: &mut String) {
    let space = |r: &mut Rng, out: &mut String| {
        if r.chance(10) {
            out.push_str(["\n", " ", "\t "][r.below(3)]);
        }
    };
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            for i in (1..keys.len()).rev() {
                keys.swap(i, r.below(i + 1));
            }
            out.push('{');
            for (n, k) in keys.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                space(r, out);
                if r.chance(2) && k.starts_with('d') {
                    out.push_str(&format!("\"\\u0064{}\"", &k[1..]));
                } else {
                    out.push_str(&Value::String(k.to_string()).to_string());
                }
                out.push(':');
                write(r, &m[k.as_str()], out);
                if r.chance(1) {
                    out.push(',');
                    out.push_str(&Value::String(k.to_string()).to_string());
                    out.push(':');
                    write(r, &m[k.as_str()], out);
                }
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (n, x) in a.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                space(r, out);
                write(r, x, out);
            }
            out.push(']');
        }
        Value::String(s) if r.chance(2) && s.starts_with("10.") => {
            out.push_str(&format!("\"\\u0031{}\"", &s[1..]));
        }
        other => out.push_str(&other.to_string()),
    }
}

#[test]
fn fast_path_agrees_with_the_general_path() {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut fast, mut validated, mut valid) = (0, 0, 0);
    for _ in 0..7_000 {
        let mut text = String::new();
        for _ in 0..1 + r.below(2) {
            let doc = document(&mut r);
            write(&mut r, &doc, &mut text);
            text.push('\n');
        }
        let (objects, errors) = parse_general(&text, "t.json");
        // Match-all rules accepted, so the generator's rules without a
        // selector still reach the later checks.
        let policy = crate::model::Policy {
            allow_match_all: true,
            ..crate::model::Policy::new(114)
        };
        let want: Vec<_> = objects
            .iter()
            .map(|o| crate::model::validate_with(o, &policy))
            .collect();

        let (kept, kept_errors) = parse_with(&text, "t.json", Mode::Keep);
        assert_eq!(kept_errors, errors, "{text}");
        let kept: Vec<_> = kept.into_iter().map(|l| l.object).collect();
        assert_eq!(kept, objects, "{text}");

        let (checked, checked_errors) = parse_with(&text, "t.json", Mode::Validate(policy));
        assert_eq!(checked_errors, errors, "{text}");
        assert_eq!(checked.len(), objects.len(), "{text}");
        for (
            (
                Loaded {
                    object,
                    validated: v,
                },
                full,
            ),
            want,
        ) in checked.iter().zip(&objects).zip(&want)
        {
            assert_eq!(object.metadata, full.metadata, "{text}");
            assert_eq!(object.spec.table.name, full.spec.table.name, "{text}");
            assert_eq!(
                (&object.kind, &object.api_version),
                (&full.kind, &full.api_version)
            );
            if let Some(v) = v {
                assert_eq!(v, want, "{text}");
                validated += 1;
                valid += usize::from(v.is_ok());
            }
        }
        fast += usize::from(parse_json(&text, Mode::Keep).is_some());
    }
    // The generator must exercise both paths and both outcomes.
    eprintln!("fast {fast} validated {validated} valid {valid}");
    assert!(fast > 1_000 && fast < 5_000, "fast path taken {fast} times");
    assert!(
        valid > 300 && validated - valid > 300,
        "{valid} of {validated} valid"
    );
}

/// `nextHops` taken by the fast path, validated and kept, exactly as the
/// general path does it (valid and invalid next hops alike).
#[test]
fn next_hops_take_the_fast_path_with_the_same_result() {
    for hops in [
        json!([{"gw": "10.0.0.1", "dev": "eth0", "weight": 3}, {"gw": "10.0.0.2", "dev": "e1"}]),
        json!([{"gw": "10.0.0.1", "dev": "eth0"}]),
        json!([{"gw": "10.0.0.1", "dev": "eth0", "weight": 300}]),
        json!([{"dev": "eth0"}]),
    ] {
        let text = json!({
            "apiVersion": "networking.liqo.io/v1beta1", "kind": "RouteConfiguration",
            "metadata": {"name": "o", "namespace": "liqo"},
            "spec": {"table": {"name": "t", "rules": [{"iif": "x", "routes": [
                {"dst": "10.8.0.0/16", "dev": "ignored0", "nextHops": hops}]}]}}
        })
        .to_string();
        let (objects, errors) = parse_general(&text, "t.json");
        assert!(errors.is_empty(), "{errors:?}");
        let fast = parse_json(&text, Mode::Keep).expect("fast path taken");
        assert_eq!(fast[0].object, objects[0]);
        assert_eq!(
            objects[0].spec.table.rules.as_ref().unwrap()[0]
                .routes
                .as_ref()
                .unwrap()[0]
                .next_hops
                .as_ref()
                .map(Vec::len),
            hops.as_array().map(Vec::len)
        );
        let checked = parse_json(&text, Mode::Validate(crate::model::Policy::new(114)))
            .expect("fast path taken");
        assert_eq!(
            checked[0].validated.as_ref(),
            Some(&crate::model::validate(&objects[0], 114)),
            "{text}"
        );
    }
}
