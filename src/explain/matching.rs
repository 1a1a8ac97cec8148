//! Pure matching for `explain`: which overrides name the member, whether a desired list
//! holds them, and the keys in the sources nearest to one that names nobody.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::OverrideHit;
use crate::config::{Config, MemberKey};
use crate::source::{Exception, Member, split_member};

/// How many near keys an answer names at most.
const NEAREST: usize = 5;

/// Keys further apart than this many single-character edits are not "near".
const MAX_EDITS: usize = 2;

/// The member as asked: `kind:value`, or a bare value that any source's key may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    /// The key kind, when written.
    pub kind: Option<MemberKey>,
    /// The value as written, trimmed.
    pub value: String,
    /// The person's other keys, as the identities table knows them (their UPN when asked
    /// by employee id, …).
    pub aliases: Vec<Member>,
}

impl Asked {
    /// Reads `member` as typed on the command line.
    pub fn parse(member: &str) -> Asked {
        let (kind, value) = split_member(member);
        Asked {
            kind,
            value: value.to_owned(),
            aliases: Vec::new(),
        }
    }

    /// The member with the person's other keys.
    pub fn with_aliases(mut self, aliases: Vec<Member>) -> Asked {
        self.aliases = aliases;
        self
    }

    /// The members this names among `kinds` (the member keys the sources use), each once:
    /// the person's known keys first (a bare UPN read as an employee id names nobody), then
    /// the key as asked, read as each kind it may be.
    pub fn members(&self, kinds: &BTreeSet<MemberKey>) -> Vec<Member> {
        let mut members: Vec<Member> = self
            .aliases
            .iter()
            .filter(|alias| kinds.contains(&alias.key))
            .cloned()
            .collect();
        for key in kinds {
            if self.kind.is_some_and(|kind| kind != *key) {
                continue;
            }
            let member = Member {
                key: *key,
                value: key.normalize(&self.value),
            };
            if !members.contains(&member) {
                members.push(member);
            }
        }
        members
    }

    /// Whether an override value (`kind:value` or bare) names this member, by the key asked
    /// or by an alias.
    pub fn named_by(&self, raw: &str) -> bool {
        let (kind, value) = split_member(raw);
        let forms = std::iter::once((self.kind, self.value.as_str()))
            .chain(self.aliases.iter().map(|a| (Some(a.key), a.value.as_str())));
        for (asked_kind, asked_value) in forms {
            let kind = match (kind, asked_kind) {
                (Some(a), Some(b)) if a != b => continue,
                (a, b) => a.or(b),
            };
            let same = match kind {
                Some(MemberKey::EmployeeId) => value == asked_value,
                _ => value.to_lowercase() == asked_value.to_lowercase(),
            };
            if same {
                return true;
            }
        }
        false
    }
}

/// Every `[[override]]` and `[[override_source]]` row that includes or excludes `asked`, on
/// `list` (any case) or on any list, each with whether it applies at `now`.
pub fn overrides(
    config: &Config,
    exceptions: &[Exception],
    list: Option<&str>,
    asked: &Asked,
    now: DateTime<Utc>,
) -> Vec<OverrideHit> {
    let on_list = |l: &str| list.is_none_or(|list| l.trim().to_lowercase() == list.to_lowercase());
    let mut hits = Vec::new();
    for (index, rule) in config.overrides.iter().enumerate() {
        if !on_list(&rule.list) {
            continue;
        }
        let window = config.override_window(index);
        for (include, values) in [(true, &rule.include), (false, &rule.exclude)] {
            if values.iter().any(|v| asked.named_by(v)) {
                hits.push(OverrideHit {
                    list: rule.list.trim().to_owned(),
                    origin: format!("{}: [[override]] {index}", config.path.display()),
                    include,
                    from: window.from,
                    until: window.until,
                    reason: None,
                    applies_now: window.contains(now),
                });
            }
        }
    }
    for exception in exceptions.iter().filter(|e| !e.owner) {
        if on_list(&exception.list) && asked.named_by(&exception.member) {
            hits.push(OverrideHit {
                list: exception.list.clone(),
                origin: exception.place.clone(),
                include: exception.include,
                from: exception.window.from,
                until: exception.window.until,
                reason: Some(exception.reason.clone()).filter(|r| !r.is_empty()),
                applies_now: exception.window.contains(now),
            });
        }
    }
    hits
}

