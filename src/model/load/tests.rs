use super::*;
use crate::model::testdata::rome_dir;
use std::fs;

fn names(objects: &[RouteConfiguration]) -> Vec<String> {
    objects.iter().map(RouteConfiguration::key).collect()
}

fn messages(errors: &[LoadError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

const MINIMAL: &str = "\
apiVersion: networking.liqo.io/v1beta1
kind: RouteConfiguration
metadata: {name: a, namespace: liqo}
spec: {table: {name: a, rules: [{iif: x, routes: []}]}}
";

/// A scratch directory under the system temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("routecfg-model-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.0.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn object_yaml(ns: &str, name: &str) -> String {
    MINIMAL.replace(
        "name: a, namespace: liqo",
        &format!("name: {name}, namespace: {ns}"),
    )
}

#[test]
fn single_yaml_object() {
    let (objects, errors) = parse_documents(MINIMAL, "a.yaml");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(names(&objects), ["liqo/a"]);
    assert_eq!(objects[0].kind, "RouteConfiguration");
    assert_eq!(
        objects[0].spec.table.rules.as_ref().unwrap()[0]
            .iif
            .as_deref(),
        Some("x")
    );
}

#[test]
fn multi_document_yaml_skips_empty_documents_and_other_kinds() {
    let text = format!(
        "%YAML 1.2\n---\n# leading comment\n---\n{}---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: liqo}}\n\
         --- # comment after the marker\n{}...\n---\n...\n---\n",
        object_yaml("liqo", "one"),
        object_yaml("liqo", "two"),
    );
    let (objects, errors) = parse_documents(&text, "multi.yaml");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(names(&objects), ["liqo/one", "liqo/two"]);
}

#[test]
fn other_api_groups_and_kindless_documents_are_skipped() {
    let text = format!(
        "{}---\napiVersion: example.com/v1\nkind: RouteConfiguration\nmetadata: {{name: foreign}}\n\
         ---\nmetadata: {{name: no-kind}}\nspec: {{}}\n---\nkind: RouteConfiguration\nmetadata: {{name: no-api-version}}\n",
        object_yaml("liqo", "ours"),
    );
    let (objects, errors) = parse_documents(&text, "x.yaml");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(names(&objects), ["liqo/ours", "no-api-version"]);
    assert_eq!(objects[1].api_version, API_VERSION);
}

#[test]
fn a_yaml_syntax_error_stays_in_its_document() {
    let text = format!(
        "{}---\nkind: RouteConfiguration\nmetadata:\n  name: broken\n   namespace: liqo\n---\n{}",
        object_yaml("liqo", "before"),
        object_yaml("liqo", "after"),
    );
    let (objects, errors) = parse_documents(&text, "f.yaml");
    assert_eq!(names(&objects), ["liqo/before", "liqo/after"]);
    assert_eq!(
        messages(&errors),
        [
            "f.yaml: document 2: invalid YAML: mapping values are not allowed in this context at line 9 column 13"
        ]
    );
    // Line 9 of the whole input is the misindented `namespace:` line.
    assert_eq!(text.lines().nth(8), Some("   namespace: liqo"));
}

#[test]
fn a_yaml_type_error_names_the_object_the_field_and_the_line() {
    let text = format!(
        "{}---\napiVersion: networking.liqo.io/v1beta1\nkind: RouteConfiguration\nmetadata:\n  name: bad\n  namespace: liqo\n\
         spec:\n  table:\n    name: t\n    rules:\n    - routes:\n      - dst: 10.0.0.0/8\n        dev: eth0\n        onlink: yes\n",
        object_yaml("liqo", "good"),
    );
    let (objects, errors) = parse_documents(&text, "f.yaml");
    assert_eq!(names(&objects), ["liqo/good"]);
    assert_eq!(
        messages(&errors),
        [
            "f.yaml: document 2 (liqo/bad): spec.table.rules[0].routes[0].onlink: invalid type: string \"yes\", expected a boolean at line 18 column 17"
        ]
    );
    assert_eq!(text.lines().nth(17), Some("        onlink: yes"));
}

#[test]
fn unquoted_label_values_are_refused_like_kubernetes_does() {
    let text =
        "kind: RouteConfiguration\nmetadata:\n  name: n\n  labels:\n    liqo.io/managed: true\n";
    let (objects, errors) = parse_documents(text, "l.yaml");
    assert!(objects.is_empty());
    assert_eq!(
        messages(&errors),
        [
            "l.yaml: document 1 (n): metadata.labels: invalid type: boolean `true`, expected a string"
        ]
    );
}

#[test]
fn a_scalar_document_is_an_error() {
    let (objects, errors) = parse_documents("just text\n---\n42\n", "s.yaml");
    assert!(objects.is_empty());
    assert_eq!(
        messages(&errors),
        [
            "s.yaml: document 1: expected an object, found a string",
            "s.yaml: document 2: expected an object, found a number"
        ]
    );
}

#[test]
fn kubectl_yaml_list_with_a_bad_item() {
    let text = "\
apiVersion: v1
kind: List
metadata:
  resourceVersion: \"\"
items:
- apiVersion: networking.liqo.io/v1beta1
  kind: RouteConfiguration
  metadata: {name: one, namespace: liqo, creationTimestamp: \"2024-05-01T10:00:00Z\"}
  spec: {table: {name: one, rules: [{iif: x, routes: []}]}}
- apiVersion: networking.liqo.io/v1beta1
  kind: RouteConfiguration
  metadata: {name: two, namespace: liqo}
  spec: {table: {name: two, rules: [{iif: [x], routes: []}]}}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: other}
- apiVersion: networking.liqo.io/v1beta1
  kind: RouteConfiguration
  metadata: {name: three, namespace: liqo}
  spec: {table: {name: three, rules: [{iif: x, routes: []}]}}
";
    let (objects, errors) = parse_documents(text, "list.yaml");
    assert_eq!(names(&objects), ["liqo/one", "liqo/three"]);
    assert_eq!(
        objects[0].metadata.creation_timestamp.as_deref(),
        Some("2024-05-01T10:00:00Z")
    );
    assert_eq!(
        messages(&errors),
        [
            "list.yaml: document 1, items[1] (liqo/two): spec.table.rules[0].iif: invalid type: sequence, expected a string"
        ]
    );
}

#[test]
fn json_object_stream_and_syntax_error() {
    let one = r#"{"apiVersion":"networking.liqo.io/v1beta1","kind":"RouteConfiguration","metadata":{"name":"j1"},"spec":{}}"#;
    let two = r#"{"kind":"RouteConfiguration","metadata":{"name":"j2","namespace":"n"}}"#;
    let (objects, errors) =
        parse_documents(&format!("\u{feff}  {one}\n{two}\n{{\"kind\": ]"), "s.json");
    assert_eq!(names(&objects), ["j1", "n/j2"]);
    assert_eq!(
        messages(&errors),
        ["s.json: document 3: invalid JSON: expected value at line 3 column 10"]
    );
}

#[test]
fn json_type_error_carries_the_field_path() {
    let text = r#"{"kind":"RouteConfiguration","metadata":{"name":"j","namespace":"n"},
                  "spec":{"table":{"name":"t","rules":[{"routes":[{"dst":"10.0.0.0/8","onlink":"yes"}]}]}}}"#;
    let (objects, errors) = parse_documents(text, "t.json");
    assert!(objects.is_empty());
    assert_eq!(
        messages(&errors),
        [
            "t.json: document 1 (n/j): spec.table.rules[0].routes[0].onlink: invalid type: string \"yes\", expected a boolean"
        ]
    );
}

