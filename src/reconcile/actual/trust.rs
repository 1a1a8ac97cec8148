//! Whether the mirror a delta read extends is whole (DESIGN.md "Transactions and
//! interruption": a run trusts its saved delta links only while the state they extend is
//! whole). A delta round says what changed since the link was taken; applied to a mirror
//! that lost rows, it reads the lost members as absent and the plan would add them all again.
//!
//! The checks are those `doctor` makes: mirror rows of lists that are no managed group
//! (orphans) are dropped; a managed group without mirror rows is read in full, since only
//! Microsoft 365 tells an empty group from a lost mirror; and when more than half of the
//! managed groups have none, the link is not trusted at all and every group is read in full.
//! A genuinely empty group thus costs one members page per run, sent in the same `$batch` as
//! up to 19 others.

use std::collections::BTreeSet;

use super::{ActualState, actual_of, read_groups, record_read};
use crate::graph::GraphClient;
use crate::plan::ActualList;
use crate::reconcile::stop::Stop;
use crate::store::{ManagedGroup, Store};

/// How many list keys a warning names before it only counts the rest.
const NAMED_IN_WARNINGS: usize = 10;

/// What the check found before a delta read.
#[derive(Debug, Default)]
pub(super) struct Trust {
    /// Managed groups recorded in the store.
    managed: u64,
    /// Those whose mirror holds no member, by list key.
    suspect: BTreeSet<String>,
    /// Mirror and owner mirror rows of lists that are no managed group, dropped.
    orphans: u64,
}

/// Checks the mirror before a delta read; with `repair`, drops orphaned mirror and owner
/// mirror rows.
pub(super) async fn check(store: &Store, repair: bool) -> Result<Trust, Stop> {
    let orphans = if repair {
        store.forget_orphaned_mirror().await.map_err(Stop::store)?
    } else {
        0
    };
    let managed = store.group_count().await.map_err(Stop::store)?;
    let suspect: BTreeSet<String> = store
        .lists_without_members()
        .await
        .map_err(Stop::store)?
        .into_iter()
        .collect();
    if orphans > 0 {
        tracing::warn!(
            rows = orphans,
            "mirror or owner mirror rows of lists that are no managed group were dropped before the delta read"
        );
    }
    tracing::debug!(
        managed,
        without_members = suspect.len(),
        "mirror checked before the delta read"
    );
    Ok(Trust {
        managed,
        suspect,
        orphans,
    })
}

impl Trust {
    /// Whether so much of the mirror is without members that the groups delta link is not
    /// trusted at all: more than half of the managed groups.
    pub(super) fn distrusts_link(&self) -> bool {
        self.managed > 0 && self.suspect.len() as u64 * 2 > self.managed
    }

    /// The warnings about orphaned rows, for the report.
    fn orphan_warnings(&self) -> Vec<String> {
        (self.orphans > 0)
            .then(|| {
                format!(
                    "{} mirror row(s) belonged to lists that are no managed group (member or owner \
                     rows lost or orphaned in the state database); they were dropped before reading",
                    self.orphans
                )
            })
            .into_iter()
            .collect()
    }

    /// After the full read that replaced a distrusted delta read: says which groups had lost
    /// their mirror rows (those the read found members on).
    pub(super) fn explain_full_read(&self, state: &mut ActualState) {
        state.warnings.extend(self.orphan_warnings());
        let lost = lost_lists(&self.suspect, state.actual.lists());
        tracing::info!(
            managed = self.managed,
            without_members = self.suspect.len(),
            lost = lost.len(),
            "the groups delta link was not trusted: most managed groups had no mirror rows; every managed group was read in full"
        );
        if !lost.is_empty() {
            let warning = format!(
                "the mirror held no members for {} of {} managed groups, and {} of them have \
                 members in Microsoft 365 ({}): the state database lost rows. The groups delta \
                 link was not trusted; every managed group was read in full and the mirror rebuilt",
                self.suspect.len(),
                self.managed,
                lost.len(),
                named(&lost)
            );
            tracing::warn!("{warning}");
            state.warnings.push(warning);
        }
    }

    /// After a delta read: reads in full (members and owners) the managed groups whose mirror
    /// held no member, puts what it found in `state` instead of what the delta made of an
    /// empty mirror, and with `repair` rewrites their mirror and owner mirror. Lists found
    /// with members are named in a warning.
    pub(super) async fn reread(
        &self,
        store: &Store,
        graph: &GraphClient,
        repair: bool,
        state: &mut ActualState,
    ) -> Result<(), Stop> {
        state.warnings.extend(self.orphan_warnings());
        let groups: Vec<&ManagedGroup> = state
            .managed
            .values()
            .filter(|g| self.suspect.contains(&g.list))
            .collect();
        if groups.is_empty() {
            return Ok(());
        }
        let read = read_groups(graph, &groups, &mut state.refused).await?;
        if repair {
            for list in &read {
                record_read(store, list).await?;
            }
        }
        let lost = lost_lists(&self.suspect, &read);
        let mut lists: Vec<ActualList> = state
            .actual
            .lists()
            .iter()
            .filter(|l| !read.iter().any(|r| r.key == l.key))
            .cloned()
            .collect();
        lists.extend(read);
        state.actual = actual_of(lists, &state.titles)?;
        tracing::info!(
            read_in_full = groups.len(),
            lost = lost.len(),
            "managed groups without mirror rows read in full"
        );
        if !lost.is_empty() {
            let warning = format!(
                "the mirror held no members for {} list(s) that have members in Microsoft 365 \
                 ({}): the state database lost rows. Those lists were read in full instead of \
                 by delta and their mirror rebuilt",
                lost.len(),
                named(&lost)
            );
            tracing::warn!("{warning}");
            state.warnings.push(warning);
        }
        Ok(())
    }
}

/// The suspect lists that Microsoft 365 shows with members: their mirror rows were lost.
fn lost_lists(suspect: &BTreeSet<String>, read: &[ActualList]) -> Vec<String> {
    read.iter()
        .filter(|l| suspect.contains(&l.key) && !l.members.as_slice().is_empty())
        .map(|l| l.key.clone())
        .collect()
}

/// The first few list keys, then how many more.
fn named(lists: &[String]) -> String {
    let shown: Vec<String> = lists
        .iter()
        .take(NAMED_IN_WARNINGS)
        .map(|l| format!("`{l}`"))
        .collect();
    let more = lists.len().saturating_sub(NAMED_IN_WARNINGS);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trust(managed: u64, suspect: &[&str]) -> Trust {
        Trust {
            managed,
            suspect: suspect.iter().map(|s| (*s).to_owned()).collect(),
            orphans: 0,
        }
    }

    #[test]
    fn the_link_is_distrusted_only_when_most_groups_have_no_mirror() {
        assert!(!trust(0, &[]).distrusts_link());
        assert!(!trust(4, &["a", "b"]).distrusts_link());
        assert!(trust(4, &["a", "b", "c"]).distrusts_link());
        assert!(trust(1, &["a"]).distrusts_link());
    }

    #[test]
    fn warnings_name_ten_lists_then_count_the_rest() {
        let lists: Vec<String> = (0..12).map(|i| format!("mod-{i:02}")).collect();
        let text = named(&lists);
        assert!(
            text.starts_with("`mod-00`, `mod-01`") && text.ends_with("`mod-09` and 2 more"),
            "{text}"
        );
        assert_eq!(named(&lists[..1]), "`mod-00`");
    }
}
