//! The managed groups' titles and descriptions as this read saw them: what lets the diff
//! retitle a group whose list the sources renamed (DESIGN.md "Source rows").

use std::collections::{BTreeMap, HashMap};

use crate::graph::{DirectoryGroup, GroupsDelta};
use crate::plan::Title;
use crate::store::ManagedGroup;

/// A group's title as a listing shows it.
pub(super) fn of_group(group: &DirectoryGroup) -> Title {
    Title {
        display_name: group.display_name.clone(),
        description: group.description.clone(),
        visibility: group.visibility,
    }
}

/// The titles of the managed groups, from a full listing of the tenant's groups.
pub(super) fn of_listing(
    managed: &BTreeMap<String, ManagedGroup>,
    by_id: &HashMap<&str, &DirectoryGroup>,
) -> Vec<(String, Title)> {
    managed
        .values()
        .filter_map(|g| Some((g.list.clone(), of_group(by_id.get(g.group_id.as_str())?))))
        .collect()
}

/// The titles a delta round changes, on top of those `known`: a group the round shows with a
/// displayName gets it (and its description, when the round shows one).
pub(super) fn of_round(
    round: &GroupsDelta,
    recorded: &[ManagedGroup],
    known: &HashMap<String, Title>,
) -> Vec<(String, Title)> {
    let by_id: HashMap<String, &str> = recorded
        .iter()
        .map(|g| (g.group_id.to_ascii_lowercase(), g.list.as_str()))
        .collect();
    round
        .groups
        .iter()
        .filter(|change| !change.deleted)
        .filter_map(|change| {
            let list = *by_id.get(&change.id)?;
            let display_name = change.display_name.clone()?;
            let description = match &change.description {
                Some(description) => description.clone(),
                None => known.get(list).and_then(|t| t.description.clone()),
            };
            let visibility = change
                .visibility
                .or_else(|| known.get(list).and_then(|t| t.visibility));
            let title = Title {
                display_name,
                description,
                visibility,
            };
            (known.get(list) != Some(&title)).then(|| (list.to_owned(), title))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::graph::GroupChange;
    use crate::store::GroupOrigin;

    fn change(id: &str, name: Option<&str>, description: Option<Option<&str>>) -> GroupChange {
        GroupChange {
            id: id.to_owned(),
            mail_nickname: None,
            display_name: name.map(str::to_owned),
            description: description.map(|d| d.map(str::to_owned)),
            added: BTreeSet::new(),
            removed: BTreeSet::new(),
            owners_added: BTreeSet::new(),
            owners_removed: BTreeSet::new(),
            deleted: false,
            visibility: None,
        }
    }

    fn managed(list: &str, id: &str) -> ManagedGroup {
        ManagedGroup {
            list: list.to_owned(),
            group_id: id.to_owned(),
            family: "modules".to_owned(),
            origin: GroupOrigin::Created,
            mail_nickname: list.to_owned(),
            tagged: true,
        }
    }

    #[test]
    fn a_round_retitles_only_what_it_shows_and_what_changed() {
        let known: HashMap<String, Title> = [(
            "a".to_owned(),
            Title {
                display_name: "A".to_owned(),
                description: Some("about a".to_owned()),
                visibility: None,
            },
        )]
        .into_iter()
        .collect();
        let round = GroupsDelta {
            groups: vec![
                change("ga", Some("A2"), None),
                change("gb", None, None),
                change("gc", Some("C"), Some(None)),
                change("gx", Some("X"), None),
            ],
            delta_link: String::new(),
        };
        let recorded = [managed("a", "GA"), managed("b", "gb"), managed("c", "gc")];
        let titles = of_round(&round, &recorded, &known);
        assert_eq!(
            titles,
            vec![
                (
                    "a".to_owned(),
                    Title {
                        display_name: "A2".to_owned(),
                        description: Some("about a".to_owned()),
                        visibility: None,
                    }
                ),
                (
                    "c".to_owned(),
                    Title {
                        display_name: "C".to_owned(),
                        description: None,
                        visibility: None,
                    }
                ),
            ]
        );
    }
}
