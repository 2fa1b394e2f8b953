//! `routecfg crd`: the CustomResourceDefinitions this binary understands,
//! so installing them needs nothing but the binary (`routecfg crd | kubectl
//! apply -f -`) and can never drift from the version that reads them.

/// The project's own RouteConfiguration CRD, compiled in.
pub const CRD: &str = include_str!("../../static/crd.yaml");

/// The project's own RouteConfigurationBinding CRD, compiled in.
pub const BINDING_CRD: &str = include_str!("../../static/crd-bindings.yaml");

pub const CRD_HELP: &str = "\
Usage: routecfg crd

Prints the CustomResourceDefinitions (networking.liqo.io/v1beta1) this
binary was built with, as one YAML stream: RouteConfiguration, then
RouteConfigurationBinding. Installing the binding CRD switches agents
running with --bindings auto to binding mode. E.g.

  routecfg crd | kubectl apply -f -
";

/// Both CRDs as one multi-document YAML stream.
pub fn crds() -> String {
    let mut out = String::with_capacity(CRD.len() + BINDING_CRD.len() + 8);
    out.push_str(CRD);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str("---\n");
    out.push_str(BINDING_CRD);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

pub fn crd(argv: &[String]) -> i32 {
    match argv.first().map(String::as_str) {
        None => {
            print!("{}", crds());
            0
        }
        Some("--help" | "-h") => super::help(CRD_HELP),
        Some(other) => super::usage(&format!("unexpected argument {other:?}"), CRD_HELP),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::Value;

    fn documents(s: &str) -> Vec<Value> {
        serde_yaml_ng::Deserializer::from_str(s)
            .map(|d| Value::deserialize(d).unwrap())
            .filter(|v| !v.is_null())
            .collect()
    }

    #[test]
    fn prints_both_crds_as_one_stream() {
        let docs = documents(&crds());
        let names: Vec<&str> = docs
            .iter()
            .map(|d| d["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "routeconfigurations.networking.liqo.io",
                crate::binding::CRD_NAME
            ]
        );
        assert_eq!(docs[1]["spec"]["names"]["plural"], crate::binding::PLURAL);
        assert_eq!(docs[1]["spec"]["names"]["kind"], crate::binding::KIND);
    }

    /// Drops what may differ without changing which objects are accepted:
    /// descriptions, and the `default` API servers before 1.21 refuse.
    fn normalize(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.remove("description");
                m.remove("default");
                for x in m.values_mut() {
                    normalize(x);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(normalize),
            _ => {}
        }
    }

    /// Our binding CRD accepts exactly what Liqo's does: same names,
    /// scope, printer columns, subresources and schema rules.
    #[test]
    fn binding_crd_is_compatible_with_upstreams() {
        let path = crate::model::testdata::shared_dir()
            .join("upstream/routeconfigurationbindings.networking.liqo.io.yaml");
        let theirs = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let mut theirs = documents(&theirs).remove(0);
        let mut ours = documents(BINDING_CRD).remove(0);
        assert_eq!(ours["metadata"]["name"], theirs["metadata"]["name"]);
        for f in ["group", "scope", "names"] {
            let sort = |v: &mut Value| {
                if let Some(a) = v.get_mut("shortNames").and_then(Value::as_array_mut) {
                    a.sort_by_key(|x| x.to_string());
                }
            };
            sort(&mut ours["spec"][f]);
            sort(&mut theirs["spec"][f]);
            assert_eq!(ours["spec"][f], theirs["spec"][f], "spec.{f}");
        }
        let (o, t) = (
            &mut ours["spec"]["versions"][0],
            &mut theirs["spec"]["versions"][0],
        );
        for f in [
            "name",
            "served",
            "storage",
            "subresources",
            "additionalPrinterColumns",
        ] {
            assert_eq!(o[f], t[f], "versions[0].{f}");
        }
        let t_rc = &t["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["routeConfigurationRef"]
            ["properties"]["name"];
        assert_eq!(
            t_rc["default"], "",
            "the upstream default this CRD leaves out"
        );
        normalize(o);
        normalize(t);
        assert_eq!(o["schema"], t["schema"]);
    }
}
