//! Rule matching, adoption, duplicates, priorities and ownership.

use super::*;
use crate::routing::PROTOCOL_BOOT;

const T: u32 = 210_412_509;

#[test]
fn missing_rule_is_added_as_desired() {
    let want = rule_iif(T, "liqo-tunnel");
    let desired = [table(T, vec![want.clone()], vec![])];
    let p = plan_nothing(&desired, &snapshot(vec![], vec![], &[T], &[]));
    assert_eq!(p.ops, vec![Op::AddRule(want)]);
}

#[test]
fn rule_with_kernel_chosen_priority_matches_rule_without_priority() {
    let want = rule_iif(T, "liqo-tunnel");
    let desired = [table(T, vec![want.clone()], vec![])];
    let p = plan_nothing(
        &desired,
        &snapshot(vec![in_kernel(&want, 32765)], vec![], &[T], &[]),
    );
    assert!(p.is_empty(), "{:?}", p.ops);
}

#[test]
fn explicit_priority_must_match() {
    let want = Rule {
        priority: Some(100),
        ..rule_dst(T, "10.80.0.2/32")
    };
    let desired = [table(T, vec![want.clone()], vec![])];
    let same = snapshot(vec![in_kernel(&want, 100)], vec![], &[T], &[]);
    assert!(plan_nothing(&desired, &same).is_empty());
}

#[test]
fn priority_change_adds_new_rule_before_deleting_old() {
    let want = Rule {
        priority: Some(100),
        ..rule_dst(T, "10.80.0.2/32")
    };
    let old = in_kernel(&want, 200);
    let desired = [table(T, vec![want.clone()], vec![])];
    let p = plan_nothing(&desired, &snapshot(vec![old.clone()], vec![], &[T], &[]));
    assert_eq!(p.ops, vec![Op::AddRule(want), Op::DelRule(old)]);
}

#[test]
fn each_selector_field_is_part_of_identity() {
    let want = Rule {
        src: Some(net("10.0.0.0/8")),
        dst: Some(net("10.200.0.0/16")),
        iif: Some("a".into()),
        oif: Some("b".into()),
        fwmark: Some(1),
        ..rule(T)
    };
    let variants = [
        Rule {
            src: Some(net("10.0.0.0/9")),
            ..want.clone()
        },
        Rule {
            dst: None,
            ..want.clone()
        },
        Rule {
            iif: Some("c".into()),
            ..want.clone()
        },
        Rule {
            oif: None,
            ..want.clone()
        },
        Rule {
            fwmark: Some(2),
            ..want.clone()
        },
        Rule {
            family: Family::V6,
            ..want.clone()
        },
    ];
    let desired = [table(T, vec![want.clone()], vec![])];
    for variant in variants {
        let stale = in_kernel(&variant, 500);
        let p = plan_nothing(&desired, &snapshot(vec![stale.clone()], vec![], &[T], &[]));
        assert_eq!(
            p.ops,
            vec![Op::AddRule(want.clone()), Op::DelRule(stale)],
            "variant {variant:?}"
        );
    }
}

#[test]
fn stale_rule_of_managed_table_is_deleted_whatever_its_protocol() {
    let want = rule_iif(T, "liqo-tunnel");
    let stale_ours = in_kernel(&rule_dst(T, "10.0.0.0/24"), 30000);
    let stale_foreign = Rule {
        protocol: 0,
        ..in_kernel(&rule_iif(T, "eth0"), 30001)
    };
    let desired = [table(T, vec![want.clone()], vec![])];
    let snap = snapshot(
        vec![
            in_kernel(&want, 32765),
            stale_ours.clone(),
            stale_foreign.clone(),
        ],
        vec![],
        &[T],
        &[],
    );
    let p = plan_nothing(&desired, &snap);
    let mut dels = rule_dels(&p);
    dels.sort();
    let mut expected = vec![&stale_ours, &stale_foreign];
    expected.sort();
    assert_eq!(dels, expected);
    assert!(adds(&p).is_empty());
}

#[test]
fn upstream_rule_is_adopted_without_gap() {
    let want = rule_iif(T, "liqo-tunnel");
    let upstream = Rule {
        protocol: PROTOCOL_BOOT,
        ..in_kernel(&want, 32765)
    };
    let desired = [table(T, vec![want], vec![])];
    let p = plan_nothing(&desired, &snapshot(vec![upstream], vec![], &[T], &[]));
    assert!(
        p.ops.is_empty(),
        "adoption must not touch the rule: {:?}",
        p.ops
    );
}

#[test]
fn kernel_duplicates_keep_own_copy_and_delete_the_rest() {
    let want = rule_iif(T, "liqo-tunnel");
    let upstream = Rule {
        protocol: PROTOCOL_BOOT,
        ..in_kernel(&want, 32000)
    };
    let ours = in_kernel(&want, 32764);
    let ours_again = in_kernel(&want, 32765);
    let desired = [table(T, vec![want], vec![])];
    let snap = snapshot(
        vec![ours_again.clone(), upstream.clone(), ours.clone()],
        vec![],
        &[T],
        &[],
    );
    let p = plan_nothing(&desired, &snap);
    assert_eq!(p.ops, vec![Op::DelRule(upstream), Op::DelRule(ours_again)]);
}

