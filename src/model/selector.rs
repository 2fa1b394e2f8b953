//! Kubernetes label selectors, in the string form the apiserver accepts
//! (`labelSelector=` query parameter), so that routecfg can filter on the
//! server the same objects upstream's controllers reconcile, and re-check
//! them locally (the server can only take one AND-set; routecfg's presets
//! are OR-sets).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Label key of the route category (`gateway` or `fabric`).
pub const LABEL_CATEGORY: &str = "networking.liqo.io/route-category";
/// Label key of the route subcategory (`fabric`, `fabric-node`).
pub const LABEL_SUBCATEGORY: &str = "networking.liqo.io/route-subcategory";
/// Label key naming the remote cluster or node an object is for.
pub const LABEL_UNIQUE: &str = "networking.liqo.io/route-unique";

/// What one term requires of a label.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// `key=value` / `key==value`.
    Eq(String),
    /// `key!=value`: also true when the label is absent.
    NotEq(String),
    /// `key`.
    Exists,
    /// `!key`.
    NotExists,
    /// `key in (a,b)`; values sorted and unique.
    In(Vec<String>),
    /// `key notin (a,b)`: also true when the label is absent.
    NotIn(Vec<String>),
}

/// One requirement on one label key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Term {
    pub key: String,
    pub op: Op,
}

impl Term {
    /// `key=value`, for building selectors in code.
    pub fn eq(key: &str, value: &str) -> Term {
        Term {
            key: key.to_string(),
            op: Op::Eq(value.to_string()),
        }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match &self.op {
            Op::Eq(v) => value == Some(v),
            Op::NotEq(v) => value != Some(v),
            Op::Exists => value.is_some(),
            Op::NotExists => value.is_none(),
            Op::In(vs) => value.is_some_and(|x| vs.contains(x)),
            Op::NotIn(vs) => !value.is_some_and(|x| vs.contains(x)),
        }
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = &self.key;
        match &self.op {
            Op::Eq(v) => write!(f, "{k}={v}"),
            Op::NotEq(v) => write!(f, "{k}!={v}"),
            Op::Exists => write!(f, "{k}"),
            Op::NotExists => write!(f, "!{k}"),
            Op::In(vs) => write!(f, "{k} in ({})", vs.join(",")),
            Op::NotIn(vs) => write!(f, "{k} notin ({})", vs.join(",")),
        }
    }
}

/// An AND of terms. The empty selector matches every object, as on the
/// apiserver.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Selector {
    /// Sorted by key (then requirement), unique: the apiserver's canonical
    /// order, so equal selectors print equally.
    terms: Vec<Term>,
}

/// Why a selector string was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectorError {
    pub input: String,
    pub message: String,
}

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "label selector {:?}: {}", self.input, self.message)
    }
}

impl std::error::Error for SelectorError {}

impl Selector {
    /// Builds a selector from terms (sorted and deduplicated).
    pub fn from_terms(terms: impl IntoIterator<Item = Term>) -> Selector {
        let mut terms: Vec<Term> = terms.into_iter().collect();
        terms.sort();
        terms.dedup();
        Selector { terms }
    }

    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Parses the apiserver's string syntax: comma-separated `a=b`, `a==b`,
    /// `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x)`.
    pub fn parse(input: &str) -> Result<Selector, SelectorError> {
        let err = |message: String| SelectorError {
            input: input.to_string(),
            message,
        };
        let mut terms = Vec::new();
        for part in split_terms(input).map_err(err)? {
            terms.push(parse_term(part).map_err(err)?);
        }
        Ok(Selector::from_terms(terms))
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.terms.iter().all(|t| t.matches(labels))
    }
}

impl FromStr for Selector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Selector, SelectorError> {
        Selector::parse(s)
    }
}

/// The query-string form (`a=b,c in (x,y)`), ready to be URL-encoded.
impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{t}")?;
        }
        Ok(())
    }
}

