//! The fast path for JSON input: text straight to typed objects, without
//! the intermediate `serde_json::Value` tree the general path builds (which
//! costs ten times the input's size in memory and most of the parse time).
//!
//! It only ever *accepts* input that the general path would turn into
//! exactly the same objects with no error and no log line: JSON objects of
//! kind RouteConfiguration in the API group (alone, concatenated, or as
//! items of a `...List`). Anything else (a syntax or type error, another
//! kind, a bare array, a duplicate key...) returns `None` and the caller
//! runs the general path on the whole input, so messages stay its own.
//!
//! It is exactly as strict as the general path ([`super::strict`]): a
//! repeated key anywhere (ignored fields and labels included), an unknown
//! field inside `spec`, or a string with a bad escape makes it give up.
//!
//! Why two paths: the general path must explain every problem with a
//! field path and skip what is not a RouteConfiguration, which needs the
//! whole document as a tree; the fast path keeps a 100,000-route apply
//! within the engine benchmark's budget (see README) by never building
//! that tree. The differential unit test in `fast/tests.rs` and the
//! `loader` fuzz target (tests/fuzz) check that they agree.
//!
//! In [`Mode::Validate`] every object is validated while its routes stream
//! past ([`Validator`]); the routes are dropped once validated, so an
//! object with 100,000 routes never exists as `RouteSpec`s. The objects
//! then keep their rules but not their routes, and the validation result
//! travels with them.

use super::Loaded;
use super::strict::{
    self, NEXT_HOP_FIELDS, Path, REFERENCE_FIELDS, ROUTE_FIELDS, RULE_FIELDS, SPEC_FIELDS,
    StrictIgnore, StrictValue, TABLE_FIELDS,
};
use crate::model::api::{
    API_GROUP, API_VERSION, KIND, NextHopSpec, ObjectMeta, ObjectReference, RawInt,
    RouteConfiguration, RouteConfigurationSpec, RouteSpec, RuleSpec, Status, TableSpec,
};
use crate::model::validate::{Policy, RouteFields, Validator};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// What to do with routes as they are parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Keep them: the objects are exactly what serde would build.
    Keep,
    /// Validate them under this policy and drop them.
    Validate(Policy),
}

/// Every object in `text` (JSON), or `None` when the general path must
/// decide (see the module documentation).
pub(super) fn parse_json(text: &str, mode: Mode) -> Option<Vec<Loaded>> {
    let mut de = serde_json::Deserializer::from_str(text);
    let mut out = Vec::new();
    // `end` only skips whitespace; an error means another value follows.
    while de.end().is_err() {
        let doc = ObjectSeed { mode, top: true }.deserialize(&mut de).ok()?;
        doc.accept(&mut out)?;
    }
    Some(out)
}

/// One parsed JSON object, before deciding whether it is an object or a
/// list of objects.
struct Parsed {
    api_version: Option<String>,
    kind: Option<String>,
    object: RouteConfiguration,
    validated: Option<Validator>,
    /// `items`, when the object had one (only top-level objects look).
    items: Option<Vec<Parsed>>,
}

impl Parsed {
    /// Appends what the general path would yield for this document, or
    /// returns `None` when it would skip something or report an error.
    fn accept(self, out: &mut Vec<Loaded>) -> Option<()> {
        if let Some(k) = self.kind.as_deref().filter(|k| k.ends_with("List")) {
            let default_kind = k.strip_suffix("List").filter(|k| !k.is_empty());
            let default_kind = default_kind.map(str::to_string);
            for item in self.items? {
                item.accept_object(default_kind.as_deref(), out)?;
            }
            return Some(());
        }
        self.accept_object(None, out)
    }

    fn accept_object(self, default_kind: Option<&str>, out: &mut Vec<Loaded>) -> Option<()> {
        if self.kind.as_deref().or(default_kind) != Some(KIND) {
            return None;
        }
        if let Some(api) = &self.api_version {
            let group = api.rsplit_once('/').map_or("", |(g, _)| g);
            if group != API_GROUP {
                return None;
            }
        }
        let mut object = self.object;
        object.api_version = self.api_version.unwrap_or_else(|| API_VERSION.to_string());
        object.kind = KIND.to_string();
        let validated = self.validated.map(|v| v.finish(&object));
        out.push(Loaded { object, validated });
        Some(())
    }
}

