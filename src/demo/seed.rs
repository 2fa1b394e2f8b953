//! The seed document's Rome gateway RouteConfigurations, compiled into the
//! binary so the demo needs no files and no cluster.

use crate::model::{RouteConfiguration, parse_documents};

/// `(origin, YAML)` of each object, in the document's order: the gateway
/// sees these seven objects (before and after peering with Milan).
pub const DOCUMENTS: &[(&str, &str)] = &[
    (
        "static/rome/gateway/rome-worker-extcidr.yaml",
        include_str!("../../static/rome/gateway/rome-worker-extcidr.yaml"),
    ),
    (
        "static/rome/gateway/rome-control-plane-extcidr.yaml",
        include_str!("../../static/rome/gateway/rome-control-plane-extcidr.yaml"),
    ),
    (
        "static/rome/gateway/rome-control-plane-service-nodeport-routing.yaml",
        include_str!("../../static/rome/gateway/rome-control-plane-service-nodeport-routing.yaml"),
    ),
    (
        "static/rome/gateway/rome-worker-service-nodeport-routing.yaml",
        include_str!("../../static/rome/gateway/rome-worker-service-nodeport-routing.yaml"),
    ),
    (
        "static/rome/gateway/rome-worker-gw-node.yaml",
        include_str!("../../static/rome/gateway/rome-worker-gw-node.yaml"),
    ),
    (
        "static/rome/gateway/rome-control-plane-gw-node.yaml",
        include_str!("../../static/rome/gateway/rome-control-plane-gw-node.yaml"),
    ),
    (
        "static/rome/gateway/milan-gw-ext.yaml",
        include_str!("../../static/rome/gateway/milan-gw-ext.yaml"),
    ),
];

/// Parses every embedded object; any unreadable document is an error (it
/// would be a build defect, but is reported rather than trusted).
pub fn objects() -> Result<Vec<RouteConfiguration>, String> {
    let mut all = Vec::new();
    for (origin, text) in DOCUMENTS {
        let (mut objects, errors) = parse_documents(text, origin);
        if let Some(e) = errors.first() {
            return Err(e.to_string());
        }
        all.append(&mut objects);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::desired;
    use crate::routing::DEFAULT_PROTOCOL;

    #[test]
    fn embedded_objects_are_the_seven_valid_gateway_tables() {
        let objects = objects().unwrap();
        assert_eq!(objects.len(), DOCUMENTS.len());
        let d = desired::build(&objects, DEFAULT_PROTOCOL);
        assert!(d.failures.is_empty(), "{:?}", d.failures);
        let names: Vec<&str> = d.tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "milan",
                "rome-control-plane",
                "rome-control-plane-extcidr",
                "rome-control-plane-service-nodeport-routing",
                "rome-worker",
                "rome-worker-extcidr",
                "rome-worker-service-nodeport-routing",
            ]
        );
        let routes: usize = d.tables.iter().map(|t| t.routes.len()).sum();
        let rules: usize = d.tables.iter().map(|t| t.rules.len()).sum();
        assert_eq!((rules, routes), (12, 20));
    }
}
