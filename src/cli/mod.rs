//! Command-line entry points. Each command parses its own flags, calls the
//! library, prints, and returns the process exit status.

mod agent;
mod args;
mod checkpoint;
mod common;
mod crd;
mod demo;
mod explain;
mod files;

use crate::table_id::table_id;

pub const HELP: &str = "\
routecfg: keeps this host's policy routing equal to Liqo RouteConfigurations

Usage: routecfg COMMAND [options]

Commands:
  run               follow the API server and keep routing in sync (daemon)
  once              reconcile from the API server once, then exit
  status            ask the running agent what it manages
  apply -f PATH     apply RouteConfigurations from files, then exit
  diff -f PATH      show what apply would change (exit 1 when out of sync)
  apply --confirm S apply on trial: rolled back after S seconds unless confirmed
  confirm           keep the pending trial (`apply --confirm`)
  rollback          restore the pending trial's checkpoint now
  explain DST ...   where a packet goes, and which object, rule and route
  cleanup           remove everything carrying routecfg's mark
  table-id NAME...  print the kernel table id of each table name
  demo              try it: the docs' Rome gateway in a private namespace
  crd               print the RouteConfiguration CRD (pipe to kubectl apply)
  help              this text

`routecfg COMMAND --help` describes a command. Logging: RUST_LOG=debug.
";

/// Runs the command in `argv` (without the program name).
pub fn main(argv: &[String]) -> i32 {
    let Some((cmd, rest)) = argv.split_first() else {
        eprint!("{HELP}");
        return 2;
    };
    if printing_command(cmd) {
        default_sigpipe();
    }
    match cmd.as_str() {
        "apply" => files::apply(rest),
        "diff" => files::diff(rest),
        "cleanup" => files::cleanup(rest),
        "table-id" => table_ids(rest),
        "demo" => demo::demo(rest),
        "crd" => crd::crd(rest),
        "run" => agent::agent(rest, true),
        "once" => agent::agent(rest, false),
        "status" => agent::status(rest),
        "explain" => explain::explain(rest),
        "confirm" => checkpoint::confirm(rest),
        "rollback" => checkpoint::rollback(rest),
        "checkpoint-timer" => checkpoint::timer(rest),
        "help" | "--help" | "-h" => help(HELP),
        "--version" | "version" => {
            println!("routecfg {}", env!("CARGO_PKG_VERSION"));
            0
        }
        other => usage(&format!("unknown command {other:?}"), HELP),
    }
}

/// Commands that print and exit. Their output piped into `head` must end
/// the process quietly, not panic in `println!`. The daemon (`run`) and
/// `once` keep SIGPIPE ignored: a reader of their stderr that goes away
/// must not kill the agent (writes then fail with EPIPE, which logging
/// ignores).
fn printing_command(cmd: &str) -> bool {
    !matches!(cmd, "run" | "once")
}

/// Restores the default SIGPIPE action, which Rust's runtime ignores.
fn default_sigpipe() {
    // SAFETY: called on the main thread before any other thread exists;
    // SIG_DFL is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn table_ids(names: &[String]) -> i32 {
    if names.is_empty() || names.iter().any(|n| n == "--help" || n == "-h") {
        return help(
            "Usage: routecfg table-id NAME...\n\nPrints `ID<TAB>NAME` for each table name, as upstream Liqo derives it.\n",
        );
    }
    for name in names {
        println!("{}\t{}", table_id(name), name);
    }
    0
}

/// Prints help text; exit status 0.
fn help(text: &str) -> i32 {
    print!("{text}");
    0
}

/// Prints a usage error and the command's help; exit status 2.
fn usage(message: &str, text: &str) -> i32 {
    eprintln!("routecfg: {message}\n");
    eprint!("{text}");
    2
}

/// Prints an error that stops the command; exit status 2.
fn fatal(message: &str) -> i32 {
    eprintln!("routecfg: {message}");
    2
}