/// A map key, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_string())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Sets a field once; a second occurrence is an error, as with derived
/// `Deserialize`.
fn once<'de, A: MapAccess<'de>, T>(
    slot: &mut Option<T>,
    name: &'static str,
    value: impl FnOnce(&mut A) -> Result<T, A::Error>,
    map: &mut A,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    *slot = Some(value(map)?);
    Ok(())
}

/// A RouteConfiguration (or, at the top level, possibly a list of them).
struct ObjectSeed {
    mode: Mode,
    top: bool,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed {
    type Value = Parsed;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Parsed, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed {
    type Value = Parsed;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a RouteConfiguration object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
        let mut validator = match self.mode {
            Mode::Keep => None,
            Mode::Validate(policy) => Some(Validator::with_policy(policy)),
        };
        let mut api_version = None;
        let mut kind = None;
        let mut metadata = None;
        let mut spec = None;
        let mut status = None;
        let mut items = None;
        while let Some(Key(key)) = map.next_key()? {
            match &*key {
                "apiVersion" => once(&mut api_version, "apiVersion", |m| m.next_value(), &mut map)?,
                "kind" => once(&mut kind, "kind", |m| m.next_value(), &mut map)?,
                "metadata" => once(
                    &mut metadata,
                    "metadata",
                    |m| typed::<A, ObjectMeta>(m, None),
                    &mut map,
                )?,
                "spec" => {
                    let seed = SpecSeed {
                        validator: validator.as_mut(),
                    };
                    once(&mut spec, "spec", |m| m.next_value_seed(seed), &mut map)?
                }
                "status" => once(
                    &mut status,
                    "status",
                    |m| typed::<A, Option<Status>>(m, None),
                    &mut map,
                )?,
                "items" if self.top => {
                    let seed = ItemsSeed { mode: self.mode };
                    once(&mut items, "items", |m| m.next_value_seed(seed), &mut map)?
                }
                _ => map.next_value_seed(StrictIgnore(Path::Root))?,
            }
        }
        Ok(Parsed {
            api_version: api_version.clone(),
            kind: kind.clone(),
            object: RouteConfiguration {
                api_version: api_version.unwrap_or_default(),
                kind: kind.unwrap_or_default(),
                metadata: metadata.unwrap_or_default(),
                spec: spec.unwrap_or_default(),
                status: status.flatten(),
            },
            validated: validator,
            items,
        })
    }
}

/// The `items` of a list: objects, each with its own validation.
struct ItemsSeed {
    mode: Mode,
}

impl<'de> DeserializeSeed<'de> for ItemsSeed {
    type Value = Vec<Parsed>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Parsed>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed {
    type Value = Vec<Parsed>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Parsed>, A::Error> {
        let mut items = Vec::new();
        let seed = || ObjectSeed {
            mode: self.mode,
            top: false,
        };
        while let Some(item) = seq.next_element_seed(seed())? {
            items.push(item);
        }
        Ok(items)
    }
}

/// `spec`.
struct SpecSeed<'v> {
    validator: Option<&'v mut Validator>,
}

impl<'de> DeserializeSeed<'de> for SpecSeed<'_> {
    type Value = RouteConfigurationSpec;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SpecSeed<'_> {
    type Value = RouteConfigurationSpec;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("struct RouteConfigurationSpec")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut table = None;
        while let Some(Key(key)) = map.next_key()? {
            if key == "table" {
                let seed = TableSeed {
                    validator: self.validator.as_deref_mut(),
                };
                once(&mut table, "table", |m| m.next_value_seed(seed), &mut map)?;
            } else {
                return Err(unknown(&key, SPEC_FIELDS));
            }
        }
        Ok(RouteConfigurationSpec {
            table: table.unwrap_or_default(),
        })
    }
}

/// `spec.table`.
struct TableSeed<'v> {
    validator: Option<&'v mut Validator>,
}

impl<'de> DeserializeSeed<'de> for TableSeed<'_> {
    type Value = TableSpec;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TableSeed<'_> {
    type Value = TableSpec;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("struct TableSpec")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut name = None;
        let mut rules = None;
        let mut target_ref = None;
        while let Some(Key(key)) = map.next_key()? {
            match &*key {
                "name" => once(&mut name, "name", |m| m.next_value(), &mut map)?,
                "rules" => {
                    let seed = Optional(RulesSeed {
                        validator: self.validator.as_deref_mut(),
                    });
                    once(&mut rules, "rules", |m| m.next_value_seed(seed), &mut map)?
                }
                "targetRef" => once(
                    &mut target_ref,
                    "targetRef",
                    |m| typed::<A, Option<ObjectReference>>(m, Some(REFERENCE_FIELDS)),
                    &mut map,
                )?,
                other => return Err(unknown(other, TABLE_FIELDS)),
            }
        }
        Ok(TableSpec {
            name: name.flatten(),
            rules: rules.flatten(),
            target_ref: target_ref.flatten(),
        })
    }
}

