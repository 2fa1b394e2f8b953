//! Strict decoding: input is read exactly as written or refused.
//!
//! Plain `serde_json::Value` lets the last of two equal keys win and turns
//! a YAML `.inf`/`.nan` into `null`, and serde_yaml does not apply YAML
//! merge keys (`<<: *base`) but passes `<<` on as an ordinary key. Each of
//! those can make a rule lose its selectors without a word. Here every one
//! is an error naming the field path:
//! - a key given twice in one mapping (YAML and JSON);
//! - a number that is not finite;
//! - a YAML merge key: refused rather than applied, because applying it
//!   means reimplementing YAML's merge order, and Liqo's manifests never
//!   use one (`kubectl` users can expand it with `yq explode`).
//!
//! [`check_spec_fields`] refuses unknown fields inside `spec` of file
//! input, as `kubectl apply` with strict field validation does (the API
//! server prunes them from stored objects, so API input never has any).
//!
//! [`check_yaml_depth`] refuses deeply nested YAML before the parser sees
//! it: the parser's own recursion limit is only reached after work that
//! grows with the square of the depth.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::fmt;

/// Deepest YAML nesting accepted (a RouteConfiguration needs about 8).
pub const MAX_YAML_DEPTH: usize = 64;

/// Where a value sits, as a chain of borrowed path segments, formatted
/// only when an error needs it.
#[derive(Clone, Copy)]
pub(crate) enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Key(parent, key) => {
                if matches!(parent, Path::Root) {
                    write!(f, "{key}")
                } else {
                    write!(f, "{parent}.{key}")
                }
            }
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

impl Path<'_> {
    fn at(&self) -> String {
        match self {
            Path::Root => "the document".to_string(),
            p => p.to_string(),
        }
    }
}

/// Something in the input that cannot be read as written, found while
/// decoding; decoding goes on so the other objects of a List still load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    /// Index in the document's `items` (or in a bare top-level array)
    /// when the problem is inside one of them.
    pub item: Option<usize>,
    /// Field path from the object (or from the document when `item` is
    /// `None`), e.g. `spec.table.rules[0].fwmark`.
    pub path: String,
    pub message: String,
}

impl Problem {
    fn at(path: &Path, message: String) -> Problem {
        // The chain from the root: is the first step `items[j]` or `[j]`?
        let mut steps = Vec::new();
        let mut p = path;
        loop {
            steps.push(p);
            match p {
                Path::Root => break,
                Path::Key(parent, _) | Path::Index(parent, _) => p = parent,
            }
        }
        steps.reverse(); // Root, first step, ...
        let item = match steps.get(1..3) {
            Some([Path::Key(_, "items"), Path::Index(_, j)]) => Some((*j, 3)),
            _ => match steps.get(1) {
                Some(Path::Index(_, j)) => Some((*j, 2)),
                _ => None,
            },
        };
        let (item, skip) = match item {
            Some((j, skip)) => (Some(j), skip),
            None => (None, 1),
        };
        let mut rel = String::new();
        for step in &steps[skip.min(steps.len())..] {
            match step {
                Path::Key(_, k) => {
                    if !rel.is_empty() {
                        rel.push('.');
                    }
                    rel.push_str(k);
                }
                Path::Index(_, i) => rel.push_str(&format!("[{i}]")),
                Path::Root => {}
            }
        }
        Problem {
            item,
            path: rel,
            message,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Problems found so far while decoding one document.
pub(crate) type Problems = RefCell<Vec<Problem>>;

/// Decodes one document strictly: the value (what is wrong replaced by
/// `null`), and everything that was wrong. Syntax errors are errors.
pub(crate) fn strict_document<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<(Value, Vec<Problem>), D::Error> {
    let problems = Problems::default();
    let value = StrictSeed {
        path: Path::Root,
        problems: &problems,
    }
    .deserialize(d)?;
    Ok((value, problems.into_inner()))
}

/// A value decoded strictly, for a caller that wants any problem as an
/// error (the fast path, and tests).
pub(crate) struct StrictValue(pub Value);

impl<'de> serde::Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (value, problems) = strict_document(d)?;
        match problems.first() {
            None => Ok(StrictValue(value)),
            Some(p) => Err(de::Error::custom(p)),
        }
    }
}

/// A value at a path, decoded strictly.
struct StrictSeed<'p> {
    path: Path<'p>,
    problems: &'p Problems,
}

