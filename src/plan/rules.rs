//! Rule diff: which desired rules are missing and which kernel rules are
//! stale.

use super::Prune;
use crate::routing::{Rule, RuleSelector, Table};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Rule changes before ordering.
pub(super) struct RuleChanges {
    pub add: Vec<Rule>,
    pub del: Vec<Rule>,
}

/// Matches each desired rule to at most one kernel rule.
///
/// A kernel rule matches when its selector is equal and, if the desired
/// rule names a priority, its priority too. Its protocol does not matter:
/// a rule the upstream controller added is kept as is, because replacing
/// it would mean delete-then-add (rules cannot be replaced in place).
/// Desired rules with an explicit priority are matched first, so a rule
/// without one cannot take the kernel rule an explicit one needs.
pub(super) fn diff(
    desired: &[Table],
    kernel: &[Rule],
    managed: &HashSet<u32>,
    prune: Prune,
) -> RuleChanges {
    // Identical desired rules (same selector and priority) would otherwise
    // be added twice, and the kernel happily keeps duplicates.
    let mut wanted: BTreeMap<(RuleSelector, Option<u32>), &Rule> = BTreeMap::new();
    for rule in desired.iter().flat_map(|t| &t.rules) {
        wanted
            .entry((rule.selector(), rule.priority))
            .or_insert(rule);
    }

    let mut by_selector: HashMap<RuleSelector, Vec<usize>> = HashMap::new();
    for (i, rule) in kernel.iter().enumerate() {
        by_selector.entry(rule.selector()).or_default().push(i);
    }

    let mut kept = vec![false; kernel.len()];
    let mut add = Vec::new();
    let explicit_first = wanted
        .iter()
        .filter(|((_, priority), _)| priority.is_some())
        .chain(
            wanted
                .iter()
                .filter(|((_, priority), _)| priority.is_none()),
        );
    for ((selector, priority), want) in explicit_first {
        let candidates = by_selector.get(selector).map(Vec::as_slice).unwrap_or(&[]);
        // Among kernel duplicates keep our own copy, then the one the
        // kernel evaluates first; the others become stale.
        let chosen = candidates
            .iter()
            .copied()
            .filter(|&i| !kept[i] && (priority.is_none() || kernel[i].priority == *priority))
            .min_by_key(|&i| (kernel[i].protocol != want.protocol, kernel[i].priority, i));
        match chosen {
            Some(i) => kept[i] = true,
            None => add.push((*want).clone()),
        }
    }

    let del = kernel
        .iter()
        .zip(&kept)
        .filter(|&(rule, &kept)| !kept && is_ours(rule, managed, prune))
        .map(|(rule, _)| rule.clone())
        .collect();

    RuleChanges { add, del }
}

/// Whether routecfg may delete an unmatched kernel rule: it points at a
/// managed table, or it carries the pruned protocol mark.
fn is_ours(rule: &Rule, managed: &HashSet<u32>, prune: Prune) -> bool {
    managed.contains(&rule.table)
        || matches!(prune, Prune::Owned { protocol } if rule.protocol == protocol)
}