#[test]
fn kernel_duplicates_of_foreign_protocol_keep_first_evaluated() {
    let want = rule_iif(T, "liqo-tunnel");
    let first = Rule {
        protocol: PROTOCOL_BOOT,
        ..in_kernel(&want, 100)
    };
    let second = Rule {
        protocol: PROTOCOL_BOOT,
        ..in_kernel(&want, 200)
    };
    let desired = [table(T, vec![want], vec![])];
    let p = plan_nothing(
        &desired,
        &snapshot(vec![second.clone(), first], vec![], &[T], &[]),
    );
    assert_eq!(p.ops, vec![Op::DelRule(second)]);
}

#[test]
fn identical_desired_rules_are_added_once() {
    let want = rule_dst(T, "10.200.0.0/16");
    let desired = [
        table(T, vec![want.clone(), want.clone()], vec![]),
        table(T, vec![want.clone()], vec![]),
    ];
    let p = plan_nothing(&desired, &snapshot(vec![], vec![], &[T], &[]));
    assert_eq!(p.ops, vec![Op::AddRule(want)]);
}

#[test]
fn explicit_priority_is_matched_before_unprioritised_twin() {
    // Kernel has only the explicit one: the unprioritised twin must not
    // take it, or the explicit one would be re-added on every pass.
    let explicit = Rule {
        priority: Some(100),
        ..rule_dst(T, "10.80.0.2/32")
    };
    let floating = rule_dst(T, "10.80.0.2/32");
    let desired = [table(T, vec![floating.clone(), explicit.clone()], vec![])];
    let p = plan_nothing(
        &desired,
        &snapshot(vec![in_kernel(&explicit, 100)], vec![], &[T], &[]),
    );
    assert_eq!(p.ops, vec![Op::AddRule(floating.clone())]);

    let settled = snapshot(
        vec![in_kernel(&floating, 32765), in_kernel(&explicit, 100)],
        vec![],
        &[T],
        &[],
    );
    assert!(plan_nothing(&desired, &settled).is_empty());
}

#[test]
fn ipv4_and_ipv6_rules_with_same_fields_are_distinct() {
    let v4 = rule_iif(T, "liqo-tunnel");
    let v6 = Rule {
        family: Family::V6,
        ..v4.clone()
    };
    let desired = [table(T, vec![v4.clone(), v6.clone()], vec![])];
    let p = plan_nothing(
        &desired,
        &snapshot(vec![in_kernel(&v4, 32765)], vec![], &[T], &[]),
    );
    assert_eq!(p.ops, vec![Op::AddRule(v6.clone())]);
    let both = snapshot(
        vec![in_kernel(&v4, 32765), in_kernel(&v6, 32765)],
        vec![],
        &[T],
        &[],
    );
    assert!(plan_nothing(&desired, &both).is_empty());
}

#[test]
fn rules_of_other_tables_are_untouched_without_prune() {
    let want = rule_iif(T, "liqo-tunnel");
    let main = Rule {
        protocol: 2,
        ..in_kernel(&rule(254), 32766)
    };
    let local = Rule {
        protocol: 2,
        ..in_kernel(&rule(255), 0)
    };
    let other_marked = in_kernel(&rule_dst(77, "10.9.0.0/16"), 1000);
    let other_upstream = Rule {
        protocol: PROTOCOL_BOOT,
        ..in_kernel(&rule_dst(78, "10.9.0.0/16"), 1001)
    };
    let desired = [table(T, vec![want.clone()], vec![])];
    let snap = snapshot(
        vec![
            main,
            local,
            other_marked,
            other_upstream,
            in_kernel(&want, 32765),
        ],
        vec![],
        &[T],
        &[],
    );
    assert!(plan_nothing(&desired, &snap).is_empty());
}

#[test]
fn prune_deletes_only_marked_rules_of_tables_not_desired() {
    let want = rule_iif(T, "liqo-tunnel");
    let leftover = in_kernel(&rule_dst(77, "10.9.0.0/16"), 1000);
    let leftover_main = in_kernel(&rule_dst(254, "10.10.0.0/16"), 1001);
    let unmarked = Rule {
        protocol: PROTOCOL_BOOT,
        ..in_kernel(&rule_dst(78, "10.9.0.0/16"), 1002)
    };
    let system = Rule {
        protocol: 2,
        ..in_kernel(&rule(254), 32766)
    };
    let desired = [table(T, vec![want.clone()], vec![])];
    let snap = snapshot(
        vec![
            system,
            unmarked,
            leftover_main.clone(),
            leftover.clone(),
            in_kernel(&want, 32765),
        ],
        vec![],
        &[T],
        &[],
    );
    let p = plan(&desired, &snap, Prune::Owned { protocol: OWN });
    assert_eq!(
        p.ops,
        vec![Op::DelRule(leftover), Op::DelRule(leftover_main)]
    );
}

#[test]
fn prune_with_another_mark_spares_ours() {
    let leftover = in_kernel(&rule_dst(77, "10.9.0.0/16"), 1000);
    let p = plan(
        &[],
        &snapshot(vec![leftover], vec![], &[], &[]),
        Prune::Owned { protocol: 115 },
    );
    assert!(p.is_empty(), "{:?}", p.ops);
}