/// `Option<T>` for a seed: `null` is `None`, as for derived fields.
struct Optional<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Optional<S> {
    type Value = Option<S::Value>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for Optional<S> {
    type Value = Option<S::Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("option")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(d).map(Some)
    }
}

/// `spec.table.rules`: each rule is ended in the validator as soon as it
/// is parsed, its routes having been fed while it was.
struct RulesSeed<'v> {
    validator: Option<&'v mut Validator>,
}

impl<'de> DeserializeSeed<'de> for RulesSeed<'_> {
    type Value = Vec<RuleSpec>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RulesSeed<'_> {
    type Value = Vec<RuleSpec>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut rules = Vec::new();
        loop {
            let seed = RuleSeed {
                validator: self.validator.as_deref_mut(),
            };
            let Some(rule) = seq.next_element_seed(seed)? else {
                break;
            };
            if let Some(v) = self.validator.as_deref_mut() {
                v.end_rule(&rule, rule.routes.is_some());
            }
            rules.push(rule);
        }
        Ok(rules)
    }
}

/// One `spec.table.rules[]` entry.
struct RuleSeed<'v> {
    validator: Option<&'v mut Validator>,
}

impl<'de> DeserializeSeed<'de> for RuleSeed<'_> {
    type Value = RuleSpec;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RuleSeed<'_> {
    type Value = RuleSpec;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("struct RuleSpec")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut dst = None;
        let mut src = None;
        let mut iif = None;
        let mut oif = None;
        let mut fwmark = None;
        let mut priority = None;
        let mut routes = None;
        let mut target_ref = None;
        while let Some(Key(key)) = map.next_key()? {
            match &*key {
                "dst" => once(&mut dst, "dst", |m| m.next_value(), &mut map)?,
                "src" => once(&mut src, "src", |m| m.next_value(), &mut map)?,
                "iif" => once(&mut iif, "iif", |m| m.next_value(), &mut map)?,
                "oif" => once(&mut oif, "oif", |m| m.next_value(), &mut map)?,
                "fwmark" => once(&mut fwmark, "fwmark", |m| raw_int(m), &mut map)?,
                "priority" => once(&mut priority, "priority", |m| raw_int(m), &mut map)?,
                "routes" => {
                    let seed = Optional(RoutesSeed {
                        validator: self.validator.as_deref_mut(),
                    });
                    once(&mut routes, "routes", |m| m.next_value_seed(seed), &mut map)?
                }
                "targetRef" => once(
                    &mut target_ref,
                    "targetRef",
                    |m| typed::<A, Option<ObjectReference>>(m, Some(REFERENCE_FIELDS)),
                    &mut map,
                )?,
                other => return Err(unknown(other, RULE_FIELDS)),
            }
        }
        Ok(RuleSpec {
            dst: dst.flatten(),
            src: src.flatten(),
            iif: iif.flatten(),
            oif: oif.flatten(),
            fwmark: fwmark.flatten(),
            priority: priority.flatten(),
            routes: routes.flatten(),
            target_ref: target_ref.flatten(),
        })
    }
}

/// `routes` of a rule: kept, or validated one by one and dropped (the
/// rule then holds an empty list, which still says the field was there).
struct RoutesSeed<'v> {
    validator: Option<&'v mut Validator>,
}

impl<'de> DeserializeSeed<'de> for RoutesSeed<'_> {
    type Value = Vec<RouteSpec>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RoutesSeed<'_> {
    type Value = Vec<RouteSpec>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut routes = Vec::new();
        match self.validator {
            None => {
                while let Some(StrictValue(v)) = seq.next_element::<StrictValue>()? {
                    // Fields checked as on the general path, nested ones too.
                    strict::check_route(&v, &Path::Root).map_err(de::Error::custom)?;
                    routes.push(from_value(v, None)?);
                }
            }
            Some(v) => while seq.next_element_seed(RouteSeed(v))?.is_some() {},
        }
        Ok(routes)
    }
}