/// Splits at commas outside parentheses; rejects empty terms.
fn split_terms(input: &str) -> Result<Vec<&str>, String> {
    if input.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in input.char_indices() {
        match c {
            '(' => {
                if depth > 0 {
                    return Err("nested '('".to_string());
                }
                depth += 1;
            }
            ')' => {
                if depth == 0 {
                    return Err("unbalanced ')'".to_string());
                }
                depth -= 1;
            }
            ',' if depth == 0 => {
                parts.push(&input[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '('".to_string());
    }
    parts.push(&input[start..]);
    if parts.iter().any(|p| p.trim().is_empty()) {
        return Err("empty term".to_string());
    }
    Ok(parts)
}

fn parse_term(part: &str) -> Result<Term, String> {
    let part = part.trim();
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        check_key(key)?;
        return Ok(Term {
            key: key.to_string(),
            op: Op::NotExists,
        });
    }
    for (sym, ne) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((k, v)) = part.split_once(sym) {
            let (k, v) = (k.trim(), v.trim());
            check_key(k)?;
            check_value(v)?;
            let op = if ne {
                Op::NotEq(v.to_string())
            } else {
                Op::Eq(v.to_string())
            };
            return Ok(Term {
                key: k.to_string(),
                op,
            });
        }
    }
    if let Some(open) = part.find('(') {
        let head = part[..open].trim();
        let Some(list) = part[open + 1..].trim_end().strip_suffix(')') else {
            return Err(format!("{part:?}: expected ')' at the end"));
        };
        let (key, word) = head
            .rsplit_once(char::is_whitespace)
            .map(|(k, w)| (k.trim(), w))
            .ok_or_else(|| format!("{part:?}: expected `key in (...)` or `key notin (...)`"))?;
        check_key(key)?;
        if list.trim().is_empty() {
            return Err(format!("{part:?}: the value set must not be empty"));
        }
        let mut values = Vec::new();
        for v in list.split(',') {
            let v = v.trim();
            // An empty value in a set (`(,)`, `(a,)`) has no printed form
            // that parses back the same: refused, so that what is sent to
            // the API server is exactly what was parsed.
            if v.is_empty() {
                return Err(format!("{part:?}: empty value in the set"));
            }
            check_value(v)?;
            values.push(v.to_string());
        }
        values.sort();
        values.dedup();
        let op = match word {
            "in" => Op::In(values),
            "notin" => Op::NotIn(values),
            other => return Err(format!("{part:?}: unknown operator {other:?}")),
        };
        return Ok(Term {
            key: key.to_string(),
            op,
        });
    }
    if part.contains(char::is_whitespace) || part.contains(['<', '>']) {
        return Err(format!("{part:?}: unsupported operator"));
    }
    check_key(part)?;
    Ok(Term {
        key: part.to_string(),
        op: Op::Exists,
    })
}

/// A label key: optional DNS-subdomain prefix and `/`, then a name of at
/// most 63 characters, alphanumeric at both ends with `-_.` inside.
fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !ok {
            return Err(format!("{key:?}: invalid label key prefix {p:?}"));
        }
    }
    if name.is_empty() || !is_label_name(name) {
        return Err(format!("{key:?}: invalid label key"));
    }
    Ok(())
}

fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_label_name(value) {
        Ok(())
    } else {
        Err(format!("{value:?}: invalid label value"))
    }
}

fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// An OR of selectors: what one routecfg process reconciles. The empty set
/// matches nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SelectorSet(pub Vec<Selector>);

