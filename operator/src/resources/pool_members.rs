//! What a pool's pass records about its members, in each config Secret's
//! annotation [`MEMBERS_ANNOTATION`]: per member the generation it took
//! or why it refused it ([`MemberState`]), read back by every member's own
//! pass for its `ConfigApplied` condition and compared between passes for
//! the pool's Events ([`member_changes`]). Beside the Secret's data
//! (`super::pool`), never a value: names, reasons and messages.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The annotation of the pool Secret that records each member's outcome
/// ([`Members`], as JSON).
pub const MEMBERS_ANNOTATION: &str = "hookwarden.dev/members";

/// The most bytes [`MEMBERS_ANNOTATION`] of one shard takes. Kubernetes
/// refuses an object whose annotations pass 256 KiB in all, and a refused
/// Secret would stop the whole pass, every member's change with it; a
/// thousand members refused with a long message each would pass it.
/// What is left of the 256 KiB is for other annotations (kubectl's).
pub const MEMBERS_ANNOTATION_BUDGET: usize = 192 * 1024;

/// How long a refused member's message stays when the annotation would
/// pass its budget with the whole messages.
const SHORT_MESSAGE_CHARS: usize = 160;

/// What the operator decided about one member in the last pass of its pool.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberState {
    /// The member's `metadata.generation` this decision is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Its configuration of that generation is in the Secret.
    pub applied: bool,
    /// Whether the Secret holds a configuration of it at all (an earlier
    /// one, when not `applied`).
    pub served: bool,
    /// Why it was refused (`""` when applied): a condition reason.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// For a person: what to fix. Never a secret value.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Every member's [`MemberState`], by endpoint name.
pub type Members = BTreeMap<String, MemberState>;

/// The members whose current configuration a pass refused, for the pool's
/// `status.refused`.
pub fn refused_members(members: &Members) -> Vec<hookwarden_crds::RefusedMember> {
    members
        .iter()
        .filter(|(_, state)| !state.applied)
        .map(|(name, state)| hookwarden_crds::RefusedMember {
            name: name.clone(),
            reason: state.reason.clone(),
            served: state.served,
        })
        .collect()
}

/// A change of a pool's members from one pass to the next: an Event on
/// the pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberChange {
    /// The pool serves the member now (it did not).
    Joined(String),
    /// The pool no longer serves the member (it left, was deleted, or its
    /// first configuration is refused).
    Left(String),
    /// The member's configuration of a generation is refused (the first
    /// pass that refuses it, or refuses it for another reason).
    Refused {
        /// The member.
        name: String,
        /// Why, as a condition reason (`RouteConflict`...).
        reason: String,
        /// What to fix, never a secret value.
        message: String,
    },
}

/// What changed between the members a pool's last pass recorded (`before`)
/// and this pass's (`now`): only changes, so a pass that repeats the last
/// one's decisions (every refresh) records no Event.
pub fn member_changes(before: &Members, now: &Members) -> Vec<MemberChange> {
    let mut changes = Vec::new();
    let served = |members: &Members, name: &str| members.get(name).is_some_and(|m| m.served);
    for (name, state) in now {
        if state.served && !served(before, name) {
            changes.push(MemberChange::Joined(name.clone()));
        }
        let refused_before = before.get(name).is_some_and(|b| {
            !b.applied && b.generation == state.generation && b.reason == state.reason
        });
        if !state.applied && !refused_before {
            changes.push(MemberChange::Refused {
                name: name.clone(),
                reason: state.reason.clone(),
                message: state.message.clone(),
            });
        }
    }
    for name in before.keys() {
        if served(before, name) && !served(now, name) {
            changes.push(MemberChange::Left(name.clone()));
        }
    }
    changes
}

/// The members recorded in a pool Secret's `annotations` (empty when it has
/// none, or a hand-edited unreadable one).
pub fn recorded_members(annotations: &BTreeMap<String, String>) -> Members {
    annotations
        .get(MEMBERS_ANNOTATION)
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default()
}