/// One route, validated and dropped: the fields of [`RouteSpec`] with the
/// same names, types and rules (absent or `null` is `None`, a repeated
/// field is an error, unknown fields are ignored), strings borrowed from
/// the input when they have no escapes.
struct RouteSeed<'v>(&'v mut Validator);

impl<'de> DeserializeSeed<'de> for RouteSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RouteSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("struct RouteSpec")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut dst = None;
        let mut gw = None;
        let mut src = None;
        let mut dev = None;
        let mut onlink = None;
        let mut scope = None;
        let mut next_hops = None;
        let mut target_ref = None;
        while let Some(Key(key)) = map.next_key()? {
            match &*key {
                "dst" => once(&mut dst, "dst", text, &mut map)?,
                "gw" => once(&mut gw, "gw", text, &mut map)?,
                "src" => once(&mut src, "src", text, &mut map)?,
                "dev" => once(&mut dev, "dev", text, &mut map)?,
                "onlink" => once(
                    &mut onlink,
                    "onlink",
                    |m| m.next_value::<Option<bool>>(),
                    &mut map,
                )?,
                "scope" => once(&mut scope, "scope", text, &mut map)?,
                // Rare and short: parsed as the general path parses it.
                "nextHops" => once(
                    &mut next_hops,
                    "nextHops",
                    |m| strict_next_hops(m),
                    &mut map,
                )?,
                // Parsed only so that a malformed one is refused as serde
                // would.
                "targetRef" => once(
                    &mut target_ref,
                    "targetRef",
                    |m| typed::<A, Option<ObjectReference>>(m, Some(REFERENCE_FIELDS)),
                    &mut map,
                )?,
                other => return Err(unknown(other, ROUTE_FIELDS)),
            }
        }
        let fields = RouteFields {
            dst: borrow(&dst),
            gw: borrow(&gw),
            src: borrow(&src),
            dev: borrow(&dev),
            onlink: onlink.flatten(),
            scope: borrow(&scope),
            next_hops: next_hops.as_ref().and_then(|h| h.as_deref()),
        };
        self.0.route(&fields);
        Ok(())
    }
}

fn borrow<'a>(field: &'a Option<Option<Cow<'_, str>>>) -> Option<&'a str> {
    field.as_ref().and_then(|v| v.as_deref())
}

/// An optional string, borrowed when it has no escapes (serde's own
/// `Option<Cow<str>>` always copies).
fn text<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<Cow<'de, str>>, A::Error> {
    Ok(map.next_value::<Option<Key<'de>>>()?.map(|k| k.0))
}

/// The fast path's answer to anything it does not know: give up, and
/// let the general path explain.
fn unknown<E: de::Error>(key: &str, known: &[&str]) -> E {
    E::custom(strict::unknown_field(&Path::Root, key, known))
}

/// A small typed value read strictly (repeated keys, and with `known`
/// unknown fields too, are errors, as on the general path).
fn typed<'de, A: MapAccess<'de>, T: de::DeserializeOwned>(
    map: &mut A,
    known: Option<&[&str]>,
) -> Result<T, A::Error> {
    let StrictValue(v) = map.next_value()?;
    from_value(v, known)
}

fn from_value<T: de::DeserializeOwned, E: de::Error>(
    v: serde_json::Value,
    known: Option<&[&str]>,
) -> Result<T, E> {
    if let (Some(known), Some(m)) = (known, v.as_object()) {
        if let Some(k) = m.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(unknown(k, known));
        }
    }
    T::deserialize(v).map_err(E::custom)
}

/// `nextHops`, read strictly (repeated keys and unknown fields refused).
fn strict_next_hops<'de, A: MapAccess<'de>>(
    map: &mut A,
) -> Result<Option<Vec<NextHopSpec>>, A::Error> {
    let StrictValue(v) = map.next_value()?;
    for hop in v.as_array().map_or(&[][..], Vec::as_slice) {
        from_value::<serde_json::Value, _>(hop.clone(), Some(NEXT_HOP_FIELDS))?;
    }
    from_value(v, None)
}

/// An integer field exactly as written, read strictly.
fn raw_int<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<RawInt>, A::Error> {
    Ok(map
        .next_value::<Option<StrictValue>>()?
        .map(|StrictValue(v)| RawInt(v)))
}

#[cfg(test)]
mod tests;
