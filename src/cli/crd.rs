//! `routecfg crd`: the CustomResourceDefinition this binary understands,
//! so installing it needs nothing but the binary (`routecfg crd | kubectl
//! apply -f -`) and can never drift from the version that reads it.

/// The project's own CRD manifest, compiled in.
pub const CRD: &str = include_str!("../../static/crd.yaml");

pub const CRD_HELP: &str = "\
Usage: routecfg crd

Prints the RouteConfiguration CustomResourceDefinition
(networking.liqo.io/v1beta1) this binary was built with, e.g.

  routecfg crd | kubectl apply -f -
";

pub fn crd(argv: &[String]) -> i32 {
    match argv.first().map(String::as_str) {
        None => {
            print!("{CRD}");
            if !CRD.ends_with('\n') {
                println!();
            }
            0
        }
        Some("--help" | "-h") => super::help(CRD_HELP),
        Some(other) => super::usage(&format!("unexpected argument {other:?}"), CRD_HELP),
    }
}