#[test]
fn apiserver_list_items_without_kind_are_typed_by_the_list() {
    let text = r#"{"apiVersion":"networking.liqo.io/v1beta1","kind":"RouteConfigurationList",
        "metadata":{"resourceVersion":"12345"},
        "items":[{"metadata":{"name":"a","namespace":"liqo","resourceVersion":"7"},
                  "spec":{"table":{"name":"a","rules":[{"iif":"x","routes":[]}]}}}]}"#;
    let (objects, errors) = parse_documents(text, "api");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(names(&objects), ["liqo/a"]);
    assert_eq!(
        (objects[0].kind.as_str(), objects[0].api_version.as_str()),
        (KIND, API_VERSION)
    );
    assert_eq!(objects[0].metadata.resource_version.as_deref(), Some("7"));
}

#[test]
fn generic_list_items_need_their_own_kind_and_bare_arrays_work() {
    let text = r#"{"kind":"List","items":[{"metadata":{"name":"kindless"}},
        {"kind":"RouteConfiguration","metadata":{"name":"typed"}}, 5]}"#;
    let (objects, errors) = parse_documents(text, "l.json");
    assert_eq!(names(&objects), ["typed"]);
    assert_eq!(
        messages(&errors),
        ["l.json: document 1, items[2]: expected an object, found a number"]
    );

    let (objects, errors) = parse_documents(
        r#"[{"kind":"RouteConfiguration","metadata":{"name":"x"}}]"#,
        "a.json",
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(names(&objects), ["x"]);
}