impl StrictSeed<'_> {
    fn child<'c>(&'c self, path: Path<'c>) -> StrictSeed<'c> {
        StrictSeed {
            path,
            problems: self.problems,
        }
    }
}

impl<'de> DeserializeSeed<'de> for StrictSeed<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        match Number::from_f64(v) {
            Some(n) => Ok(Value::Number(n)),
            None => {
                self.problems
                    .borrow_mut()
                    .push(Problem::at(&self.path, non_finite(v)));
                Ok(Value::Null)
            }
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        loop {
            let path = Path::Index(&self.path, out.len());
            match seq.next_element_seed(self.child(path))? {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(self.child(Path::Key(&self.path, &key)))?;
            match key_problem(&key, &out) {
                Some(message) => self
                    .problems
                    .borrow_mut()
                    .push(Problem::at(&Path::Key(&self.path, &key), message)),
                None => {
                    out.insert(key, value);
                }
            }
        }
        Ok(Value::Object(out))
    }
}

fn non_finite(v: f64) -> String {
    format!("{v} is not a finite number (.inf and .nan are not accepted)")
}

/// What is wrong with `key` in a mapping that already holds `seen`.
fn key_problem(key: &str, seen: &Map<String, Value>) -> Option<String> {
    if key == "<<" {
        Some("YAML merge keys (<<) are not supported; write the fields out".to_string())
    } else if seen.contains_key(key) {
        Some("duplicate key (each key may appear once)".to_string())
    } else {
        None
    }
}

/// Refuses a repeated key or a YAML merge key in the mapping at `path`.
fn check_key<E: de::Error>(path: &Path, key: &str, seen: &Map<String, Value>) -> Result<(), E> {
    match key_problem(key, seen) {
        Some(message) => Err(E::custom(format!("{}: {message}", Path::Key(path, key)))),
        None => Ok(()),
    }
}

/// Skips any value, as `IgnoredAny` does, but with the same checks as
/// [`strict_document`], each an error (a repeated key or a non-finite number inside an ignored
/// field is still an error, and strings are fully decoded so a bad escape
/// is refused wherever it is).
pub(crate) struct StrictIgnore<'p>(pub Path<'p>);

impl<'de> DeserializeSeed<'de> for StrictIgnore<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictIgnore<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        if v.is_finite() {
            Ok(())
        } else {
            Err(E::custom(format!("{}: {}", self.0.at(), non_finite(v))))
        }
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while seq
            .next_element_seed(StrictIgnore(Path::Index(&self.0, i)))?
            .is_some()
        {
            i += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Keys only: a set of them is all the duplicate check needs.
        let mut seen = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            check_key(&self.0, &key, &seen)?;
            map.next_value_seed(StrictIgnore(Path::Key(&self.0, &key)))?;
            seen.insert(key, Value::Null);
        }
        Ok(())
    }
}

/// The fields each part of `spec` may have, as in the CRD.
pub(crate) const SPEC_FIELDS: &[&str] = &["table"];
pub(crate) const TABLE_FIELDS: &[&str] = &["name", "rules", "targetRef"];
pub(crate) const RULE_FIELDS: &[&str] = &[
    "dst",
    "src",
    "iif",
    "oif",
    "fwmark",
    "priority",
    "routes",
    "targetRef",
];
pub(crate) const ROUTE_FIELDS: &[&str] = &[
    "dst",
    "gw",
    "src",
    "dev",
    "onlink",
    "scope",
    "nextHops",
    "targetRef",
];
pub(crate) const NEXT_HOP_FIELDS: &[&str] = &["gw", "dev", "weight"];
pub(crate) const REFERENCE_FIELDS: &[&str] = &[
    "apiVersion",
    "fieldPath",
    "kind",
    "name",
    "namespace",
    "resourceVersion",
    "uid",
];