/// Up to five keys among `candidates` nearest to `asked`: the same but for case first, then
/// those one or two edits away (compared without case), each nearest first.
pub fn nearest<'a>(asked: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let wanted = asked.trim().to_lowercase();
    let length = wanted.chars().count();
    let mut near: BTreeSet<(usize, &str)> = BTreeSet::new();
    for candidate in candidates {
        if candidate == asked.trim() {
            continue;
        }
        let folded = candidate.to_lowercase();
        if folded.chars().count().abs_diff(length) > MAX_EDITS {
            continue;
        }
        let edits = strsim::levenshtein(&wanted, &folded);
        if edits <= MAX_EDITS {
            near.insert((edits, candidate));
        }
    }
    near.into_iter()
        .take(NEAREST)
        .map(|(_, key)| key.to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::parse(text, std::path::Path::new("rollcall.toml")).unwrap()
    }

    #[test]
    fn a_bare_key_is_read_by_every_source_kind_and_a_prefixed_one_by_its_own() {
        let kinds = BTreeSet::from([MemberKey::Upn, MemberKey::EmployeeId]);
        let bare = Asked::parse("Ann@X.org").members(&kinds);
        assert_eq!(bare.len(), 2);
        assert_eq!(bare[0].value, "ann@x.org");
        let prefixed = Asked::parse("employee_id:E1").members(&kinds);
        assert_eq!(
            prefixed,
            [Member {
                key: MemberKey::EmployeeId,
                value: "E1".into()
            }]
        );
    }

    #[test]
    fn override_values_match_by_kind_and_case_rules() {
        let ann = Asked::parse("Ann@X.org");
        assert!(ann.named_by("upn:ann@x.org") && ann.named_by("ANN@x.org"));
        assert!(!Asked::parse("upn:ann@x.org").named_by("mail:ann@x.org"));
        assert!(!Asked::parse("employee_id:e1").named_by("E1"));
        let aliased = Asked::parse("employee_id:E1").with_aliases(vec![Member {
            key: MemberKey::Upn,
            value: "ann@x.org".into(),
        }]);
        assert!(aliased.named_by("upn:Ann@x.org") && aliased.named_by("E1"));
        let kinds = BTreeSet::from([MemberKey::Upn, MemberKey::EmployeeId]);
        assert_eq!(aliased.members(&kinds).len(), 2);
        let bare = Asked::parse("ann@x.org").with_aliases(vec![Member {
            key: MemberKey::EmployeeId,
            value: "E1".into(),
        }]);
        let members = bare.members(&kinds);
        let employee = members.iter().find(|m| m.key == MemberKey::EmployeeId);
        assert_eq!(employee.unwrap().value, "E1", "the known key comes first");
    }

    #[test]
    fn overrides_name_place_window_and_whether_they_apply_now() {
        let config = config(
            "[[override]]\nlist = \"CS101\"\ninclude = [\"ann@x.org\"]\nuntil = \"2026-01-31\"\n\n\
             [[override]]\nlist = \"cs102\"\nexclude = [\"ann@x.org\"]\n",
        );
        let exception = Exception {
            list: "cs101".into(),
            member: "upn:ann@x.org".into(),
            include: false,
            owner: false,
            window: crate::config::Window::default(),
            reason: "asked to leave".into(),
            place: "exceptions.csv:4".into(),
        };
        let now = "2026-06-01T00:00:00Z".parse().unwrap();
        let ann = Asked::parse("ann@x.org");
        let hits = overrides(&config, &[exception], Some("cs101"), &ann, now);
        assert_eq!(hits.len(), 2, "{hits:?}");
        assert!(hits[0].include && !hits[0].applies_now && hits[0].until.is_some());
        assert!(
            hits[0].origin.ends_with("[[override]] 0"),
            "{}",
            hits[0].origin
        );
        assert_eq!(hits[1].origin, "exceptions.csv:4");
        assert_eq!(hits[1].reason.as_deref(), Some("asked to leave"));
        assert!(!hits[1].include && hits[1].applies_now);
        assert_eq!(overrides(&config, &[], None, &ann, now).len(), 2);
    }

    #[test]
    fn nearest_keys_put_case_twins_first_then_typos() {
        let candidates = [
            "ann@x.org",
            "ANN.SMITH@x.org",
            "ann.smyth@x.org",
            "bob@x.org",
            "ann.smith@x.org",
        ];
        assert_eq!(
            nearest("ann.smith@x.org", candidates),
            ["ANN.SMITH@x.org", "ann.smyth@x.org"]
        );
        assert!(nearest("zed@y.net", candidates).is_empty());
    }
}