impl SelectorSet {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().any(|s| s.matches(labels))
    }

    /// The terms every member shares: a selector the apiserver can apply
    /// that never drops an object the set would match (the rest is checked
    /// locally with [`SelectorSet::matches`]).
    pub fn common_terms(&self) -> Selector {
        let Some((first, rest)) = self.0.split_first() else {
            return Selector::default();
        };
        Selector::from_terms(
            first
                .terms
                .iter()
                .filter(|t| rest.iter().all(|s| s.terms.contains(t)))
                .cloned(),
        )
    }

    /// What the gateway for remote cluster `remote_cluster_id` on node
    /// `node_name` reconciles, as upstream: its remote cluster's objects,
    /// the fabric objects of every node, and the fabric-node objects of
    /// its own node.
    pub fn gateway(remote_cluster_id: &str, node_name: &str) -> SelectorSet {
        let gateway = || Term::eq(LABEL_CATEGORY, "gateway");
        SelectorSet(vec![
            Selector::from_terms([gateway(), Term::eq(LABEL_UNIQUE, remote_cluster_id)]),
            Selector::from_terms([gateway(), Term::eq(LABEL_SUBCATEGORY, "fabric")]),
            Selector::from_terms([
                gateway(),
                Term::eq(LABEL_SUBCATEGORY, "fabric-node"),
                Term::eq(LABEL_UNIQUE, node_name),
            ]),
        ])
    }

    /// What the fabric agent on every node reconciles, as upstream.
    pub fn fabric() -> SelectorSet {
        SelectorSet(vec![Selector::from_terms([Term::eq(
            LABEL_CATEGORY,
            "fabric",
        )])])
    }
}