/// The message for an unknown field `key` at `path`.
pub(crate) fn unknown_field(path: &Path, key: &str, known: &[&str]) -> String {
    format!(
        "{}: unknown field (expected one of {})",
        Path::Key(path, key),
        known.join(", ")
    )
}

/// The first unknown field inside `spec` of a raw object, if any. Values
/// of the wrong type are left to typed decoding, which explains them.
pub(crate) fn check_spec_fields(object: &Value) -> Result<(), String> {
    let root = Path::Root;
    let spec_path = Path::Key(&root, "spec");
    let Some(spec) = object.get("spec") else {
        return Ok(());
    };
    let Some(table) = known_fields(spec, &spec_path, SPEC_FIELDS)?.get("table") else {
        return Ok(());
    };
    let table_path = Path::Key(&spec_path, "table");
    let fields = known_fields(table, &table_path, TABLE_FIELDS)?;
    check_reference(fields.get("targetRef"), &table_path)?;
    let rules_path = Path::Key(&table_path, "rules");
    for (i, rule) in array(fields.get("rules")).iter().enumerate() {
        let rule_path = Path::Index(&rules_path, i);
        let fields = known_fields(rule, &rule_path, RULE_FIELDS)?;
        check_reference(fields.get("targetRef"), &rule_path)?;
        let routes_path = Path::Key(&rule_path, "routes");
        for (j, route) in array(fields.get("routes")).iter().enumerate() {
            check_route(route, &Path::Index(&routes_path, j))?;
        }
    }
    Ok(())
}

/// The first unknown field of one route (`path` is where it sits).
pub(crate) fn check_route(route: &Value, path: &Path) -> Result<(), String> {
    let fields = known_fields(route, path, ROUTE_FIELDS)?;
    check_reference(fields.get("targetRef"), path)?;
    let hops_path = Path::Key(path, "nextHops");
    for (k, hop) in array(fields.get("nextHops")).iter().enumerate() {
        known_fields(hop, &Path::Index(&hops_path, k), NEXT_HOP_FIELDS)?;
    }
    Ok(())
}

/// The fields of `v` when it is a mapping with only `known` fields.
fn known_fields<'v>(v: &'v Value, path: &Path, known: &[&str]) -> Result<Fields<'v>, String> {
    let Some(map) = v.as_object() else {
        return Ok(Fields(None));
    };
    match map.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(unknown_field(path, k, known)),
        None => Ok(Fields(Some(map))),
    }
}

struct Fields<'v>(Option<&'v Map<String, Value>>);

impl<'v> Fields<'v> {
    fn get(&self, key: &str) -> Option<&'v Value> {
        self.0.and_then(|m| m.get(key))
    }
}

fn check_reference(v: Option<&Value>, parent: &Path) -> Result<(), String> {
    match v {
        Some(v) => known_fields(v, &Path::Key(parent, "targetRef"), REFERENCE_FIELDS).map(drop),
        None => Ok(()),
    }
}

