//! A binding's status: one `Applied` condition and `tableName`. The pure
//! decision of what it should become; the caller writes it with the
//! binding's `resourceVersion` (optimistic concurrency).
//!
//! Unlike upstream, a new message or table name is a change too: status
//! must say why the last apply failed, and `tableName` must name the table
//! cleanup will remove.

use super::{APPLIED, REASON_FAILED, REASON_SUCCEEDED};
use serde_json::{Map, Value, json};

/// The CRD's limit on `message`.
pub const MAX_MESSAGE: usize = 32_768;

/// What the last apply of the bound RouteConfiguration did. Messages are
/// the same text the agent logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome<'a> {
    Applied(&'a str),
    Failed(&'a str),
}

/// Returns the binding's new `status`, or `None` when it already says all
/// of it. `table_name: None` keeps what is there (the table is not known,
/// for example because the RouteConfiguration is gone). Unknown status
/// fields and other conditions are kept; `lastTransitionTime` changes
/// only when the condition's status flips.
pub fn updated_binding_status(
    binding: &Value,
    outcome: Outcome,
    table_name: Option<&str>,
    now: &str,
) -> Option<Value> {
    let (status, reason, message) = match outcome {
        Outcome::Applied(m) => ("True", REASON_SUCCEEDED, non_empty(m, "applied")),
        Outcome::Failed(m) => ("False", REASON_FAILED, non_empty(m, "apply failed")),
    };
    let generation = binding
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        .max(0);
    let mut out: Map<String, Value> = binding
        .get("status")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut conditions: Vec<Value> = out
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let is_applied = |c: &Value| c.get("type").and_then(Value::as_str) == Some(APPLIED);
    let old = conditions.iter().find(|c| is_applied(c)).cloned();
    let duplicates = conditions.iter().filter(|c| is_applied(c)).count() > 1;
    let transition = match &old {
        Some(c) if c.get("status").and_then(Value::as_str) == Some(status) => c
            .get("lastTransitionTime")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .unwrap_or(now)
            .to_string(),
        _ => now.to_string(),
    };
    let mut condition = old
        .as_ref()
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    condition.insert("type".into(), json!(APPLIED));
    condition.insert("status".into(), json!(status));
    condition.insert("reason".into(), json!(reason));
    condition.insert("message".into(), json!(message));
    condition.insert("observedGeneration".into(), json!(generation));
    condition.insert("lastTransitionTime".into(), json!(transition));
    let condition = Value::Object(condition);

    let table_changed =
        table_name.is_some_and(|t| out.get("tableName").and_then(Value::as_str).unwrap_or("") != t);
    if old.as_ref() == Some(&condition) && !duplicates && !table_changed {
        return None;
    }
    conditions.retain(|c| !is_applied(c));
    conditions.push(condition);
    out.insert("conditions".into(), Value::Array(conditions));
    if let Some(t) = table_name.filter(|_| table_changed) {
        out.insert("tableName".into(), json!(t));
    }
    Some(Value::Object(out))
}

/// Kubernetes 1.20 refuses an empty `message` (it becomes null), and the
/// CRD caps its length: cut at a character boundary.
fn non_empty<'a>(message: &'a str, fallback: &'a str) -> &'a str {
    let m = if message.trim().is_empty() {
        fallback
    } else {
        message
    };
    if m.len() <= MAX_MESSAGE {
        return m;
    }
    let mut end = MAX_MESSAGE;
    while !m.is_char_boundary(end) {
        end -= 1;
    }
    &m[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(generation: i64, status: Value) -> Value {
        json!({"metadata": {"name": "b", "generation": generation}, "status": status})
    }

    #[test]
    fn first_success_writes_condition_and_table() {
        let b = json!({"metadata": {"name": "b", "generation": 1}});
        let s = updated_binding_status(&b, Outcome::Applied("2 rules, 3 routes"), Some("t1"), "T0")
            .unwrap();
        assert_eq!(
            s,
            json!({
                "conditions": [{
                    "type": "Applied", "status": "True", "reason": "ApplySucceeded",
                    "message": "2 rules, 3 routes", "observedGeneration": 1,
                    "lastTransitionTime": "T0"
                }],
                "tableName": "t1"
            })
        );
    }

    #[test]
    fn same_everything_writes_nothing() {
        let b = json!({"metadata": {"name": "b", "generation": 1}});
        let s = updated_binding_status(&b, Outcome::Applied("ok"), Some("t1"), "T0").unwrap();
        let b = binding(1, s);
        assert_eq!(
            updated_binding_status(&b, Outcome::Applied("ok"), Some("t1"), "T9"),
            None
        );
        assert_eq!(
            updated_binding_status(&b, Outcome::Applied("ok"), None, "T9"),
            None
        );
    }

    #[test]
    fn flip_changes_transition_time_but_message_change_does_not() {
        let b = binding(
            1,
            json!({"tableName": "t1", "conditions": [{
            "type": "Applied", "status": "True", "reason": "ApplySucceeded",
            "message": "ok", "observedGeneration": 1, "lastTransitionTime": "T0"}]}),
        );
        let s = updated_binding_status(&b, Outcome::Failed("link eth9 missing"), Some("t1"), "T1")
            .unwrap();
        assert_eq!(
            s["conditions"][0],
            json!({"type": "Applied", "status": "False", "reason": "ApplyFailed",
                   "message": "link eth9 missing", "observedGeneration": 1,
                   "lastTransitionTime": "T1"})
        );
        let b = binding(1, s);
        let s = updated_binding_status(&b, Outcome::Failed("link eth8 missing"), Some("t1"), "T2")
            .unwrap();
        assert_eq!(s["conditions"][0]["message"], "link eth8 missing");
        assert_eq!(s["conditions"][0]["lastTransitionTime"], "T1");
    }

    #[test]
    fn new_generation_or_table_name_is_a_change() {
        let st = json!({"tableName": "t1", "conditions": [{
            "type": "Applied", "status": "True", "reason": "ApplySucceeded",
            "message": "ok", "observedGeneration": 1, "lastTransitionTime": "T0"}]});
        let s = updated_binding_status(&binding(2, st.clone()), Outcome::Applied("ok"), None, "T5")
            .unwrap();
        assert_eq!(s["conditions"][0]["observedGeneration"], 2);
        assert_eq!(s["conditions"][0]["lastTransitionTime"], "T0");
        let s = updated_binding_status(&binding(1, st), Outcome::Applied("ok"), Some("t2"), "T5")
            .unwrap();
        assert_eq!(s["tableName"], "t2");
        assert_eq!(s["conditions"][0]["lastTransitionTime"], "T0");
    }

    #[test]
    fn other_conditions_and_fields_are_kept_and_duplicates_collapsed() {
        let b = binding(
            3,
            json!({"extra": 1, "conditions": [
                {"type": "Other", "status": "True", "reason": "X", "message": "m", "lastTransitionTime": "T"},
                {"type": "Applied", "status": "True", "reason": "ApplySucceeded", "message": "ok",
                 "observedGeneration": 3, "lastTransitionTime": "T0"},
                {"type": "Applied", "status": "False", "reason": "ApplyFailed", "message": "x",
                 "observedGeneration": 3, "lastTransitionTime": "T1"}
            ]}),
        );
        let s = updated_binding_status(&b, Outcome::Applied("ok"), None, "T9").unwrap();
        assert_eq!(s["extra"], 1);
        let c = s["conditions"].as_array().unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0]["type"], "Other");
        assert_eq!(c[1]["lastTransitionTime"], "T0");
        assert!(s.get("tableName").is_none());
    }

    #[test]
    fn messages_are_never_empty_and_never_too_long() {
        let b = json!({"metadata": {"generation": 1}});
        let s = updated_binding_status(&b, Outcome::Applied(""), None, "T").unwrap();
        assert_eq!(s["conditions"][0]["message"], "applied");
        let s = updated_binding_status(&b, Outcome::Failed(" "), None, "T").unwrap();
        assert_eq!(s["conditions"][0]["message"], "apply failed");
        let long = "é".repeat(MAX_MESSAGE);
        let s = updated_binding_status(&b, Outcome::Failed(&long), None, "T").unwrap();
        let m = s["conditions"][0]["message"].as_str().unwrap();
        assert!(m.len() <= MAX_MESSAGE && m.len() >= MAX_MESSAGE - 1);
    }

    #[test]
    fn missing_generation_is_zero() {
        let s = updated_binding_status(&json!({}), Outcome::Applied("ok"), None, "T").unwrap();
        assert_eq!(s["conditions"][0]["observedGeneration"], 0);
    }
}
