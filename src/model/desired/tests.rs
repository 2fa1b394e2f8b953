use super::*;
use crate::model::load::load_paths;
use crate::model::testdata::rome_dir;
use crate::routing::DEFAULT_PROTOCOL;
use serde_json::json;

fn obj(ns: &str, name: &str, table: &str, created: Option<&str>) -> RouteConfiguration {
    let mut o: RouteConfiguration = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"table": {"name": table, "rules": [{"iif": "in0", "routes": [{"dst": "10.0.0.0/8", "dev": "e"}]}]}}
    }))
    .unwrap();
    o.metadata.creation_timestamp = created.map(str::to_string);
    o
}

fn broken(ns: &str, name: &str, table: &str) -> RouteConfiguration {
    let mut o = obj(ns, name, table, None);
    o.spec.table.rules.as_mut().unwrap()[0]
        .routes
        .as_mut()
        .unwrap()[0]
        .dev = Some("a/b".into());
    o
}

fn owners(d: &Desired) -> Vec<(&str, &str)> {
    d.tables
        .iter()
        .map(|t| (t.name.as_str(), t.owner.as_str()))
        .collect()
}

fn failures(d: &Desired) -> Vec<String> {
    d.failures.iter().map(ToString::to_string).collect()
}

#[test]
fn rome_fixtures_give_one_table_each() {
    let (objects, errors) = load_paths(&[rome_dir()]);
    assert!(errors.is_empty(), "{errors:?}");
    let d = build(&objects, DEFAULT_PROTOCOL);
    assert!(d.failures.is_empty(), "{:?}", d.failures);
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    assert!(d.frozen.is_empty());
    assert_eq!(
        owners(&d),
        [
            ("milan", "liqo-tenant-milan/milan-gw-ext"),
            ("milan-node-gw", "liqo-tenant-milan/milan-node-gw"),
            ("rome-control-plane", "liqo/rome-control-plane-gw-node"),
            (
                "rome-control-plane-extcidr",
                "liqo/rome-control-plane-extcidr"
            ),
            (
                "rome-control-plane-service-nodeport-routing",
                "liqo/rome-control-plane-service-nodeport-routing"
            ),
            ("rome-worker", "liqo/rome-worker-gw-node"),
            ("rome-worker-extcidr", "liqo/rome-worker-extcidr"),
            (
                "rome-worker-service-nodeport-routing",
                "liqo/rome-worker-service-nodeport-routing"
            ),
        ]
    );
    let id = |name: &str| d.tables.iter().find(|t| t.name == name).map(|t| t.id);
    assert_eq!(id("rome-worker"), Some(210412509));
    assert_eq!(id("milan"), Some(576843759));
}

#[test]
fn an_invalid_object_is_reported_and_the_others_still_count() {
    let objects = [
        obj("n", "a", "ta", None),
        broken("n", "b", "tb"),
        obj("n", "c", "tc", None),
    ];
    let d = build(&objects, DEFAULT_PROTOCOL);
    assert_eq!(owners(&d), [("ta", "n/a"), ("tc", "n/c")]);
    assert_eq!(
        failures(&d),
        [
            "n/b: spec.table.rules[0].routes[0].dev: \"a/b\" is not a valid interface name: it contains '/'"
        ]
    );
    assert_eq!(d.frozen, [table_id("tb")]);
}

#[test]
fn the_older_object_keeps_a_contested_table() {
    let young = obj("liqo", "a-young", "shared", Some("2024-06-01T00:00:00Z"));
    let old = obj("liqo", "z-old", "shared", Some("2024-05-01T00:00:00Z"));
    let unsaved = obj("liqo", "0-file", "shared", None);
    for objects in [
        vec![young.clone(), old.clone(), unsaved.clone()],
        vec![unsaved.clone(), old.clone(), young.clone()],
    ] {
        let d = build(&objects, DEFAULT_PROTOCOL);
        assert_eq!(owners(&d), [("shared", "liqo/z-old")]);
        let mut f = failures(&d);
        f.sort();
        assert_eq!(
            f,
            [
                "liqo/0-file: spec.table.name: table \"shared\" is already owned by liqo/z-old",
                "liqo/a-young: spec.table.name: table \"shared\" is already owned by liqo/z-old",
            ]
        );
        assert!(d.frozen.is_empty());
    }
}

#[test]
fn without_timestamps_the_first_key_keeps_the_table() {
    let objects = [
        obj("b", "x", "t", None),
        obj("a", "y", "t", None),
        obj("a", "x", "t", None),
    ];
    let d = build(&objects, DEFAULT_PROTOCOL);
    assert_eq!(owners(&d), [("t", "a/x")]);
    assert_eq!(
        failures(&d),
        [
            "a/y: spec.table.name: table \"t\" is already owned by a/x",
            "b/x: spec.table.name: table \"t\" is already owned by a/x",
        ]
    );
}

/// Two table names with the same id, found by search (ids have 31 bits,
/// so a collision turns up within a few hundred thousand names).
fn colliding_names() -> (String, String) {
    let mut seen: HashMap<u32, String> = HashMap::new();
    for i in 0..2_000_000u32 {
        let name = format!("t{i}");
        if let Some(other) = seen.insert(table_id(&name), name.clone()) {
            return (other, name);
        }
    }
    panic!("no table id collision among 2,000,000 names");
}

