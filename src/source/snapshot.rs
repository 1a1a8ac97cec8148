//! The snapshot: every source read whole, merged into desired lists, overrides applied and
//! family naming rendered. Pure: plain data in, plain data out.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use chrono::{DateTime, Utc};

use super::exceptions::Exception;
use super::{SourceError, SourceRead};
use crate::config::{Config, FamilyConfig, MemberKey, OverrideConfig};
use crate::plan::{Hold, HoldReason};

/// A person as a source names them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Member {
    /// How the value names the person.
    pub key: MemberKey,
    /// The value, normalized by [`MemberKey::normalize`].
    pub value: String,
}

/// A source's row counts and checksum, as accepted snapshots record them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSummary {
    /// The source's name.
    pub name: String,
    /// The family it feeds.
    pub family: String,
    /// Data rows read, before duplicates collapsed.
    pub rows: u64,
    /// Distinct `(list, member)` pairs.
    pub distinct: u64,
    /// The sha256 (hex) of the source's canonical form; row order does not change it.
    pub checksum: String,
    /// The source's kind (`sql`, `odbc`, `csv`, `ldap`, `entra`).
    #[serde(default)]
    pub kind: String,
    /// Entries skipped because a template rendered empty or ambiguous (`ldap`, `entra`).
    #[serde(default)]
    pub skipped: u64,
    /// How long the read took, in milliseconds.
    #[serde(default)]
    pub read_ms: u64,
}

/// One list as the sources want it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredList {
    /// The list key.
    pub key: String,
    /// The family the list belongs to.
    pub family: String,
    /// The sources feeding it, in configuration order.
    pub sources: Vec<String>,
    /// Its members after overrides.
    pub members: BTreeSet<Member>,
    /// Its owners after overrides, the family's fixed owners included, when rollcall keeps
    /// the list's owners (its family names fixed owners, one of its family's sources says
    /// who owns its lists, or an override names owners); `None`: left as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owners: Option<BTreeSet<Member>>,
    /// The group's display name, rendered from the family's template.
    pub display_name: String,
    /// The group's mailNickname, rendered from the family's template.
    pub mail_nickname: String,
    /// The group's description, rendered; `None` when it renders empty.
    pub description: Option<String>,
    /// Whether the display name follows the sources (false: it fell back to the list key
    /// because no source gave one, and must not retitle a group).
    #[serde(default)]
    pub titled: bool,
}

/// Everything the sources say, read at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// One summary per source, in configuration order.
    pub sources: Vec<SourceSummary>,
    /// The desired lists by key.
    pub lists: BTreeMap<String, DesiredList>,
    /// Lists the sources make impossible to plan (one key in two families), by key: held,
    /// every other list goes on.
    #[serde(skip)]
    pub held: BTreeMap<String, Hold>,
    /// Things an operator should know that do not stop the run.
    pub warnings: Vec<String>,
    /// Overrides and override-source rows inside their window, applied to a list.
    #[serde(default)]
    pub exceptions_applied: u64,
}

/// A list being assembled from its sources.
struct Draft {
    /// The key as first seen (list keys compare case-insensitively).
    key: String,
    /// Where it was first seen: source and data row.
    seen: (String, u64),
    /// Families of any other source that fed it: a clash, which holds the list.
    other_families: Vec<String>,
    family: String,
    sources: Vec<String>,
    /// The member keys its sources use (overrides may add others; those do not count).
    keys: BTreeSet<MemberKey>,
    members: BTreeSet<Member>,
    owners: BTreeSet<Member>,
    /// Whether an override or exception names owners of this list.
    owners_named: bool,
    display_name: Option<String>,
    description: Option<String>,
}