/// Members separated by ` OR `, for logs.
impl fmt::Display for SelectorSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" OR ")?;
            }
            write!(f, "{{{s}}}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sel(s: &str) -> Selector {
        Selector::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn parses_every_operator() {
        let s = sel("a=b, c==d,e!=f,g,!h,i in (y, x,y),j notin (z)");
        assert_eq!(
            s.terms(),
            &[
                Term::eq("a", "b"),
                Term::eq("c", "d"),
                Term {
                    key: "e".into(),
                    op: Op::NotEq("f".into())
                },
                Term {
                    key: "g".into(),
                    op: Op::Exists
                },
                Term {
                    key: "h".into(),
                    op: Op::NotExists
                },
                Term {
                    key: "i".into(),
                    op: Op::In(vec!["x".into(), "y".into()])
                },
                Term {
                    key: "j".into(),
                    op: Op::NotIn(vec!["z".into()])
                },
            ]
        );
        assert_eq!(s.to_string(), "a=b,c=d,e!=f,g,!h,i in (x,y),j notin (z)");
        assert_eq!(sel(&s.to_string()), s);
    }

    #[test]
    fn display_is_canonical_and_sorted() {
        assert_eq!(
            sel("z=1,networking.liqo.io/route-category=gateway").to_string(),
            "networking.liqo.io/route-category=gateway,z=1"
        );
        assert_eq!(sel("").to_string(), "");
        assert_eq!(sel("a=").to_string(), "a=");
        assert_eq!(sel("a=b,a=b").terms().len(), 1);
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(sel("").matches(&labels(&[])));
        assert!(sel("  ").matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn matching_semantics() {
        let l = labels(&[("a", "b"), ("n", "1")]);
        let cases = [
            ("a=b", true),
            ("a==b", true),
            ("a=c", false),
            ("x=b", false),
            ("a!=c", true),
            ("a!=b", false),
            ("x!=b", true),
            ("a", true),
            ("x", false),
            ("!x", true),
            ("!a", false),
            ("a in (b,c)", true),
            ("a in (c)", false),
            ("x in (b)", false),
            ("a notin (c)", true),
            ("a notin (b)", false),
            ("x notin (b)", true),
            ("a=b,n=1", true),
            ("a=b,n=2", false),
            ("a=", false),
            ("x=", false),
        ];
        for (s, want) in cases {
            assert_eq!(sel(s).matches(&l), want, "{s}");
        }
        assert!(sel("a=").matches(&labels(&[("a", "")])));
    }

    #[test]
    fn rejects_malformed_selectors_with_a_reason() {
        let cases = [
            ("a=b,", "label selector \"a=b,\": empty term"),
            ("a in (b", "label selector \"a in (b\": unbalanced '('"),
            (
                "a in ()",
                "label selector \"a in ()\": \"a in ()\": the value set must not be empty",
            ),
            (
                "a foo (b)",
                "label selector \"a foo (b)\": \"a foo (b)\": unknown operator \"foo\"",
            ),
            (
                "a > 1",
                "label selector \"a > 1\": \"a > 1\": unsupported operator",
            ),
            (
                "a b",
                "label selector \"a b\": \"a b\": unsupported operator",
            ),
            ("-a=b", "label selector \"-a=b\": \"-a\": invalid label key"),
            (
                "a=b c",
                "label selector \"a=b c\": \"b c\": invalid label value",
            ),
            (
                "Foo_/a=b",
                "label selector \"Foo_/a=b\": \"Foo_/a\": invalid label key prefix \"Foo_\"",
            ),
            ("!", "label selector \"!\": \"\": invalid label key"),
        ];
        for (input, want) in cases {
            let e = Selector::parse(input).expect_err(input);
            assert_eq!(e.to_string(), want);
        }
        let long = "a".repeat(64);
        assert!(Selector::parse(&format!("{long}=b")).is_err());
        assert!(Selector::parse(&format!("a={long}")).is_err());
        assert!(Selector::parse(&format!("{}=b", "a".repeat(63))).is_ok());
    }

    #[test]
    fn gateway_preset_matches_upstream_sets() {
        let set = SelectorSet::gateway("milan", "rome-worker");
        let gw = |extra: &[(&str, &str)]| {
            let mut l = labels(&[(LABEL_CATEGORY, "gateway"), ("liqo.io/managed", "true")]);
            l.extend(labels(extra));
            l
        };
        assert!(set.matches(&gw(&[(LABEL_UNIQUE, "milan")])));
        assert!(!set.matches(&gw(&[(LABEL_UNIQUE, "paris")])));
        assert!(set.matches(&gw(&[(LABEL_SUBCATEGORY, "fabric")])));
        assert!(set.matches(&gw(&[
            (LABEL_SUBCATEGORY, "fabric-node"),
            (LABEL_UNIQUE, "rome-worker")
        ])));
        assert!(!set.matches(&gw(&[
            (LABEL_SUBCATEGORY, "fabric-node"),
            (LABEL_UNIQUE, "rome-control-plane")
        ])));
        assert!(!set.matches(&gw(&[])));
        assert!(!set.matches(&labels(&[(LABEL_CATEGORY, "fabric")])));
        assert_eq!(
            set.common_terms().to_string(),
            "networking.liqo.io/route-category=gateway"
        );
        assert_eq!(
            set.to_string(),
            "{networking.liqo.io/route-category=gateway,networking.liqo.io/route-unique=milan} OR \
             {networking.liqo.io/route-category=gateway,networking.liqo.io/route-subcategory=fabric} OR \
             {networking.liqo.io/route-category=gateway,networking.liqo.io/route-subcategory=fabric-node,networking.liqo.io/route-unique=rome-worker}"
        );
    }

    #[test]
    fn fabric_preset() {
        let set = SelectorSet::fabric();
        assert!(set.matches(&labels(&[(LABEL_CATEGORY, "fabric")])));
        assert!(!set.matches(&labels(&[(LABEL_CATEGORY, "gateway")])));
        assert_eq!(
            set.common_terms().to_string(),
            "networking.liqo.io/route-category=fabric"
        );
    }

    #[test]
    fn common_terms_of_odd_sets() {
        assert!(SelectorSet(vec![]).common_terms().is_empty());
        assert!(!SelectorSet(vec![]).matches(&labels(&[])));
        let set = SelectorSet(vec![sel("a=1,b=2"), sel("b=2,c=3"), sel("b=2,a=1")]);
        assert_eq!(set.common_terms().to_string(), "b=2");
        let disjoint = SelectorSet(vec![sel("a=1"), sel("a=2")]);
        assert!(disjoint.common_terms().is_empty());
    }

    #[test]
    fn what_is_printed_parses_back_the_same() {
        for input in [
            "a=b, c==d,e!=f,g,!h,i in (y, x,y),j notin (z)",
            "a=,b!=",
            "networking.liqo.io/route-category=gateway,x in (a)",
            "",
        ] {
            let s = sel(input);
            let again = Selector::parse(&s.to_string()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(again, s, "{input}");
        }
        for bad in [
            "x in (,)",
            "x in (a,)",
            "x notin (,a)",
            "x in ( )",
            "x in ()",
        ] {
            assert!(Selector::parse(bad).is_err(), "{bad}");
        }
    }
}