#[test]
fn objects_round_trip_through_json() {
    let (objects, errors) = load_paths(&[rome_dir()]);
    assert!(errors.is_empty(), "{errors:?}");
    let json = serde_json::to_string(&objects.iter().collect::<Vec<_>>()).unwrap();
    let (again, errors) = parse_documents(&json, "round-trip");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(again, objects);
}

#[test]
fn rome_fixtures_load_in_path_order() {
    let (objects, errors) = load_paths(&[rome_dir()]);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        names(&objects),
        [
            "liqo-tenant-milan/milan-gw-ext",
            "liqo/rome-control-plane-extcidr",
            "liqo/rome-control-plane-gw-node",
            "liqo/rome-control-plane-service-nodeport-routing",
            "liqo/rome-worker-extcidr",
            "liqo/rome-worker-gw-node",
            "liqo/rome-worker-service-nodeport-routing",
            "liqo-tenant-milan/milan-node-gw",
        ]
    );
}

#[test]
fn missing_paths_are_reported_and_others_still_load() {
    let missing = PathBuf::from("/nonexistent/routecfg/x.yaml");
    let (objects, errors) = load_paths(&[missing, rome_dir().join("node/milan-node-gw.yaml")]);
    assert_eq!(names(&objects), ["liqo-tenant-milan/milan-node-gw"]);
    assert_eq!(
        messages(&errors),
        ["/nonexistent/routecfg/x.yaml: cannot read: No such file or directory (os error 2)"]
    );
}

#[test]
fn directory_walk_is_sorted_recursive_and_skips_hidden_entries() {
    let s = Scratch::new("walk");
    s.write("b.yaml", &object_yaml("n", "b"));
    s.write(
        "a.json",
        r#"{"kind":"RouteConfiguration","metadata":{"name":"a","namespace":"n"}}"#,
    );
    s.write("sub/c.YML", &object_yaml("n", "c"));
    s.write("notes.txt", &object_yaml("n", "txt"));
    s.write(".hidden.yaml", &object_yaml("n", "hidden"));
    // A mounted ConfigMap: real files in a hidden timestamped directory,
    // reached through `..data` and per-file links.
    s.write("cm/..2024_05_01/d.yaml", &object_yaml("n", "d"));
    std::os::unix::fs::symlink("..2024_05_01", s.0.join("cm/..data")).unwrap();
    std::os::unix::fs::symlink("..data/d.yaml", s.0.join("cm/d.yaml")).unwrap();
    // A loop must end.
    std::os::unix::fs::symlink("..", s.0.join("sub/loop")).unwrap();
    let (objects, errors) = load_paths(std::slice::from_ref(&s.0));
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(names(&objects), ["n/a", "n/b", "n/d", "n/c"]);

    // A file named explicitly is read whatever its extension.
    let (objects, _) = load_paths(&[s.0.join("notes.txt")]);
    assert_eq!(names(&objects), ["n/txt"]);
}

