//! Options shared by every command that touches the kernel, and the glue
//! from files to desired tables.

use super::args::{Args, Spec};
use crate::routing::DEFAULT_PROTOCOL;
use crate::rt_tables::RtTables;
use std::path::PathBuf;

/// Default iproute2 table-name file.
pub const DEFAULT_RT_TABLES: &str = "/etc/iproute2/rt_tables";

/// Flags every kernel-touching command accepts.
pub const KERNEL_FLAGS: &[Spec] = &[
    Spec::value("protocol"),
    Spec::value("rt-tables"),
    Spec::value("output").short('o'),
    Spec::switch("help").short('h'),
];

/// How results are printed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Output {
    Text,
    Json,
}

/// Parsed [`KERNEL_FLAGS`].
pub struct KernelOpts {
    pub protocol: u8,
    pub rt_tables: Option<RtTables>,
    pub output: Output,
}

impl KernelOpts {
    pub fn from_args(args: &Args) -> Result<KernelOpts, String> {
        let protocol = match args.number::<u8>("protocol")? {
            None => DEFAULT_PROTOCOL,
            Some(p) if p <= 4 => {
                return Err(format!(
                    "--protocol {p}: values 0-4 are reserved by the kernel (unspec, redirect, kernel, boot, static)"
                ));
            }
            Some(p) => p,
        };
        let rt_tables = match args.value("rt-tables") {
            Some("none") => None,
            Some(path) => Some(RtTables::new(PathBuf::from(path))),
            None => Some(RtTables::new(PathBuf::from(DEFAULT_RT_TABLES))),
        };
        let output = match args.value("output") {
            None | Some("text") => Output::Text,
            Some("json") => Output::Json,
            Some(other) => return Err(format!("--output {other:?}: expected text or json")),
        };
        Ok(KernelOpts {
            protocol,
            rt_tables,
            output,
        })
    }
}

/// Joins two flag lists (a command's own plus a shared set).
pub fn specs(own: &[Spec], shared: &[Spec]) -> Vec<Spec> {
    own.iter().chain(shared).copied().collect()
}
