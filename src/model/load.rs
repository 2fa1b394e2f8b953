//! Reads RouteConfigurations from files, directories or stdin, in any form
//! people and tools produce: JSON or YAML, one object, multi-document YAML
//! or a `List` as `kubectl get -o yaml|json` prints. One bad document is
//! reported and the others still load.

mod fast;
mod locate;
pub(crate) mod strict;

use fast::Mode;
use strict::Problem;

use super::api::{API_GROUP, API_VERSION, KIND, RouteConfiguration};
use super::validate::{ObjectError, Policy, Validated};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashSet;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A document (or a whole input) that could not be read: where it came
/// from, which document, which object if its name was readable, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    /// File path, `<stdin>`, or whatever the caller passed as origin.
    pub origin: String,
    /// 1-based document number within the origin; `None` when the origin
    /// itself could not be read.
    pub document: Option<usize>,
    /// Index in the document's `items` when the document is a List.
    pub item: Option<usize>,
    /// `namespace/name` when the broken object still names itself.
    pub object: Option<String>,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some(d) = self.document {
            write!(f, ": document {d}")?;
        }
        if let Some(i) = self.item {
            write!(f, ", items[{i}]")?;
        }
        if let Some(o) = &self.object {
            write!(f, " ({o})")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for LoadError {}

/// Parses every RouteConfiguration in `text`; `origin` names the input in
/// errors and logs. JSON is recognized by a leading `{` or `[` (several
/// concatenated JSON values are accepted), anything else is YAML.
pub fn parse_documents(text: &str, origin: &str) -> (Vec<RouteConfiguration>, Vec<LoadError>) {
    let (loaded, errors) = parse_with(text, origin, Mode::Keep);
    (loaded.into_iter().map(|l| l.object).collect(), errors)
}

/// An object as loaded, with its validation result when the loader
/// already validated it (see [`load_paths_validated`]).
#[derive(Debug)]
pub struct Loaded {
    /// The object; when `validated` is set its rules have no routes (they
    /// were validated as they were read, then dropped).
    pub object: RouteConfiguration,
    pub validated: Option<Result<Validated, ObjectError>>,
}

fn parse_with(text: &str, origin: &str, mode: Mode) -> (Vec<Loaded>, Vec<LoadError>) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if is_json(text) {
        if let Some(loaded) = fast::parse_json(text, mode) {
            return (loaded, Vec::new());
        }
    }
    let (objects, errors) = parse_general(text, origin);
    let loaded = objects
        .into_iter()
        .map(|object| Loaded {
            object,
            validated: None,
        })
        .collect();
    (loaded, errors)
}

fn is_json(text: &str) -> bool {
    matches!(text.trim_start().chars().next(), Some('{' | '['))
}

/// Any input, through `serde_json::Value`: slower, but it can explain
/// every problem and skip what is not a RouteConfiguration.
fn parse_general(text: &str, origin: &str) -> (Vec<RouteConfiguration>, Vec<LoadError>) {
    let mut sink = Sink {
        origin,
        objects: Vec::new(),
        errors: Vec::new(),
    };
    if is_json(text) {
        sink.json(text);
    } else {
        sink.yaml(text);
    }
    (sink.objects, sink.errors)
}

/// Loads files and directories (recursively, `*.yaml`, `*.yml`, `*.json`,
/// in name order, skipping hidden entries such as the `..data` links of a
/// mounted ConfigMap); `-` reads stdin. A file named explicitly is read
/// whatever its extension.
///
/// Only regular files are read (a FIFO or a device is refused, never
/// waited on), each up to [`MAX_FILE_BYTES`].
pub fn load_paths(paths: &[PathBuf]) -> (Vec<RouteConfiguration>, Vec<LoadError>) {
    let (loaded, errors) = load_with(paths, Mode::Keep, MAX_FILE_BYTES);
    (loaded.into_iter().map(|l| l.object).collect(), errors)
}

/// [`load_paths`] for a caller that validates everything with `protocol`
/// next: JSON input is validated under `policy` while it is read, so the routes of a
/// large object never all exist at once in API form. Objects from the
/// general path (YAML, or JSON it has to explain) come unvalidated.
/// Files (and stdin) larger than `max_file_bytes` are refused.
pub fn load_paths_validated(
    paths: &[PathBuf],
    policy: &Policy,
    max_file_bytes: u64,
) -> (Vec<Loaded>, Vec<LoadError>) {
    load_with(paths, Mode::Validate(*policy), max_file_bytes)
}

/// Default limit on one input file: far above any real manifest set, far
/// below what would exhaust memory (the general path holds about ten
/// times the text as a tree).
pub const MAX_FILE_BYTES: u64 = 64 << 20;