#[test]
fn unreadable_file_content_is_reported() {
    let s = Scratch::new("binary");
    let p = s.0.join("bin.yaml");
    fs::write(&p, [0xff, 0xfe, 0x00]).unwrap();
    let (objects, errors) = load_paths(std::slice::from_ref(&p));
    assert!(objects.is_empty());
    assert_eq!(
        messages(&errors),
        [format!(
            "{}: cannot read: stream did not contain valid UTF-8",
            p.display()
        )]
    );
}

#[test]
fn yaml_split_keeps_line_numbers() {
    let chunks = split_yaml("a: 1\n---\nb: 2\n...\n# tail\n--- x\n");
    assert_eq!(
        chunks,
        [
            ("a: 1\n", 0),
            ("---\nb: 2\n...\n", 1),
            ("# tail\n--- x\n", 4)
        ]
    );
    let chunks = split_yaml("%YAML 1.2\n---\na: 1\n---\n# c\n---\nb: 2\n");
    assert_eq!(
        chunks,
        [
            ("%YAML 1.2\n---\na: 1\n", 0),
            ("---\n# c\n", 3),
            ("---\nb: 2\n", 5)
        ]
    );
    assert_eq!(split_yaml("---x: 1\n----\n"), [("---x: 1\n----\n", 0)]);
    assert!(split_yaml("").is_empty());
}

/// A RouteConfiguration named `name` whose first rule has `rule` (YAML
/// flow-mapping fields, without braces) and one route.
fn hostile(name: &str, rule: &str) -> String {
    format!(
        "apiVersion: networking.liqo.io/v1beta1\nkind: RouteConfiguration\n\
         metadata: {{name: {name}, namespace: liqo}}\n\
         spec:\n  table:\n    name: {name}\n    rules:\n    - {rule}\n      routes: [{{dst: 10.0.0.0/8, dev: lo}}]\n"
    )
}

/// Every way a selector could be lost silently is an error naming the
/// file, document, object and field path, and the other documents load.
#[test]
fn hostile_yaml_is_refused_naming_file_document_object_and_field() {
    let cases = [
        (
            "fwmark: .inf",
            "spec.table.rules[0].fwmark: inf is not a finite number",
        ),
        (
            "fwmark: .nan",
            "spec.table.rules[0].fwmark: NaN is not a finite number",
        ),
        ("fwmakr: 5", "spec.table.rules[0].fwmakr: unknown field"),
        (
            "fwmark: 5\n      fwmark: 6",
            "spec.table.rules[0].fwmark: duplicate key",
        ),
        (
            "<<: {fwmark: 5}",
            "spec.table.rules[0].<<: YAML merge keys (<<) are not supported",
        ),
        (
            "fwmark: 5.5",
            "spec.table.rules[0].fwmark: 5.5 is not an integer",
        ),
    ];
    for (rule, want) in cases {
        let text = format!("{}---\n{}", hostile("bad", rule), hostile("good", "iif: x"));
        let (objects, errors) = parse_documents(&text, "in.yaml");
        if want.contains("not an integer") {
            // Read fine; validation names the field.
            assert_eq!(names(&objects), ["liqo/bad", "liqo/good"]);
            let e = crate::model::validate(&objects[0], 114).unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
            continue;
        }
        assert_eq!(names(&objects), ["liqo/good"], "{rule}");
        let m = messages(&errors);
        assert_eq!(m.len(), 1, "{rule}: {m:?}");
        assert!(
            m[0].starts_with("in.yaml: document 1 (liqo/bad): ") && m[0].contains(want),
            "{rule}: {}",
            m[0]
        );
    }
}

#[test]
fn a_duplicate_rules_list_cannot_replace_the_first() {
    let text = hostile("bad", "iif: x").replace(
        "    rules:\n",
        "    rules: [{fwmark: 1, routes: []}]\n    rules:\n",
    );
    let (objects, errors) = parse_documents(&text, "in.yaml");
    assert!(objects.is_empty());
    assert!(
        messages(&errors)[0].contains("spec.table.rules: duplicate key"),
        "{errors:?}"
    );
}

