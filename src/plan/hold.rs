//! Held lists: a problem that belongs to one list holds that list and no other (DESIGN.md
//! "Per-list isolation"). Pure: the reasons, what releases each, and the checks on the
//! desired lists' names that need nothing but the lists themselves.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{GuardKind, Verdict};

/// Longest displayName Microsoft 365 accepts.
pub const MAX_DISPLAY_NAME: usize = 256;

/// Longest mailNickname Microsoft 365 accepts.
pub const MAX_MAIL_NICKNAME: usize = 64;

/// Characters Exchange refuses in a mailNickname (GRAPH.md "Groups"), besides spaces and
/// anything outside ASCII.
const FORBIDDEN: &[char] = &['@', '(', ')', '\\', '[', ']', '"', ';', ':', '<', '>', ','];

/// Why a list is held: this run leaves it exactly as it is, and every other list goes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum HoldReason {
    /// The list's rendered mailNickname or displayName is one Microsoft 365 refuses.
    InvalidName {
        /// What is wrong with it.
        problem: String,
        /// The sources that feed the list.
        sources: Vec<String>,
    },
    /// Two list keys render one mailNickname (Exchange nicknames ignore case).
    NicknameClash {
        /// The nickname they share.
        mail_nickname: String,
        /// Every list that renders it.
        lists: Vec<String>,
    },
    /// One list key is fed by sources of two families.
    FamilyClash {
        /// The families, in the order their sources are configured.
        families: Vec<String>,
        /// The sources that feed it.
        sources: Vec<String>,
    },
    /// The list's nickname belongs to a group rollcall does not manage.
    NicknameTaken {
        /// The nickname.
        mail_nickname: String,
        /// The group that has it.
        group_id: String,
        /// Why rollcall leaves that group alone.
        why: String,
    },
    /// Two groups carry rollcall's tag for this list.
    TwoGroupsTagged {
        /// One group.
        first: String,
        /// The other.
        second: String,
    },
    /// A per-list guard tripped (`max_removal_percent_per_list`).
    Guard {
        /// The guard's verdict.
        verdict: Verdict,
    },
    /// Microsoft Graph refused the list's group for good (deleted outside rollcall, 403).
    Refused {
        /// The HTTP status.
        status: u16,
        /// Graph's error code.
        code: String,
        /// Graph's message.
        message: String,
    },
}

impl HoldReason {
    /// A short, stable name: the `/metrics` label and the JSON tag.
    pub fn key(&self) -> &'static str {
        match self {
            HoldReason::InvalidName { .. } => "invalid_name",
            HoldReason::NicknameClash { .. } => "nickname_clash",
            HoldReason::FamilyClash { .. } => "family_clash",
            HoldReason::NicknameTaken { .. } => "nickname_taken",
            HoldReason::TwoGroupsTagged { .. } => "two_groups_tagged",
            HoldReason::Guard { .. } => "guard",
            HoldReason::Refused { .. } => "refused",
        }
    }

    /// Every reason key, for metrics that show zero for the reasons that hold nothing.
    pub const KEYS: [&'static str; 7] = [
        "invalid_name",
        "nickname_clash",
        "family_clash",
        "nickname_taken",
        "two_groups_tagged",
        "guard",
        "refused",
    ];

    /// What releases the hold on `list`: the exact command, or the fix to make first.
    pub fn release(&self, list: &str) -> String {
        match self {
            HoldReason::InvalidName { sources, .. } => format!(
                "fix the list key in source {} (or the family's templates); the next run takes it",
                sources.join(", ")
            ),
            HoldReason::NicknameClash { lists, .. } => format!(
                "give {} different keys in their sources (or change a family's mail_nickname template)",
                lists.join(" and ")
            ),
            HoldReason::FamilyClash { sources, .. } => format!(
                "feed `{list}` from one family only: rename it in one of {}",
                sources.join(", ")
            ),
            HoldReason::NicknameTaken { why, .. } if why.contains("adopt_existing") => {
                "set adopt_existing = true on the list's family to take the group over, or rename the list".to_owned()
            }
            HoldReason::NicknameTaken { .. } => {
                "rename the list, or free the nickname in Microsoft 365".to_owned()
            }
            HoldReason::TwoGroupsTagged { .. } => "remove the org.rollcall.managed extension from the group rollcall should not manage, then `rollcall rebuild --state-only`".to_owned(),
            HoldReason::Guard { .. } => {
                format!("rollcall run --accept-list {list} --reason TEXT")
            }
            HoldReason::Refused { status: 404, .. } => {
                "none needed: the next run finds the group gone and creates it again".to_owned()
            }
            HoldReason::Refused { .. } => {
                "grant rollcall's application access to the group (or exclude the list); the next run tries again".to_owned()
            }
        }
    }
}