/// Merges source reads (in configuration order) into a snapshot.
///
/// List keys compare case-insensitively (Exchange nicknames do): two spellings are one list,
/// kept under the spelling seen first (sources in configuration order, then rows in file
/// order), with a warning naming both. One key fed by two families holds that list.
///
/// Overrides and `exceptions` apply only inside their window at `now`.
pub(crate) fn assemble(
    config: &Config,
    reads: Vec<SourceRead>,
    exceptions: &[Exception],
    now: DateTime<Utc>,
) -> Result<Snapshot, SourceError> {
    let mut summaries = Vec::with_capacity(reads.len());
    let mut warnings = Vec::new();
    // Families whose lists' owners rollcall keeps: they name fixed owners, or one of their
    // sources says who owns its lists.
    let mut owning: BTreeSet<String> = config
        .families
        .iter()
        .filter(|f| !f.owners.is_empty())
        .map(|f| f.name.clone())
        .collect();
    owning.extend(reads.iter().filter(|r| r.roles).map(|r| r.family.clone()));
    // By the key folded to lower case.
    let mut drafts: BTreeMap<String, Draft> = BTreeMap::new();
    for read in reads {
        summaries.push(read.summary());
        warnings.extend(read.warnings);
        let key = read.member_key;
        let mut lists: Vec<(String, super::SourceList)> = read.lists.into_iter().collect();
        lists.sort_by_key(|(_, rows)| rows.first_row);
        for (list, rows) in lists {
            let draft = drafts.entry(list.to_lowercase()).or_insert_with(|| Draft {
                key: list.clone(),
                seen: (read.name.clone(), rows.first_row),
                other_families: Vec::new(),
                family: read.family.clone(),
                sources: Vec::new(),
                keys: BTreeSet::new(),
                members: BTreeSet::new(),
                owners: BTreeSet::new(),
                owners_named: false,
                display_name: None,
                description: None,
            });
            if draft.key != list {
                warnings.push(format!(
                    "list `{list}` (source `{}` row {}) and list `{}` (source `{}` row {}) differ \
                     only in case; they are one list, kept as `{}`",
                    read.name, rows.first_row, draft.key, draft.seen.0, draft.seen.1, draft.key
                ));
            }
            if draft.family != read.family && !draft.other_families.contains(&read.family) {
                draft.other_families.push(read.family.clone());
            }
            draft.sources.push(read.name.clone());
            draft.keys.insert(key);
            let members = rows.members.into_iter().map(|value| Member { key, value });
            if draft.members.is_empty() {
                // Most lists have one source: build from its sorted members in one pass
                // rather than insert them one by one.
                draft.members = members.collect();
            } else {
                draft.members.extend(members);
            }
            let owners = rows.owners.into_iter().map(|value| Member { key, value });
            let owners_are_members = config
                .family(&read.family)
                .is_none_or(|f| f.owners_are_members);
            for owner in owners {
                if owners_are_members {
                    draft.members.insert(owner.clone());
                }
                draft.owners.insert(owner);
            }
            // Across sources too, the first value in byte order wins, so the result does
            // not depend on which source finished first.
            draft.display_name = min_some(draft.display_name.take(), rows.display_name);
            draft.description = min_some(draft.description.take(), rows.description);
        }
    }

    for draft in drafts.values_mut() {
        let fixed = config
            .family(&draft.family)
            .map(|f| f.owners.as_slice())
            .unwrap_or_default();
        for raw in fixed {
            let owner = parse_override_value(raw, &BTreeSet::from([MemberKey::Upn])).map_err(
                |message| SourceError::Config {
                    source_name: draft.sources[0].clone(),
                    message: format!("family `{}` owners: {message}", draft.family),
                },
            )?;
            draft.owners.insert(owner);
        }
    }

    let mut exclusions = Vec::new();
    let mut owner_exclusions = Vec::new();
    let mut applied = 0;
    for (index, rule) in config.overrides.iter().enumerate() {
        if !config.override_window(index).contains(now) {
            continue;
        }
        let list = rule.list.trim().to_lowercase();
        match drafts.get_mut(&list) {
            Some(draft) => {
                let parse = |values: &[String]| parse_override(index, rule, values, draft);
                let (include, exclude) = (parse(&rule.include)?, parse(&rule.exclude)?);
                let (owners_in, owners_out) =
                    (parse(&rule.owners_include)?, parse(&rule.owners_exclude)?);
                applied += 1;
                draft.members.extend(include);
                draft.owners_named |= !owners_in.is_empty() || !owners_out.is_empty();
                draft.owners.extend(owners_in);
                exclusions.push((list.clone(), exclude));
                owner_exclusions.push((list, owners_out));
            }
            None => warnings.push(format!(
                "override[{index}] names list `{list}`, which no source feeds; it is ignored (rollcall never creates a list from an override alone)"
            )),
        }
    }
    for exception in exceptions.iter().filter(|e| e.window.contains(now)) {
        let list = exception.list.to_lowercase();
        let Some(draft) = drafts.get_mut(&list) else {
            warnings.push(format!(
                "{}: list `{}` is fed by no source; the exception is ignored",
                exception.place, exception.list
            ));
            continue;
        };
        let member = parse_override_value(&exception.member, &draft.keys).map_err(|message| {
            SourceError::OverrideRow {
                source_name: exception.place.clone(),
                place: exception.place.clone(),
                message,
            }
        })?;
        applied += 1;
        match (exception.owner, exception.include) {
            (false, true) => {
                draft.members.insert(member);
            }
            (false, false) => exclusions.push((list, vec![member])),
            (true, include) => {
                draft.owners_named = true;
                if include {
                    draft.owners.insert(member);
                } else {
                    owner_exclusions.push((list, vec![member]));
                }
            }
        }
    }
    // Exclusions go last, so they win over source rows and over every include.
    for (list, exclude) in exclusions {
        if let Some(draft) = drafts.get_mut(&list) {
            for member in &exclude {
                draft.members.remove(member);
            }
        }
    }
    for (list, exclude) in owner_exclusions {
        if let Some(draft) = drafts.get_mut(&list) {
            for owner in &exclude {
                draft.owners.remove(owner);
            }
        }
    }

    let mut lists = BTreeMap::new();
    let mut held = BTreeMap::new();
    for draft in drafts.into_values() {
        if !draft.other_families.is_empty() {
            let mut families = vec![draft.family.clone()];
            families.extend(draft.other_families.iter().cloned());
            held.insert(
                draft.key.clone(),
                Hold {
                    family: draft.family.clone(),
                    reason: HoldReason::FamilyClash {
                        families,
                        sources: draft.sources.clone(),
                    },
                },
            );
            continue;
        }
        let key = draft.key.clone();
        let Some(family) = config.family(&draft.family) else {
            return Err(SourceError::Config {
                source_name: draft.sources[0].clone(),
                message: format!("no [[family]] is named `{}`", draft.family),
            });
        };
        let owning = owning.contains(&draft.family);
        lists.insert(key.clone(), render(family, key, draft, owning));
    }
    Ok(Snapshot {
        sources: summaries,
        lists,
        held,
        warnings,
        exceptions_applied: applied,
    })
}