fn load_with(paths: &[PathBuf], mode: Mode, max: u64) -> (Vec<Loaded>, Vec<LoadError>) {
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            match read_limited(std::io::stdin().lock(), max) {
                Ok(text) => absorb(
                    parse_with(&text, "<stdin>", mode),
                    &mut objects,
                    &mut errors,
                ),
                Err(e) => errors.push(origin_error("<stdin>", e)),
            }
            continue;
        }
        match std::fs::metadata(path) {
            Err(e) => errors.push(origin_error(
                &path.display().to_string(),
                format!("cannot read: {e}"),
            )),
            Ok(m) if m.is_dir() => {
                let mut files = Vec::new();
                let mut seen = HashSet::new();
                walk(path, &mut files, &mut seen, &mut errors);
                for f in files {
                    absorb(load_file(&f, mode, max), &mut objects, &mut errors);
                }
            }
            Ok(_) => absorb(load_file(path, mode, max), &mut objects, &mut errors),
        }
    }
    (objects, errors)
}

fn absorb(
    (objs, errs): (Vec<Loaded>, Vec<LoadError>),
    objects: &mut Vec<Loaded>,
    errors: &mut Vec<LoadError>,
) {
    objects.extend(objs);
    errors.extend(errs);
}

fn origin_error(origin: &str, message: String) -> LoadError {
    LoadError {
        origin: origin.to_string(),
        document: None,
        item: None,
        object: None,
        message,
    }
}

fn load_file(path: &Path, mode: Mode, max: u64) -> (Vec<Loaded>, Vec<LoadError>) {
    let origin = path.display().to_string();
    match read_regular(path, max) {
        Ok(text) => parse_with(&text, &origin, mode),
        Err(e) => (Vec::new(), vec![origin_error(&origin, e)]),
    }
}

/// The text of a regular file of at most `max` bytes. The file is opened
/// without blocking and checked through its descriptor, so a FIFO is
/// refused rather than waited on, and a file swapped after a check is
/// still the one checked.
fn read_regular(path: &Path, max: u64) -> Result<String, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot read: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file (FIFOs, sockets and devices are not read)".to_string());
    }
    if meta.len() > max {
        return Err(too_large(max));
    }
    read_limited(file, max)
}

/// Reads UTF-8 text, refusing more than `max` bytes.
fn read_limited(r: impl Read, max: u64) -> Result<String, String> {
    let mut text = String::new();
    r.take(max.saturating_add(1))
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read: {e}"))?;
    if text.len() as u64 > max {
        return Err(too_large(max));
    }
    Ok(text)
}

fn too_large(max: u64) -> String {
    format!("larger than {max} bytes, the limit (see --max-file-size)")
}

/// Collects manifest files under `dir` depth-first in name order, visiting
/// each real directory once (symlink loops end).
fn walk(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    seen: &mut HashSet<PathBuf>,
    errors: &mut Vec<LoadError>,
) {
    let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if !seen.insert(real) {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(origin_error(
                &dir.display().to_string(),
                format!("cannot read: {e}"),
            ));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in entries {
        match entry {
            Ok(e) => paths.push(e.path()),
            Err(e) => errors.push(origin_error(
                &dir.display().to_string(),
                format!("cannot read: {e}"),
            )),
        }
    }
    paths.sort();
    for p in paths {
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => walk(&p, out, seen, errors),
            Ok(_) if is_manifest(&p) => out.push(p),
            Ok(_) => {}
            Err(e) => errors.push(origin_error(
                &p.display().to_string(),
                format!("cannot read: {e}"),
            )),
        }
    }
}

fn is_manifest(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "yaml" | "yml" | "json"))
}

struct Sink<'a> {
    origin: &'a str,
    objects: Vec<RouteConfiguration>,
    errors: Vec<LoadError>,
}

/// Where a value sits in its input, for messages; `yaml` is the document's
/// own text and first line when the value is a whole YAML document, so a
/// typed error can be re-derived with real line numbers.
struct Place<'t> {
    document: usize,
    item: Option<usize>,
    yaml: Option<(&'t str, usize)>,
}