#[test]
fn colliding_table_ids_are_refused() {
    let (first, second) = colliding_names();
    assert_ne!(first, second);
    let id = table_id(&first);
    assert_eq!(id, table_id(&second));
    let objects = [
        obj("n", "late", &second, Some("2024-06-01T00:00:00Z")),
        obj("n", "early", &first, Some("2024-05-01T00:00:00Z")),
    ];
    let d = build(&objects, DEFAULT_PROTOCOL);
    assert_eq!(owners(&d), [(first.as_str(), "n/early")]);
    assert_eq!(
        failures(&d),
        [format!(
            "n/late: spec.table.name: table \"{second}\" has id {id}, the same as table \"{first}\" owned by n/early; rename one"
        )]
    );
    assert_eq!(
        d.collisions,
        [Collision {
            id,
            owner: "n/early".into(),
            owner_table: first.clone(),
            loser: "n/late".into(),
            loser_table: second.clone(),
        }]
    );
    // The same name twice is a conflict, not an id collision.
    let same = [
        obj("n", "a", &first, Some("2024-05-01T00:00:00Z")),
        obj("n", "b", &first, Some("2024-06-01T00:00:00Z")),
    ];
    let d = build(&same, DEFAULT_PROTOCOL);
    assert_eq!(d.failures.len(), 1);
    assert!(d.collisions.is_empty(), "{:?}", d.collisions);
}

#[test]
fn a_repeated_object_key_takes_the_last_definition() {
    let first = obj("n", "a", "first", None);
    let second = obj("n", "a", "second", None);
    let d = build(
        &[first.clone(), obj("n", "b", "b", None), second],
        DEFAULT_PROTOCOL,
    );
    assert_eq!(owners(&d), [("b", "n/b"), ("second", "n/a")]);
    assert_eq!(
        d.warnings,
        ["n/a: appears more than once in the input; the last definition wins"]
    );

    // Even when the last definition is broken: it replaces, it does not fall back.
    let d = build(&[first, broken("n", "a", "first")], DEFAULT_PROTOCOL);
    assert!(d.tables.is_empty());
    assert_eq!(d.failures.len(), 1);
    assert_eq!(d.frozen, [table_id("first")]);
}

#[test]
fn objects_being_deleted_want_nothing_and_claim_nothing() {
    let mut leaving = obj("n", "old", "t", Some("2024-01-01T00:00:00Z"));
    leaving.metadata.deletion_timestamp = Some("2024-07-01T00:00:00Z".into());
    let mut leaving_broken = broken("n", "gone", "tb");
    leaving_broken.metadata.deletion_timestamp = Some("2024-07-01T00:00:00Z".into());
    let newcomer = obj("n", "new", "t", Some("2024-06-01T00:00:00Z"));
    let d = build(&[leaving, leaving_broken, newcomer], DEFAULT_PROTOCOL);
    assert_eq!(owners(&d), [("t", "n/new")]);
    assert!(d.failures.is_empty());
    assert!(d.frozen.is_empty());
}

#[test]
fn a_broken_object_does_not_freeze_a_table_someone_valid_owns() {
    let d = build(
        &[broken("n", "a", "t"), obj("n", "b", "t", None)],
        DEFAULT_PROTOCOL,
    );
    assert_eq!(owners(&d), [("t", "n/b")]);
    assert_eq!(d.failures.len(), 1);
    assert!(d.frozen.is_empty());

    // Nor is there a table to freeze when the name itself is unusable.
    let mut nameless = broken("n", "c", "x");
    nameless.spec.table.name = Some(" ".into());
    let d = build(&[nameless], DEFAULT_PROTOCOL);
    assert_eq!(
        failures(&d),
        ["n/c: spec.table.name: \" \" must not contain whitespace or control characters"]
    );
    assert!(d.frozen.is_empty());
}

#[test]
fn warnings_of_valid_objects_are_collected_and_protocol_is_stamped() {
    let mut o = obj("n", "a", "t", None);
    o.spec.table.rules.as_mut().unwrap()[0].dst = Some("10.1.2.3/16".into());
    let d = build(&[o], 9);
    assert_eq!(
        d.warnings,
        ["n/a: spec.table.rules[0].dst: \"10.1.2.3/16\" has host bits set; using 10.1.0.0/16"]
    );
    assert!(d.tables[0].rules.iter().all(|r| r.protocol == 9));
    assert!(d.tables[0].routes.iter().all(|r| r.protocol == 9));
}

#[test]
fn no_objects_no_tables() {
    assert_eq!(build(&[], DEFAULT_PROTOCOL), Desired::default());
}

#[test]
fn unreadable_objects_freeze_their_tables_unless_owned() {
    let mut d = Desired {
        frozen: vec![7],
        ..Desired::default()
    };
    d.tables.push(crate::routing::Table {
        id: table_id("owned"),
        name: "owned".into(),
        owner: "liqo/o".into(),
        rules: vec![],
        routes: vec![],
    });
    freeze_unreadable(&mut d, ["broken", "owned", "", "bad name"]);
    let mut want = vec![7, table_id("broken")];
    want.sort();
    assert_eq!(d.frozen, want);
}