impl fmt::Display for HoldReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HoldReason::InvalidName { problem, sources } => {
                write!(f, "{problem} (from {})", sources.join(", "))
            }
            HoldReason::NicknameClash {
                mail_nickname,
                lists,
            } => write!(
                f,
                "lists {} all render the mailNickname `{mail_nickname}`, and Exchange nicknames ignore case",
                lists.join(", ")
            ),
            HoldReason::FamilyClash { families, sources } => write!(
                f,
                "fed by families {} (sources {}); a list belongs to one family",
                families.join(" and "),
                sources.join(", ")
            ),
            HoldReason::NicknameTaken {
                mail_nickname,
                group_id,
                why,
            } => write!(
                f,
                "its nickname `{mail_nickname}` belongs to group {group_id}: {why}"
            ),
            HoldReason::TwoGroupsTagged { first, second } => write!(
                f,
                "groups {first} and {second} both carry rollcall's tag for it"
            ),
            HoldReason::Guard { verdict } => {
                let size = verdict.list_size.unwrap_or_default();
                let (guard, observed, limit) =
                    (verdict.guard.key(), verdict.observed, verdict.limit);
                match verdict.guard {
                    GuardKind::MaxAdditionPercentPerList => write!(
                        f,
                        "{guard} tripped: it would gain {observed} members on its {size}, over the limit of {limit}"
                    ),
                    GuardKind::MaxMembers => write!(
                        f,
                        "{guard} tripped: it would have {observed} members, over its family's limit of {limit}"
                    ),
                    _ => write!(
                        f,
                        "{guard} tripped: it would remove {observed} of its {size} members, over the limit of {limit}"
                    ),
                }
            }
            HoldReason::Refused {
                status,
                code,
                message,
            } => write!(
                f,
                "Microsoft Graph refused its group: {code} ({status}): {message}"
            ),
        }
    }
}

/// A desired list's name, as [`check_names`] reads it.
#[derive(Debug, Clone, Copy)]
pub struct ListName<'a> {
    /// The list key.
    pub key: &'a str,
    /// Its rendered mailNickname.
    pub mail_nickname: &'a str,
    /// Its rendered displayName.
    pub display_name: &'a str,
    /// The sources feeding it.
    pub sources: &'a [String],
}

/// What is wrong with a mailNickname, if Exchange would refuse it.
pub fn nickname_problem(nickname: &str) -> Option<String> {
    if nickname.is_empty() {
        return Some("it renders an empty mailNickname".to_owned());
    }
    if nickname.len() > MAX_MAIL_NICKNAME {
        return Some(format!(
            "it renders a mailNickname of {} characters; Microsoft 365 takes at most {MAX_MAIL_NICKNAME}",
            nickname.len()
        ));
    }
    let bad: Vec<String> = nickname
        .chars()
        .filter(|c| !c.is_ascii() || c.is_whitespace() || c.is_control() || FORBIDDEN.contains(c))
        .map(|c| format!("{c:?}"))
        .collect();
    (!bad.is_empty()).then(|| {
        format!(
            "it renders the mailNickname `{nickname}`, which Microsoft 365 refuses: it contains {} \
             (a nickname is ASCII without spaces or any of @()\\[]\";:<>,)",
            bad.join(", ")
        )
    })
}