/// `members` as [`MEMBERS_ANNOTATION`]'s JSON, within
/// [`MEMBERS_ANNOTATION_BUDGET`] when the messages can make it fit: whole
/// messages when they fit, else each cut to [`SHORT_MESSAGE_CHARS`], else
/// none (the member's condition then names its reason and points to the
/// pool's Events, which carry each message whole). Names, generations and
/// reasons are always kept: every member's `ConfigApplied` reads them.
pub fn members_annotation(members: &Members) -> Result<String, serde_json::Error> {
    let whole = serde_json::to_string(members)?;
    if whole.len() <= MEMBERS_ANNOTATION_BUDGET {
        return Ok(whole);
    }
    let with_messages = |message: &dyn Fn(&str) -> String| {
        let shortened: Members = members
            .iter()
            .map(|(name, state)| {
                let state = MemberState {
                    message: message(&state.message),
                    ..state.clone()
                };
                (name.clone(), state)
            })
            .collect();
        serde_json::to_string(&shortened)
    };
    let short = with_messages(&|message| {
        if message.chars().count() <= SHORT_MESSAGE_CHARS {
            message.to_owned()
        } else {
            let mut cut: String = message.chars().take(SHORT_MESSAGE_CHARS).collect();
            cut.push('…');
            cut
        }
    })?;
    if short.len() <= MEMBERS_ANNOTATION_BUDGET {
        return Ok(short);
    }
    with_messages(&|_| String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(generation: i64, applied: bool, served: bool, reason: &str) -> MemberState {
        MemberState {
            generation: Some(generation),
            applied,
            served,
            reason: reason.to_owned(),
            message: format!("{reason} message"),
        }
    }

    #[test]
    fn member_changes_are_joins_leaves_and_new_refusals_only() {
        let before = Members::from([
            ("a".to_owned(), state(1, true, true, "")),
            ("b".to_owned(), state(1, true, true, "")),
            ("c".to_owned(), state(2, false, false, "RouteConflict")),
        ]);
        assert_eq!(member_changes(&before, &before), [], "a refresh repeats");
        let now = Members::from([
            ("a".to_owned(), state(2, false, true, "SecretNotFound")),
            ("c".to_owned(), state(2, false, false, "RouteConflict")),
            ("d".to_owned(), state(1, true, true, "")),
            ("e".to_owned(), state(1, false, false, "RouteConflict")),
        ]);
        assert_eq!(
            member_changes(&before, &now),
            [
                MemberChange::Refused {
                    name: "a".to_owned(),
                    reason: "SecretNotFound".to_owned(),
                    message: "SecretNotFound message".to_owned(),
                },
                MemberChange::Joined("d".to_owned()),
                MemberChange::Refused {
                    name: "e".to_owned(),
                    reason: "RouteConflict".to_owned(),
                    message: "RouteConflict message".to_owned(),
                },
                MemberChange::Left("b".to_owned()),
            ]
        );
        assert_eq!(
            refused_members(&now),
            [
                hookwarden_crds::RefusedMember {
                    name: "a".to_owned(),
                    reason: "SecretNotFound".to_owned(),
                    served: true,
                },
                hookwarden_crds::RefusedMember {
                    name: "c".to_owned(),
                    reason: "RouteConflict".to_owned(),
                    served: false,
                },
                hookwarden_crds::RefusedMember {
                    name: "e".to_owned(),
                    reason: "RouteConflict".to_owned(),
                    served: false,
                },
            ]
        );
    }

    #[test]
    fn the_members_annotation_stays_within_its_budget_by_shortening_messages() {
        let refused = |message: &str| MemberState {
            generation: Some(3),
            applied: false,
            served: true,
            reason: "SecretNotFound".to_owned(),
            message: message.to_owned(),
        };
        let few: Members = (0..3)
            .map(|n| (format!("m{n}"), refused(&"é".repeat(400))))
            .collect();
        assert_eq!(
            recorded(&members_annotation(&few).expect("JSON")),
            few,
            "whole when they fit"
        );
        // 700 refused members with 450-character messages: over 256 KiB
        // whole, within the budget cut to 160.
        let many: Members = (0..700)
            .map(|n| (format!("member-{n:04}"), refused(&"x".repeat(450))))
            .collect();
        assert!(serde_json::to_string(&many).expect("JSON").len() > 256 * 1024);
        let json = members_annotation(&many).expect("JSON");
        assert!(json.len() <= MEMBERS_ANNOTATION_BUDGET, "{}", json.len());
        let read = recorded(&json);
        assert_eq!(read.len(), 700);
        let state = &read["member-0699"];
        assert_eq!(state.message.chars().count(), SHORT_MESSAGE_CHARS + 1);
        assert_eq!(
            (state.reason.as_str(), state.generation, state.served),
            ("SecretNotFound", Some(3), true)
        );
        // Longer names: even cut, the messages do not fit; they go, the
        // rest stays.
        let long_names: Members = (0..1000)
            .map(|n| {
                (
                    format!("{n:04}-{}", "n".repeat(60)),
                    refused(&"x".repeat(300)),
                )
            })
            .collect();
        let json = members_annotation(&long_names).expect("JSON");
        assert!(json.len() <= MEMBERS_ANNOTATION_BUDGET, "{}", json.len());
        let read = recorded(&json);
        assert_eq!(read.len(), 1000);
        assert!(
            read.values()
                .all(|s| s.message.is_empty() && s.reason == "SecretNotFound")
        );
    }

    fn recorded(json: &str) -> Members {
        recorded_members(&BTreeMap::from([(
            MEMBERS_ANNOTATION.to_owned(),
            json.to_owned(),
        )]))
    }
}