impl Sink<'_> {
    fn error(&mut self, place: &Place, object: Option<String>, message: String) {
        self.errors.push(LoadError {
            origin: self.origin.to_string(),
            document: Some(place.document),
            item: place.item,
            object,
            message,
        });
    }

    fn json(&mut self, text: &str) {
        let mut de = serde_json::Deserializer::from_str(text);
        let mut document = 0;
        // `end` only skips whitespace; an error means another value follows.
        while de.end().is_err() {
            document += 1;
            let place = Place {
                document,
                item: None,
                yaml: None,
            };
            match strict::strict_document(&mut de) {
                Ok((v, problems)) => self.document(v, &place, problems),
                Err(e) => {
                    // The stream cannot resynchronize after a syntax error.
                    self.error(&place, None, format!("invalid JSON: {e}"));
                    break;
                }
            }
        }
    }

    fn yaml(&mut self, text: &str) {
        let mut document = 0;
        for (chunk, first_line) in split_yaml(text) {
            let value = match strict::check_yaml_depth(chunk) {
                Err(e) => Err(shift_line(&e, first_line)),
                Ok(()) => {
                    match strict::strict_document(serde_yaml_ng::Deserializer::from_str(chunk)) {
                        Ok((Value::Null, p)) if p.is_empty() => continue,
                        Ok(v) => Ok(v),
                        Err(e) => {
                            Err(yaml_error_at::<Value>(chunk, first_line).unwrap_or(e.to_string()))
                        }
                    }
                }
            };
            document += 1;
            let place = Place {
                document,
                item: None,
                yaml: Some((chunk, first_line)),
            };
            match value {
                Ok((v, problems)) => self.document(v, &place, problems),
                Err(e) => self.error(&place, None, format!("invalid YAML: {e}")),
            }
        }
    }

    fn document(&mut self, v: Value, place: &Place, problems: Vec<Problem>) {
        let list_kind = match &v {
            Value::Null if problems.is_empty() => return,
            Value::Array(_) => Some(None),
            Value::Object(m) => match (m.get("kind").and_then(Value::as_str), m.get("items")) {
                (Some(k), Some(Value::Array(_))) if k.ends_with("List") => Some(
                    k.strip_suffix("List")
                        .filter(|k| !k.is_empty())
                        .map(str::to_string),
                ),
                _ => None,
            },
            _ => None,
        };
        let Some(item_kind) = list_kind else {
            // Not a list: a problem "in items[j]" is in a field of this
            // object that happens to be called `items`.
            let problems = problems
                .into_iter()
                .map(|p| match p.item {
                    Some(j) => Problem {
                        item: None,
                        path: format!("items[{j}].{}", p.path),
                        message: p.message,
                    },
                    None => p,
                })
                .collect::<Vec<_>>();
            return self.object(v, place, None, &problems);
        };
        // A problem in the list itself (not in an item) spoils every item.
        if let Some(p) = problems.iter().find(|p| p.item.is_none()) {
            return self.error(place, None, p.to_string());
        }
        let items = match v {
            Value::Array(items) => items,
            Value::Object(mut m) => match m.remove("items") {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        for (j, item) in items.into_iter().enumerate() {
            let p = Place {
                document: place.document,
                item: Some(j),
                yaml: None,
            };
            let mine: Vec<Problem> = problems
                .iter()
                .filter(|p| p.item == Some(j))
                .cloned()
                .collect();
            self.object(item, &p, item_kind.as_deref(), &mine);
        }
    }

    fn object(
        &mut self,
        v: Value,
        place: &Place,
        default_kind: Option<&str>,
        problems: &[Problem],
    ) {
        // Input that cannot be read exactly as written fails whatever its
        // kind: with a repeated `kind`, even the kind is in doubt.
        if let Some(p) = problems.first() {
            return self.error(place, readable_key(&v), p.to_string());
        }
        let Value::Object(map) = &v else {
            let what = match &v {
                Value::Array(_) => "a list",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                _ => "null",
            };
            return self.error(place, None, format!("expected an object, found {what}"));
        };
        let name = readable_key(&v);
        let kind = map.get("kind").and_then(Value::as_str).or(default_kind);
        let api_version = map.get("apiVersion").and_then(Value::as_str);
        let at = describe(self.origin, place);
        match kind {
            None => {
                log::warn!(
                    "{at}: {}: no kind, not a Kubernetes object; skipped",
                    or_unnamed(&name)
                );
                return;
            }
            Some(k) if k != KIND => {
                log::debug!("{at}: {}: kind {k}; skipped", or_unnamed(&name));
                return;
            }
            Some(_) => {}
        }
        if let Some(api) = api_version {
            let group = api.rsplit_once('/').map_or("", |(g, _)| g);
            if group != API_GROUP {
                log::debug!("{at}: {}: {KIND} of {api}; skipped", or_unnamed(&name));
                return;
            }
        }
        if let Err(e) = strict::check_spec_fields(&v) {
            return self.error(place, name, e);
        }
        match RouteConfiguration::deserialize(&v) {
            Ok(mut obj) => {
                if obj.kind.is_empty() {
                    obj.kind = KIND.to_string();
                }
                if obj.api_version.is_empty() {
                    obj.api_version = API_VERSION.to_string();
                }
                self.objects.push(obj);
            }
            Err(e) => {
                let message = typed_error_with_path(&v, place).unwrap_or_else(|| e.to_string());
                self.error(place, name, message);
            }
        }
    }
}

fn or_unnamed(name: &Option<String>) -> &str {
    name.as_deref().unwrap_or("<unnamed>")
}

fn describe(origin: &str, place: &Place) -> String {
    match place.item {
        Some(i) => format!("{origin}: document {}, items[{i}]", place.document),
        None => format!("{origin}: document {}", place.document),
    }
}

/// `namespace/name` from raw metadata, when there is at least a name.
fn readable_key(v: &Value) -> Option<String> {
    let meta = v.get("metadata")?;
    let name = meta.get("name")?.as_str()?;
    match meta.get("namespace").and_then(Value::as_str) {
        Some(ns) if !ns.is_empty() => Some(format!("{ns}/{name}")),
        _ => Some(name.to_string()),
    }
}

/// A message naming the failing field: from the YAML deserializer when the
/// value is a whole YAML document (it adds line numbers) and it agrees that
/// the document is broken, else from [`locate::locate`].
fn typed_error_with_path(v: &Value, place: &Place) -> Option<String> {
    if let Some((chunk, first_line)) = place.yaml {
        if let Some(msg) = yaml_error_at::<RouteConfiguration>(chunk, first_line) {
            return Some(msg);
        }
    }
    locate::locate(v)
}

/// `line N: ...` of a chunk that starts on 0-based line `first_line`,
/// counted from the start of the whole input.
fn shift_line(message: &str, first_line: usize) -> String {
    let shifted = message
        .strip_prefix("line ")
        .and_then(|rest| rest.split_once(':'))
        .and_then(|(n, rest)| Some((n.parse::<usize>().ok()?, rest)));
    match shifted {
        Some((n, rest)) => format!("line {}:{rest}", n + first_line),
        None => message.to_string(),
    }
}

/// The error of parsing `chunk` as `T`, with line numbers counted from the
/// start of the whole input (the chunk is re-parsed behind blank lines).
fn yaml_error_at<T: serde::de::DeserializeOwned>(chunk: &str, first_line: usize) -> Option<String> {
    let padded = format!("{}{chunk}", "\n".repeat(first_line));
    serde_yaml_ng::from_str::<T>(&padded)
        .err()
        .map(|e| e.to_string())
}

/// Splits multi-document YAML at `---` / `...` lines, returning each
/// document's text and its 0-based first line, so a broken document cannot
/// take the following ones down with it.
fn split_yaml(text: &str) -> Vec<(&str, usize)> {
    let mut chunks = Vec::new();
    let mut start = 0; // byte offset of the current chunk
    let mut start_line = 0;
    let mut offset = 0;
    for (line_no, line) in text.split_inclusive('\n').enumerate() {
        let is_marker = |m: &str| {
            line.strip_prefix(m)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
        };
        if is_marker("---") {
            // Directives and comments before a document belong to it.
            if offset > start && !preamble_only(&text[start..offset]) {
                chunks.push((&text[start..offset], start_line));
                start = offset;
                start_line = line_no;
            }
        }
        offset += line.len();
        if is_marker("...") {
            chunks.push((&text[start..offset], start_line));
            start = offset;
            start_line = line_no + 1;
        }
    }
    if offset > start {
        chunks.push((&text[start..offset], start_line));
    }
    chunks
}

/// For the `loader` fuzz target: whenever the fast path accepts `text`,
/// the general path yields the same objects and no error, and validating
/// while reading gives what validating afterwards gives; YAML that passes
/// the depth check never reaches the parser's recursion limit.
#[doc(hidden)]
pub fn check_paths_agree(text: &str) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (general, errors) = parse_general(text, "in");
    if !is_json(text) {
        for e in &errors {
            assert!(
                !e.message.contains("recursion limit"),
                "depth check let through: {e}"
            );
        }
        return;
    }
    let Some(fast) = fast::parse_json(text, Mode::Keep) else {
        return;
    };
    assert!(
        errors.is_empty(),
        "fast path accepted, general path: {errors:?}"
    );
    let fast: Vec<_> = fast.into_iter().map(|l| l.object).collect();
    assert_eq!(fast, general, "paths disagree");
    let policy = Policy {
        allow_match_all: true,
        ..Policy::new(114)
    };
    let checked = fast::parse_json(text, Mode::Validate(policy));
    let checked = checked.unwrap_or_else(|| panic!("validating fast path refused what it kept"));
    for (l, o) in checked.iter().zip(&general) {
        let want = super::validate::validate_with(o, &policy);
        assert_eq!(l.validated.as_ref(), Some(&want), "validation differs");
    }
}

#[cfg(test)]
mod tests;

/// True when `chunk` holds only blank lines, comments and `%` directives.
fn preamble_only(chunk: &str) -> bool {
    chunk.lines().all(|l| {
        let t = l.trim_start();
        t.is_empty() || t.starts_with('#') || t.starts_with('%')
    })
}