fn min_some(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Values of an override (its includes, excludes, owners) as people of the list's member
/// keys.
fn parse_override(
    index: usize,
    rule: &OverrideConfig,
    values: &[String],
    draft: &Draft,
) -> Result<Vec<Member>, SourceError> {
    values
        .iter()
        .map(|raw| {
            parse_override_value(raw, &draft.keys).map_err(|message| SourceError::Override {
                source_name: draft.sources[0].clone(),
                index,
                list: rule.list.trim().to_owned(),
                message,
            })
        })
        .collect()
}

/// Reads an override value: `kind:value` always, a bare value when the list's sources use
/// exactly one member key.
fn parse_override_value(raw: &str, keys: &BTreeSet<MemberKey>) -> Result<Member, String> {
    let raw = raw.trim();
    let (kind, value) = super::split_member(raw);
    let (key, value) = match kind {
        Some(kind) => (kind, value),
        None => match keys.iter().collect::<Vec<_>>().as_slice() {
            [only] => (**only, raw),
            _ => {
                let names: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
                return Err(format!(
                    "`{raw}` has no member key, and the list's sources use {}; write it as `kind:value`, e.g. `{}:{raw}`",
                    names.join(" and "),
                    names.first().copied().unwrap_or("upn")
                ));
            }
        },
    };
    let value = key.normalize(value);
    if value.is_empty() {
        return Err(format!("`{raw}` names nobody"));
    }
    Ok(Member { key, value })
}

fn render(family: &FamilyConfig, key: String, draft: Draft, owning: bool) -> DesiredList {
    let display_name = draft.display_name.as_deref().unwrap_or(&key);
    let description = draft.description.as_deref().unwrap_or_default();
    let fill = |template: &str| render_template(template, &key, display_name, description);
    let rendered_description = fill(&family.description);
    DesiredList {
        titled: draft.display_name.is_some() || !family.display_name.contains("{display_name}"),
        display_name: fill(&family.display_name),
        mail_nickname: fill(&family.mail_nickname),
        description: Some(rendered_description).filter(|d| !d.trim().is_empty()),
        family: draft.family,
        sources: draft.sources,
        members: draft.members,
        owners: (owning || draft.owners_named).then_some(draft.owners),
        key,
    }
}

/// Fills `{list}`, `{display_name}` and `{description}` in one pass, so a value that itself
/// contains braces is never expanded again. Configuration validation rejects any other
/// placeholder, so one here is left as written.
fn render_template(template: &str, list: &str, display_name: &str, description: &str) -> String {
    let mut out = String::with_capacity(template.len() + list.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        let placeholder = [
            ("{list}", list),
            ("{display_name}", display_name),
            ("{description}", description),
        ]
        .into_iter()
        .find(|(name, _)| after.starts_with(name));
        match placeholder {
            Some((name, value)) => {
                out.push_str(value);
                rest = &after[name.len()..];
            }
            None => {
                out.push('{');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`super::assemble`] now, without exceptions.
    fn assemble(config: &Config, reads: Vec<SourceRead>) -> Result<Snapshot, SourceError> {
        super::assemble(config, reads, &[], Utc::now())
    }
    use crate::source::SourceList;

    fn config(text: &str) -> Config {
        let base = r#"
[[family]]
name = "modules"
display_name = "Module {display_name}"
description = "{description}"

[[family]]
name = "departments"
mail_nickname = "dept-{list}"
"#;
        Config::parse(
            &format!("{base}{text}"),
            std::path::Path::new("rollcall.toml"),
        )
        .unwrap()
    }

    fn read(name: &str, family: &str, key: MemberKey, lists: &[(&str, &[&str])]) -> SourceRead {
        SourceRead {
            name: name.to_owned(),
            family: family.to_owned(),
            member_key: key,
            rows: 0,
            distinct: 0,
            checksum: String::new(),
            lists: lists
                .iter()
                .enumerate()
                .map(|(row, (list, members))| {
                    let list_rows = SourceList {
                        members: members.iter().map(|m| key.normalize(m)).collect(),
                        owners: BTreeSet::new(),
                        display_name: None,
                        description: None,
                        first_row: row as u64 + 1,
                    };
                    ((*list).to_owned(), list_rows)
                })
                .collect(),
            kind: crate::config::SourceKind::Csv,
            skipped: 0,
            warnings: Vec::new(),
            read_ms: 0,
            sightings: Vec::new(),
            roles: false,
        }
    }

    fn values(list: &DesiredList) -> Vec<String> {
        list.members
            .iter()
            .map(|m| format!("{}:{}", m.key, m.value))
            .collect()
    }

    #[test]
    fn owners_come_from_owner_rows_fixed_owners_and_overrides() {
        let config = config(
            r#"
[[family]]
name = "owned"
owners = ["svc@x.org"]
owners_are_members = false

[[override]]
list = "mod-a"
owners_include = ["deputy@x.org"]
owners_exclude = ["svc@x.org"]
"#,
        );
        let with_owner = |mut read: SourceRead, list: &str, owner: &str| {
            read.roles = true;
            let rows = read.lists.get_mut(list).unwrap();
            rows.owners.insert(owner.to_owned());
            read
        };
        let modules = with_owner(
            read("s", "modules", MemberKey::Upn, &[("mod-a", &["a@x.org"])]),
            "mod-a",
            "lead@x.org",
        );
        let owned = with_owner(
            read("t", "owned", MemberKey::Upn, &[("own-a", &["b@x.org"])]),
            "own-a",
            "head@x.org",
        );
        let plain = read("u", "departments", MemberKey::Upn, &[("d", &["c@x.org"])]);
        let snapshot = assemble(&config, vec![modules, owned, plain]).unwrap();
        let owners = |key: &str| {
            snapshot.lists[key]
                .owners
                .as_ref()
                .map(|o| o.iter().map(|m| m.value.clone()).collect::<Vec<_>>())
        };
        // An owner row is a membership too by default; the override adds a deputy owner.
        assert_eq!(
            owners("mod-a"),
            Some(vec!["deputy@x.org".to_owned(), "lead@x.org".to_owned()])
        );
        assert_eq!(
            values(&snapshot.lists["mod-a"]),
            ["upn:a@x.org", "upn:lead@x.org"]
        );
        // `owned` does not make owners members, and names a fixed owner.
        assert_eq!(
            owners("own-a"),
            Some(vec!["head@x.org".to_owned(), "svc@x.org".to_owned()])
        );
        assert_eq!(values(&snapshot.lists["own-a"]), ["upn:b@x.org"]);
        // A family whose sources say nothing of owners leaves them alone.
        assert_eq!(owners("d"), None);
        assert_eq!(
            snapshot.member_keys().len(),
            7,
            "owners are resolved with members"
        );
    }

    #[test]
    fn include_adds_and_exclude_removes() {
        let config = config(
            r#"
[[override]]
list = "mod-a"
include = ["Visitor@X.org"]
exclude = ["b@x.org"]
"#,
        );
        let reads = vec![read(
            "s",
            "modules",
            MemberKey::Upn,
            &[("mod-a", &["a@x.org", "b@x.org"])],
        )];
        let snapshot = assemble(&config, reads).unwrap();
        assert_eq!(
            values(&snapshot.lists["mod-a"]),
            ["upn:a@x.org", "upn:visitor@x.org"]
        );
        assert!(snapshot.warnings.is_empty());
    }

    #[test]
    fn exclude_wins_over_an_include_in_another_override() {
        let config = config(
            r#"
[[override]]
list = "mod-a"
exclude = ["upn:C@x.org"]

[[override]]
list = "mod-a"
include = ["c@x.org"]
"#,
        );
        let reads = vec![read(
            "s",
            "modules",
            MemberKey::Upn,
            &[("mod-a", &["a@x.org"])],
        )];
        let snapshot = assemble(&config, reads).unwrap();
        assert_eq!(values(&snapshot.lists["mod-a"]), ["upn:a@x.org"]);
    }

    #[test]
    fn mixed_member_keys_need_the_prefix_form() {
        let reads = || {
            vec![
                read(
                    "students",
                    "departments",
                    MemberKey::Upn,
                    &[("cs", &["a@x.org"])],
                ),
                read(
                    "staff",
                    "departments",
                    MemberKey::EmployeeId,
                    &[("cs", &["E1"])],
                ),
            ]
        };
        let bare = config("[[override]]\nlist = \"cs\"\nexclude = [\"E1\"]\n");
        let error = assemble(&bare, reads()).unwrap_err();
        assert_eq!(error.check(), "override");
        let message = error.to_string();
        assert!(
            message.contains("override[0]") && message.contains("`cs`"),
            "{message}"
        );
        assert!(message.contains("kind:value"), "{message}");

        let prefixed = config(
            "[[override]]\nlist = \"cs\"\nexclude = [\"employee_id:E1\"]\ninclude = [\"object_id:ABC\"]\n",
        );
        let snapshot = assemble(&prefixed, reads()).unwrap();
        let cs = &snapshot.lists["cs"];
        assert_eq!(values(cs), ["upn:a@x.org", "object_id:abc"]);
        assert_eq!(cs.sources, ["students", "staff"]);
    }

    #[test]
    fn override_for_an_unfed_list_is_a_warning() {
        let config = config("[[override]]\nlist = \"mod-z\"\ninclude = [\"a@x.org\"]\n");
        let reads = vec![read(
            "s",
            "modules",
            MemberKey::Upn,
            &[("mod-a", &["a@x.org"])],
        )];
        let snapshot = assemble(&config, reads).unwrap();
        assert!(!snapshot.lists.contains_key("mod-z"));
        assert_eq!(snapshot.warnings.len(), 1);
        assert!(
            snapshot.warnings[0].contains("`mod-z`"),
            "{:?}",
            snapshot.warnings
        );
    }

    #[test]
    fn one_list_in_two_families_is_held_naming_both_and_the_others_go_on() {
        let reads = vec![
            read(
                "enrolments",
                "modules",
                MemberKey::Upn,
                &[("cs", &["a@x.org"]), ("ma", &["b@x.org"])],
            ),
            read(
                "hr",
                "departments",
                MemberKey::EmployeeId,
                &[("CS", &["E1"])],
            ),
        ];
        let snapshot = assemble(&config(""), reads).unwrap();
        assert_eq!(snapshot.lists.keys().collect::<Vec<_>>(), ["ma"]);
        let hold = &snapshot.held["cs"];
        assert_eq!(hold.family, "modules");
        let message = hold.reason.to_string();
        for part in ["enrolments", "modules", "hr", "departments"] {
            assert!(message.contains(part), "{part} missing in: {message}");
        }
    }

    #[test]
    fn two_spellings_of_a_key_are_one_list_kept_as_first_seen_with_a_warning() {
        let mut first = read(
            "feed-a",
            "modules",
            MemberKey::Upn,
            &[("mod-cs101-2026", &["a@x.org"])],
        );
        first.lists.get_mut("mod-cs101-2026").unwrap().first_row = 7;
        let mut second = read(
            "feed-b",
            "modules",
            MemberKey::Upn,
            &[
                ("MOD-CS101-2026", &["b@x.org"]),
                ("Mod-Cs101-2026", &["c@x.org"]),
            ],
        );
        second.lists.get_mut("MOD-CS101-2026").unwrap().first_row = 3;
        second.lists.get_mut("Mod-Cs101-2026").unwrap().first_row = 9;
        let snapshot = assemble(&config(""), vec![first, second]).unwrap();
        assert_eq!(
            snapshot.lists.keys().collect::<Vec<_>>(),
            ["mod-cs101-2026"]
        );
        let list = &snapshot.lists["mod-cs101-2026"];
        assert_eq!(list.members.len(), 3);
        assert_eq!(list.sources, ["feed-a", "feed-b", "feed-b"]);
        assert_eq!(snapshot.warnings.len(), 2, "{:?}", snapshot.warnings);
        let warning = &snapshot.warnings[0];
        for part in [
            "`MOD-CS101-2026` (source `feed-b` row 3)",
            "(source `feed-a` row 7)",
            "kept as `mod-cs101-2026`",
        ] {
            assert!(warning.contains(part), "{part} missing in: {warning}");
        }
    }

    #[test]
    fn an_override_names_its_list_in_any_case() {
        let config = config(
            r#"
[[override]]
list = "MOD-A"
include = ["x@x.org"]
"#,
        );
        let reads = vec![read(
            "s",
            "modules",
            MemberKey::Upn,
            &[("mod-a", &["a@x.org"])],
        )];
        let snapshot = assemble(&config, reads).unwrap();
        assert_eq!(snapshot.lists["mod-a"].members.len(), 2);
        assert!(snapshot.warnings.is_empty(), "{:?}", snapshot.warnings);
    }

    #[test]
    fn templates_render_with_fallback_to_the_list_key() {
        let mut with_name = read(
            "s",
            "modules",
            MemberKey::Upn,
            &[("mod-a", &["a@x.org"]), ("mod-b", &["a@x.org"])],
        );
        let a = with_name.lists.get_mut("mod-a").unwrap();
        a.display_name = Some("Algebra {list}".to_owned());
        a.description = Some("Year 1".to_owned());
        let hr = read(
            "hr",
            "departments",
            MemberKey::EmployeeId,
            &[("cs", &["E1"])],
        );
        let snapshot = assemble(&config(""), vec![with_name, hr]).unwrap();

        let a = &snapshot.lists["mod-a"];
        assert_eq!(a.display_name, "Module Algebra {list}");
        assert_eq!(a.mail_nickname, "mod-a");
        assert_eq!(a.description.as_deref(), Some("Year 1"));
        let b = &snapshot.lists["mod-b"];
        assert_eq!(b.display_name, "Module mod-b");
        assert_eq!(b.description, None);
        let cs = &snapshot.lists["cs"];
        assert_eq!(cs.mail_nickname, "dept-cs");
        assert_eq!(cs.display_name, "cs");
        assert_eq!(cs.family, "departments");
    }

    #[test]
    fn metadata_across_sources_takes_the_first_in_byte_order() {
        let mut first = read("a", "departments", MemberKey::Upn, &[("cs", &["a@x.org"])]);
        first.lists.get_mut("cs").unwrap().display_name = Some("Computing".to_owned());
        let mut second = read("b", "departments", MemberKey::Upn, &[("cs", &["b@x.org"])]);
        second.lists.get_mut("cs").unwrap().display_name = Some("Computer Science".to_owned());
        let snapshot = assemble(&config(""), vec![first, second]).unwrap();
        assert_eq!(snapshot.lists["cs"].display_name, "Computer Science");
        assert_eq!(snapshot.lists["cs"].members.len(), 2);
    }

    #[test]
    fn render_template_leaves_unknown_braces_alone() {
        assert_eq!(render_template("{x}-{list}{", "l", "d", ""), "{x}-l{");
    }

    #[test]
    fn overrides_and_exceptions_apply_only_inside_their_window() {
        let config = config(
            r#"
[[override]]
list = "mod-a"
include = ["ended@x.org"]
until = "2026-12-05"

[[override]]
list = "mod-a"
include = ["soon@x.org"]
from = "2026-12-08"
"#,
        );
        let exception =
            |member: &str, include: bool, from: Option<&str>, until: Option<&str>| Exception {
                list: "MOD-A".to_owned(),
                member: member.to_owned(),
                include,
                owner: false,
                window: crate::config::Window::parse(from, until, chrono_tz::UTC).unwrap(),
                reason: String::new(),
                place: "exceptions.csv:2".to_owned(),
            };
        let exceptions = [
            exception("a@x.org", false, Some("2026-12-08"), None),
            exception("helpdesk@x.org", true, None, Some("2026-12-06")),
        ];
        let at = |day: &str| {
            let now: DateTime<Utc> = format!("{day}T12:00:00Z").parse().unwrap();
            let reads = vec![read(
                "s",
                "modules",
                MemberKey::Upn,
                &[("mod-a", &["a@x.org"])],
            )];
            values(
                &super::assemble(&config, reads, &exceptions, now)
                    .unwrap()
                    .lists["mod-a"],
            )
        };
        assert_eq!(
            at("2026-12-05"),
            ["upn:a@x.org", "upn:ended@x.org", "upn:helpdesk@x.org"]
        );
        assert_eq!(at("2026-12-06"), ["upn:a@x.org", "upn:helpdesk@x.org"]);
        assert_eq!(at("2026-12-07"), ["upn:a@x.org"]);
        assert_eq!(at("2026-12-08"), ["upn:soon@x.org"]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Whatever spellings the sources use, the lists a run plans (not held) never make the
        /// state store raise a constraint error: each holds a group of its own, found by its
        /// nickname as Exchange compares them (ignoring case), under a key of its own.
        #[test]
        fn case_variants_and_nickname_clashes_never_reach_a_store_constraint(
            first in proptest::collection::vec("[a-cA-C]{1,3}( ?)", 1..12),
            second in proptest::collection::vec("[a-cA-C]{1,3}", 0..12),
            templates in proptest::collection::vec(proptest::prop_oneof![
                proptest::strategy::Just("{list}"),
                proptest::strategy::Just("a{list}"),
            ], 2),
        ) {
            let config = Config::parse(
                &format!(
                    "[[family]]\nname = \"modules\"\nmail_nickname = \"{}\"\n\n\
                     [[family]]\nname = \"departments\"\nmail_nickname = \"{}\"\n",
                    templates[0], templates[1]
                ),
                std::path::Path::new("rollcall.toml"),
            )
            .unwrap();
            let member: &[&str] = &["a@x.org"];
            let a_refs: Vec<(&str, &[&str])> = first.iter().map(|k| (k.as_str(), member)).collect();
            let b_refs: Vec<(&str, &[&str])> = second.iter().map(|k| (k.as_str(), member)).collect();
            let snapshot = assemble(
                &config,
                vec![
                    read("enrolments", "modules", MemberKey::Upn, &a_refs),
                    read("people", "departments", MemberKey::Upn, &b_refs),
                ],
            )
            .unwrap();
            let holds = crate::plan::check_names(snapshot.lists.values().map(|l| crate::plan::ListName {
                key: &l.key,
                mail_nickname: &l.mail_nickname,
                display_name: &l.display_name,
                sources: &l.sources,
            }));
            let planned: Vec<&DesiredList> = snapshot
                .lists
                .values()
                .filter(|l| !holds.contains_key(&l.key))
                .collect();
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let dir = tempfile::tempdir().unwrap();
            runtime.block_on(async {
                let url = crate::config::DatabaseUrl::new(format!("sqlite://{}", dir.path().join("state.db").display()));
                let store = crate::store::Store::open(&url).await.unwrap();
                for list in &planned {
                    // Microsoft 365 finds a group by its nickname, ignoring case.
                    let group = crate::store::ManagedGroup {
                        list: list.key.clone(),
                        group_id: format!("group-{}", list.mail_nickname.to_lowercase()),
                        family: list.family.clone(),
                        origin: crate::store::GroupOrigin::Created,
                        mail_nickname: list.mail_nickname.clone(),
                        tagged: true,
                    };
                    store.upsert_group(&group).await.unwrap();
                }
                proptest::prop_assert_eq!(store.groups().await.unwrap().len(), planned.len());
                store.close().await;
                Ok(())
            })?;
        }
    }
}