#[test]
fn hostile_json_is_refused_on_the_fast_path_too() {
    let obj = |rule: &str| {
        format!(
            r#"{{"apiVersion": "networking.liqo.io/v1beta1", "kind": "RouteConfiguration",
               "metadata": {{"name": "x", "namespace": "liqo", "labels": {{"a": "1"}}}},
               "spec": {{"table": {{"name": "x", "rules": [{{{rule}, "routes": []}}]}}}}}}"#
        )
    };
    let cases = [
        (
            r#""fwmark": 1, "fwmark": 2"#,
            "spec.table.rules[0].fwmark: duplicate key",
        ),
        (
            r#""fwmakr": 1"#,
            "spec.table.rules[0].fwmakr: unknown field",
        ),
        (
            r#""iif": "a", "x": {"b": 1, "b": 1}"#,
            "spec.table.rules[0].x.b: duplicate key",
        ),
        (
            r#""iif": "a", "targetRef": {"kind": "Pod", "nmae": "p"}"#,
            "spec.table.rules[0].targetRef.nmae: unknown field",
        ),
    ];
    for (rule, want) in cases {
        for mode in [Mode::Keep, Mode::Validate(crate::model::Policy::new(114))] {
            let (objects, errors) = parse_with(&obj(rule), "in.json", mode);
            assert!(objects.is_empty(), "{rule}");
            let m = messages(&errors);
            assert!(
                m.len() == 1
                    && m[0].starts_with("in.json: document 1 (liqo/x): ")
                    && m[0].contains(want),
                "{rule}: {m:?}"
            );
        }
    }
    // Repeated keys anywhere, even in fields routecfg ignores, and in labels.
    let text = obj(r#""iif": "a""#).replace(r#""a": "1""#, r#""a": "1", "a": "2""#);
    let (objects, errors) = parse_with(
        &text,
        "in.json",
        Mode::Validate(crate::model::Policy::new(114)),
    );
    assert!(objects.is_empty());
    assert!(
        messages(&errors)[0].contains("metadata.labels.a: duplicate key"),
        "{errors:?}"
    );
    let text = obj(r#""iif": "a""#).replace(
        r#""kind":"#,
        r#""extra": {"z": [{"q": 1, "q": 1}]}, "kind":"#,
    );
    let (_, errors) = parse_with(
        &text,
        "in.json",
        Mode::Validate(crate::model::Policy::new(114)),
    );
    assert!(
        messages(&errors)[0].contains("extra.z[0].q: duplicate key"),
        "{errors:?}"
    );
    // A lone surrogate in an ignored field: both paths refuse it.
    let text = obj(r#""iif": "a""#).replace(r#""kind":"#, r#""extra": "\ud800", "kind":"#);
    let (objects, errors) = parse_with(
        &text,
        "in.json",
        Mode::Validate(crate::model::Policy::new(114)),
    );
    assert!(objects.is_empty() && errors.len() == 1, "{errors:?}");
}

#[test]
fn one_bad_item_of_a_list_leaves_the_others() {
    let text = r#"{"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "networking.liqo.io/v1beta1", "kind": "RouteConfiguration",
         "metadata": {"name": "a"}, "spec": {"table": {"name": "a", "rules": [{"iif": "x", "routes": []}]}}},
        {"apiVersion": "networking.liqo.io/v1beta1", "kind": "RouteConfiguration",
         "metadata": {"name": "b"}, "spec": {"table": {"name": "b", "name": "c"}}}]}"#;
    let (objects, errors) = parse_documents(text, "l.json");
    assert_eq!(names(&objects), ["a"]);
    assert_eq!(
        messages(&errors),
        [
            "l.json: document 1, items[1] (b): spec.table.name: duplicate key (each key may appear once)"
        ]
    );
}

#[test]
fn deep_yaml_is_refused_quickly_and_alone() {
    let deep = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let text = format!("{MINIMAL}---\n{deep}");
    let (objects, errors) = parse_documents(&text, "deep.yaml");
    assert_eq!(names(&objects), ["liqo/a"]);
    assert_eq!(
        messages(&errors),
        [
            "deep.yaml: document 2: invalid YAML: line 6: nested more than 64 levels deep; refused before parsing"
        ]
    );
}