fn array(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// Refuses YAML nested deeper than [`MAX_YAML_DEPTH`], in one pass of
/// constant work per byte, before the parser sees it.
///
/// The count is block nesting (a stack of indentation levels, plus the
/// `- ` markers that open a sequence on the same line) plus flow nesting
/// (`[` and `{` not yet closed). Brackets inside quoted scalars, comments
/// and block scalars (`|`, `>`) do not count. Quotes are only recognized
/// where a node may start, as the YAML grammar says, so a plain scalar
/// such as `it's` cannot hide brackets from the count. The count may
/// overestimate (a `[` inside a plain block scalar counts), never by much
/// for real manifests.
pub(crate) fn check_yaml_depth(text: &str) -> Result<(), String> {
    let mut scan = DepthScan::default();
    for (n, line) in text.lines().enumerate() {
        let depth = scan.line(line);
        if depth > MAX_YAML_DEPTH {
            return Err(format!(
                "line {}: nested more than {MAX_YAML_DEPTH} levels deep; refused before parsing",
                n + 1
            ));
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
enum Quote {
    #[default]
    None,
    Single,
    Double,
}

#[derive(Default)]
struct DepthScan {
    /// Indentation of the open block nodes.
    indents: Vec<usize>,
    /// Unclosed flow collections.
    flow: usize,
    quote: Quote,
    /// Inside a block scalar introduced on a line with this indentation.
    block_scalar: Option<usize>,
    /// A plain scalar in block context began on a line with this
    /// indentation; deeper lines continue it.
    plain: Option<usize>,
    /// Whether a node may start here (after an indicator and spaces); in
    /// flow context this carries over line ends, as plain scalars do.
    node_start: bool,
    /// The last token was a quoted scalar (so `:` right after it is a
    /// JSON-like value indicator).
    after_quote: bool,
}

impl DepthScan {
    /// Scans one line; returns the nesting depth reached on it.
    fn line(&mut self, line: &str) -> usize {
        let bytes = line.as_bytes();
        let indent = bytes.iter().take_while(|&&b| b == b' ').count();
        let blank = bytes[indent..].iter().all(|b| b.is_ascii_whitespace());
        if self.quote == Quote::None && self.flow == 0 {
            if let Some(base) = self.block_scalar {
                if blank || indent > base {
                    return self.indents.len();
                }
                self.block_scalar = None;
            }
            if blank || bytes[indent] == b'#' {
                return self.indents.len();
            }
            if let Some(base) = self.plain {
                if indent > base {
                    return self.indents.len();
                }
                self.plain = None;
            }
            while self.indents.last().is_some_and(|&top| top >= indent) {
                self.indents.pop();
            }
            self.indents.push(indent);
            self.node_start = true;
        }
        let mut max = self.indents.len() + self.flow;
        let mut i = indent;
        // In block context: whether this line opened a plain scalar.
        let mut plain_here = false;
        let mut extra = 0; // `- ` markers on this line
        while i < bytes.len() {
            let b = bytes[i];
            match self.quote {
                Quote::Double => {
                    if b == b'\\' {
                        i += 1;
                    } else if b == b'"' {
                        self.quote = Quote::None;
                        self.node_start = false;
                        self.after_quote = true;
                    }
                    i += 1;
                    continue;
                }
                Quote::Single => {
                    if b == b'\'' {
                        if bytes.get(i + 1) == Some(&b'\'') {
                            i += 1;
                        } else {
                            self.quote = Quote::None;
                            self.node_start = false;
                            self.after_quote = true;
                        }
                    }
                    i += 1;
                    continue;
                }
                Quote::None => {}
            }
            let next_blank = bytes.get(i + 1).is_none_or(|c| c.is_ascii_whitespace());
            let prev_blank = i == 0 || bytes[i - 1].is_ascii_whitespace();
            let after_quote = std::mem::take(&mut self.after_quote);
            match b {
                b' ' | b'\t' => self.after_quote = after_quote,
                b'#' if prev_blank => break,
                b'"' if self.node_start => self.quote = Quote::Double,
                b'\'' if self.node_start => self.quote = Quote::Single,
                b'[' | b'{' if self.node_start || self.flow > 0 => {
                    self.flow += 1;
                    self.node_start = true;
                }
                b']' | b'}' if self.flow > 0 => {
                    self.flow -= 1;
                    self.node_start = false;
                }
                b',' if self.flow > 0 => self.node_start = true,
                b'-' | b'?' if self.node_start && next_blank && self.flow == 0 => extra += 1,
                b':' if next_blank || (self.flow > 0 && after_quote) => {
                    self.node_start = true;
                    plain_here = false;
                }
                b'|' | b'>' if self.node_start && self.flow == 0 => {
                    self.block_scalar = Some(indent);
                    break;
                }
                _ => {
                    if self.node_start && self.flow == 0 {
                        plain_here = true;
                    }
                    self.node_start = false;
                }
            }
            max = max.max(self.indents.len() + extra + self.flow);
            i += 1;
        }
        if plain_here && self.flow == 0 && self.quote == Quote::None {
            self.plain = Some(indent);
        }
        max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Result<Value, String> {
        serde_yaml_ng::from_str::<StrictValue>(text)
            .map(|v| v.0)
            .map_err(|e| e.to_string())
    }

    fn json(text: &str) -> Result<Value, String> {
        serde_json::from_str::<StrictValue>(text)
            .map(|v| v.0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn problems_are_collected_per_list_item() {
        let text = r#"{"kind": "List", "items": [{"a": 1}, {"b": {"c": 1, "c": 2}}, {"d": 1}]}"#;
        let mut d = serde_json::Deserializer::from_str(text);
        let (v, problems) = strict_document(&mut d).unwrap();
        assert_eq!(
            problems,
            [Problem {
                item: Some(1),
                path: "b.c".into(),
                message: "duplicate key (each key may appear once)".into()
            }]
        );
        assert_eq!(v["items"][2]["d"], 1);
        let mut d = serde_json::Deserializer::from_str(r#"[{}, {"x": {"<<": 1}}]"#);
        let (_, problems) = strict_document(&mut d).unwrap();
        assert_eq!(
            (problems[0].item, problems[0].path.as_str()),
            (Some(1), "x.<<")
        );
        let mut d = serde_json::Deserializer::from_str(r#"{"a": 1, "a": 1}"#);
        let (_, problems) = strict_document(&mut d).unwrap();
        assert_eq!((problems[0].item, problems[0].path.as_str()), (None, "a"));
    }

    #[test]
    fn duplicate_keys_are_refused_with_their_path() {
        let e =
            yaml("spec:\n  table:\n    rules:\n    - fwmark: 1\n      fwmark: 2\n").unwrap_err();
        assert!(
            e.contains("spec.table.rules[0].fwmark: duplicate key"),
            "{e}"
        );
        let e = json(r#"{"spec": {"table": {"rules": [], "rules": []}}}"#).unwrap_err();
        assert!(e.contains("spec.table.rules: duplicate key"), "{e}");
        assert!(json(r#"{"a": {"b": 1}, "c": {"b": 1}}"#).is_ok());
    }

    #[test]
    fn non_finite_numbers_are_refused() {
        for v in [".inf", "-.inf", ".nan", ".NaN", "-.Inf"] {
            let e = yaml(&format!("spec:\n  fwmark: {v}\n")).unwrap_err();
            assert!(
                e.contains("spec.fwmark:") && e.contains("not a finite number"),
                "{v}: {e}"
            );
        }
        assert_eq!(yaml("a: 1.5").unwrap(), serde_json::json!({"a": 1.5}));
    }

    #[test]
    fn merge_keys_are_refused() {
        let e = yaml("base: &b {iif: x}\nrule:\n  <<: *b\n  fwmark: 1\n").unwrap_err();
        assert!(e.contains("rule.<<: YAML merge keys"), "{e}");
    }

    #[test]
    fn ignoring_is_as_strict_as_reading() {
        let ignore = |t: &str| {
            let mut d = serde_json::Deserializer::from_str(t);
            StrictIgnore(Path::Root)
                .deserialize(&mut d)
                .map_err(|e| e.to_string())
        };
        assert!(ignore(r#"{"a": [1, {"b": "x"}]}"#).is_ok());
        let e = ignore(r#"{"a": [1, {"b": 1, "b": 2}]}"#).unwrap_err();
        assert!(e.contains("a[1].b: duplicate key"), "{e}");
        assert!(ignore(r#"{"a": "\ud800"}"#).is_err());
        assert!(json(r#"{"a": "\ud800"}"#).is_err());
    }

    #[test]
    fn unknown_spec_fields_are_named() {
        let v = serde_json::json!({"spec": {"table": {"name": "t", "rules": [
            {"iif": "a", "routes": [{"dst": "10.0.0.0/8"}]},
            {"fwmakr": 5, "routes": []}]}}, "extra": 1});
        let e = check_spec_fields(&v).unwrap_err();
        assert!(
            e.starts_with("spec.table.rules[1].fwmakr: unknown field"),
            "{e}"
        );
        let v = serde_json::json!({"spec": {"table": {"rules": [{"routes": [
            {"dst": "x", "targetRef": {"kind": "Pod", "nmae": "p"}}]}]}}});
        let e = check_spec_fields(&v).unwrap_err();
        assert!(
            e.starts_with("spec.table.rules[0].routes[0].targetRef.nmae"),
            "{e}"
        );
        let v = serde_json::json!({"spec": {"tabel": {}}});
        assert!(check_spec_fields(&v).unwrap_err().starts_with("spec.tabel"));
        // Wrong types are typed decoding's to explain.
        assert!(check_spec_fields(&serde_json::json!({"spec": {"table": {"rules": 5}}})).is_ok());
        assert!(check_spec_fields(&serde_json::json!({"metadata": {"x": 1}})).is_ok());
    }

    fn depth(text: &str) -> usize {
        let mut s = DepthScan::default();
        text.lines().map(|l| s.line(l)).max().unwrap_or(0)
    }

    #[test]
    fn depth_counts_block_and_flow_nesting() {
        assert_eq!(depth("a: 1\nb: 2\n"), 1);
        assert_eq!(depth("a:\n  b:\n    c: 1\nd: 2\n"), 3);
        assert_eq!(depth("a: [1, [2, {b: 3}]]\n"), 4);
        assert_eq!(depth("- - - x\n"), 4);
        let deep = format!("a: {}{}\n", "[".repeat(100), "]".repeat(100));
        assert!(check_yaml_depth(&deep).is_err());
        let deep = format!("a: {}\n", "{x: ".repeat(70));
        assert!(check_yaml_depth(&deep).is_err());
        let blocks: String = (0..70)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        assert!(check_yaml_depth(&blocks).is_err());
    }

    #[test]
    fn depth_ignores_brackets_in_text() {
        let many = "[".repeat(100);
        let ok = [
            format!("a: '{many}'\n"),
            format!("a: \"{many}\"\n"),
            format!("a: x{many}\n"),
            format!("a: |\n  {many}\n  {many}\nb: 1\n"),
            format!("# {many}\na: 1 # {many}\n"),
            format!("a: 'multi\n  line {many}'\n"),
            format!("a: plain\n  continued {many}\n"),
        ];
        for text in ok {
            assert!(check_yaml_depth(&text).is_ok(), "{text}");
        }
    }

    #[test]
    fn depth_cannot_be_hidden_behind_quotes_in_plain_scalars() {
        // `it's` is a plain scalar: the quote opens nothing, so the
        // brackets that follow still count.
        let deep = format!("a: it's\nb: {}\nc: '\n", "[".repeat(100));
        assert!(check_yaml_depth(&deep).is_err());
        let deep = format!("a: [x 'y, {}]\n", "[".repeat(100));
        assert!(check_yaml_depth(&deep).is_err());
        let deep = format!("a: [x:'y, {}]\n", "[".repeat(100));
        assert!(check_yaml_depth(&deep).is_err());
        let deep = format!("a: [x\n'y, {}]\n", "[".repeat(100));
        assert!(check_yaml_depth(&deep).is_err());
        // A quoted `]` does not close anything.
        let deep = format!("a: {}\n", "[']', ".repeat(100));
        assert!(check_yaml_depth(&deep).is_err());
    }

    #[test]
    fn real_manifests_pass_the_depth_check() {
        let dir = crate::model::testdata::shared_dir().join("fixtures");
        let mut seen = 0;
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "yaml") {
                    let text = std::fs::read_to_string(&p).unwrap();
                    assert!(check_yaml_depth(&text).is_ok(), "{}", p.display());
                    seen += 1;
                }
            }
        }
        assert!(seen > 5, "only {seen} fixtures found");
    }
}
