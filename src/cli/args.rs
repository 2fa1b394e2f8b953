//! A deliberately small command-line parser: long flags with or without a
//! value (`--flag value` or `--flag=value`), a few short aliases, and
//! positional arguments. Enough for routecfg, and no dependency.

use std::collections::BTreeMap;

/// How a flag is used.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `--prune`
    Switch,
    /// `--output json`; may repeat (all values kept).
    Value,
}

/// One accepted flag.
#[derive(Clone, Copy)]
pub struct Spec {
    pub long: &'static str,
    pub short: Option<char>,
    pub kind: Kind,
}

impl Spec {
    /// `--long VALUE`.
    pub const fn value(long: &'static str) -> Spec {
        Spec {
            long,
            short: None,
            kind: Kind::Value,
        }
    }

    /// `--long` alone.
    pub const fn switch(long: &'static str) -> Spec {
        Spec {
            long,
            short: None,
            kind: Kind::Switch,
        }
    }

    /// The same flag with a one-letter alias (`-c`).
    pub const fn short(self, c: char) -> Spec {
        Spec {
            short: Some(c),
            ..self
        }
    }
}

/// Parsed flags and positionals.
#[derive(Debug, Default)]
pub struct Args {
    values: BTreeMap<&'static str, Vec<String>>,
    pub positional: Vec<String>,
}

impl Args {
    /// Parses `argv` (without the program and command names) against `specs`.
    pub fn parse(argv: &[String], specs: &[Spec]) -> Result<Args, String> {
        let mut args = Args::default();
        let mut i = 0;
        while i < argv.len() {
            let arg = &argv[i];
            i += 1;
            let (name, inline) = if let Some(rest) = arg.strip_prefix("--") {
                if rest.is_empty() {
                    args.positional.extend(argv[i..].iter().cloned());
                    break;
                }
                match rest.split_once('=') {
                    Some((n, v)) => (n.to_string(), Some(v.to_string())),
                    None => (rest.to_string(), None),
                }
            } else if arg.len() == 2 && arg.starts_with('-') && arg != "-" {
                let c = arg.chars().nth(1).unwrap_or('-');
                match specs.iter().find(|s| s.short == Some(c)) {
                    Some(s) => (s.long.to_string(), None),
                    None => return Err(format!("unknown flag {arg}")),
                }
            } else {
                args.positional.push(arg.clone());
                continue;
            };
            let spec = specs
                .iter()
                .find(|s| s.long == name)
                .ok_or_else(|| format!("unknown flag --{name}"))?;
            let value = match (spec.kind, inline) {
                (Kind::Switch, None) => String::new(),
                (Kind::Switch, Some(_)) => return Err(format!("--{name} takes no value")),
                (Kind::Value, Some(v)) => v,
                (Kind::Value, None) => {
                    let v = argv
                        .get(i)
                        .ok_or_else(|| format!("--{name} needs a value"))?;
                    i += 1;
                    v.clone()
                }
            };
            args.values.entry(spec.long).or_default().push(value);
        }
        Ok(args)
    }

    /// Whether a switch (or any value flag) was given.
    pub fn has(&self, long: &str) -> bool {
        self.values.contains_key(long)
    }

    /// The last value of a flag.
    pub fn value(&self, long: &str) -> Option<&str> {
        self.values
            .get(long)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    /// Every value of a repeatable flag, in order.
    pub fn values(&self, long: &str) -> &[String] {
        self.values.get(long).map(Vec::as_slice).unwrap_or(&[])
    }

    /// A flag's value parsed as a number, with a readable error.
    pub fn number<T: std::str::FromStr>(&self, long: &str) -> Result<Option<T>, String> {
        match self.value(long) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("--{long}: {v:?} is not a valid number")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[Spec] = &[
        Spec::value("file").short('f'),
        Spec::switch("prune"),
        Spec::value("protocol"),
    ];

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_values_switches_and_positionals() {
        let a = Args::parse(
            &argv(&[
                "-f",
                "a.yaml",
                "--file=b",
                "--prune",
                "x",
                "--protocol",
                "7",
            ]),
            SPECS,
        )
        .unwrap();
        assert_eq!(a.values("file"), ["a.yaml", "b"]);
        assert!(a.has("prune"));
        assert_eq!(a.positional, ["x"]);
        assert_eq!(a.number::<u8>("protocol").unwrap(), Some(7));
    }

    #[test]
    fn rejects_unknown_and_missing_values() {
        assert_eq!(
            Args::parse(&argv(&["--nope"]), SPECS).unwrap_err(),
            "unknown flag --nope"
        );
        assert_eq!(
            Args::parse(&argv(&["-f"]), SPECS).unwrap_err(),
            "--file needs a value"
        );
        assert_eq!(
            Args::parse(&argv(&["--prune=1"]), SPECS).unwrap_err(),
            "--prune takes no value"
        );
        let a = Args::parse(&argv(&["--protocol", "300"]), SPECS).unwrap();
        assert_eq!(
            a.number::<u8>("protocol").unwrap_err(),
            "--protocol: \"300\" is not a valid number"
        );
    }

    #[test]
    fn double_dash_ends_flags_and_dash_is_positional() {
        let a = Args::parse(&argv(&["-", "--", "--prune"]), SPECS).unwrap();
        assert_eq!(a.positional, ["-", "--prune"]);
        assert!(!a.has("prune"));
    }
}