/// The desired lists Microsoft 365 would refuse, or that share a nickname with another: each
/// is held, the others go on. Pure.
pub fn check_names<'a>(
    lists: impl IntoIterator<Item = ListName<'a>>,
) -> BTreeMap<String, HoldReason> {
    let mut holds = BTreeMap::new();
    let mut by_nickname: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for list in lists {
        let problem = nickname_problem(list.mail_nickname).or_else(|| {
            let chars = list.display_name.chars().count();
            (chars > MAX_DISPLAY_NAME).then(|| {
                format!(
                    "it renders a displayName of {chars} characters; Microsoft 365 takes at most {MAX_DISPLAY_NAME}"
                )
            })
        });
        match problem {
            Some(problem) => {
                holds.insert(
                    list.key.to_owned(),
                    HoldReason::InvalidName {
                        problem,
                        sources: list.sources.to_vec(),
                    },
                );
            }
            None => by_nickname
                .entry(list.mail_nickname.to_ascii_lowercase())
                .or_default()
                .push(list.key),
        }
    }
    for (nickname, keys) in by_nickname {
        if keys.len() < 2 {
            continue;
        }
        let lists: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        for key in keys {
            holds.insert(
                key.to_owned(),
                HoldReason::NicknameClash {
                    mail_nickname: nickname.clone(),
                    lists: lists.clone(),
                },
            );
        }
    }
    holds
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn name<'a>(key: &'a str, nickname: &'a str, sources: &'a [String]) -> ListName<'a> {
        ListName {
            key,
            mail_nickname: nickname,
            display_name: key,
            sources,
        }
    }

    #[test]
    fn a_key_with_a_space_or_a_forbidden_character_is_held_alone() {
        let sources = vec!["enrolments".to_owned()];
        let holds = check_names([
            name("mod-a", "mod-a", &sources),
            name("mod b", "mod b", &sources),
            name("mod:c", "mod:c", &sources),
            name("mod-é", "mod-é", &sources),
        ]);
        assert_eq!(
            holds.keys().collect::<Vec<_>>(),
            ["mod b", "mod-é", "mod:c"]
        );
        let text = holds["mod b"].to_string();
        assert!(
            text.contains("' '") && text.contains("enrolments"),
            "{text}"
        );
        assert_eq!(holds["mod b"].key(), "invalid_name");
    }

    #[test]
    fn two_keys_that_render_one_nickname_are_both_held() {
        let sources = vec!["a".to_owned()];
        let holds = check_names([
            name("x", "dept-X", &sources),
            name("y", "dept-x", &sources),
            name("z", "dept-z", &sources),
        ]);
        assert_eq!(holds.keys().collect::<Vec<_>>(), ["x", "y"]);
        assert!(
            matches!(&holds["x"], HoldReason::NicknameClash { lists, .. } if lists == &["x", "y"])
        );
    }

    #[test]
    fn long_names_are_held() {
        let sources = vec!["a".to_owned()];
        let nickname = "n".repeat(MAX_MAIL_NICKNAME + 1);
        let title = "t".repeat(MAX_DISPLAY_NAME + 1);
        let holds = check_names([
            name("a", &nickname, &sources),
            ListName {
                key: "b",
                mail_nickname: "b",
                display_name: &title,
                sources: &sources,
            },
        ]);
        assert_eq!(holds.len(), 2);
    }

    #[test]
    fn a_guard_hold_is_released_with_accept_list() {
        let verdict = Verdict {
            guard: GuardKind::MaxRemovalPercentPerList,
            list: Some("mod-a".to_owned()),
            limit: 5,
            observed: 6,
            list_size: Some(11),
            percent: Some(50),
            outcome: super::super::Outcome::Tripped,
        };
        let reason = HoldReason::Guard { verdict };
        assert_eq!(
            reason.release("mod-a"),
            "rollcall run --accept-list mod-a --reason TEXT"
        );
    }

    proptest! {
        /// Whatever the keys, no two lists left unheld share a nickname up to case, and every
        /// unheld nickname is one Exchange accepts.
        #[test]
        fn unheld_lists_have_distinct_valid_nicknames(keys in proptest::collection::vec("[a-cA-C ;é-]{1,4}", 0..30)) {
            let sources = vec!["s".to_owned()];
            let mut unique = keys.clone();
            unique.sort();
            unique.dedup();
            let holds = check_names(unique.iter().map(|k| name(k, k, &sources)));
            let mut seen = std::collections::BTreeSet::new();
            for key in unique.iter().filter(|k| !holds.contains_key(*k)) {
                prop_assert!(nickname_problem(key).is_none());
                prop_assert!(seen.insert(key.to_ascii_lowercase()));
            }
        }
    }
}
