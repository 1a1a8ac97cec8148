//! The human-readable plan: one line per list in the manner of `terraform plan`, totals,
//! then the guard verdicts with what to do about a tripped one. `--output json` serialises
//! [`Plan`] and [`Verdicts`] instead.

use std::fmt::{self, Write as _};

use crate::config::OnVanish;

use super::{GuardKind, ListChange, ListPlan, Outcome, Plan, Verdict, Verdicts};

/// The plan and its verdicts as text for an operator's terminal.
pub fn render_plan(plan: &Plan, verdicts: &Verdicts) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = write_plan(&mut out, plan, verdicts);
    out
}

fn write_plan(out: &mut String, plan: &Plan, verdicts: &Verdicts) -> fmt::Result {
    let totals = &plan.totals;
    if plan.lists.is_empty() {
        writeln!(
            out,
            "No changes: all {} lists are as desired.",
            totals.lists
        )?;
    } else {
        for list in &plan.lists {
            writeln!(out, "{}", ListLine(list))?;
        }
        writeln!(out)?;
        writeln!(
            out,
            "{} lists: {} to create, {} to update, {} unchanged, {} vanished, {} not created, \
             {} held; {} members to add, {} to remove; {} titles to update.",
            totals.lists,
            totals.creates,
            totals.updates,
            totals.unchanged,
            totals.vanished,
            totals.not_created,
            totals.held,
            totals.adds,
            totals.removes,
            totals.retitles,
        )?;
        if totals.owner_adds + totals.owner_removes + totals.owners_kept > 0 {
            writeln!(
                out,
                "Owners: {} to add, {} to remove; {} lists keep an owner no source names (the last one).",
                totals.owner_adds, totals.owner_removes, totals.owners_kept
            )?;
        }
        if totals.leaving > 0 {
            writeln!(
                out,
                "{} members stay in their removal grace (`remove_after`) until due.",
                totals.leaving
            )?;
        }
    }
    writeln!(out)?;
    writeln!(out, "Guards:")?;
    for verdict in verdicts.iter() {
        writeln!(out, "  {}", VerdictLine(verdict))?;
    }
    let removals = verdicts
        .find(GuardKind::MaxRemovalsPerRun, None)
        .map_or(plan.totals.removes, |v| v.observed);
    for verdict in verdicts.tripped() {
        writeln!(out)?;
        writeln!(out, "{}", tripped_message(verdict, removals))?;
    }
    Ok(())
}

/// One line per list: `+` create, `~` update, `-` emptied, `=` kept, `!` not created,
/// `#` held.
struct ListLine<'a>(&'a ListPlan);

impl fmt::Display for ListLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = self.0;
        let (adds, removes) = (list.adds().len(), list.removes().len());
        match &list.change {
            ListChange::Create { .. } => {
                write!(f, "+ {} (create): +{adds}", list.key)?;
                OwnersNote(list).fmt(f)
            }
            ListChange::Update { retitle, .. } => {
                write!(f, "~ {}: +{adds} −{removes}", list.key)?;
                OwnersNote(list).fmt(f)?;
                if let Some(title) = retitle {
                    write!(f, "; ~ title `{}`", title.display_name)?;
                }
                LeavingNote(list).fmt(f)
            }
            ListChange::Held { hold, would, .. } => {
                write!(f, "# {} (held, {}): {hold}", list.key, hold.key())?;
                if let Some(would) = would {
                    let held = ListPlan {
                        key: list.key.clone(),
                        family: list.family.clone(),
                        change: (**would).clone(),
                    };
                    let (adds, removes) = (held.adds().len(), held.removes().len());
                    if adds + removes > 0 {
                        write!(f, "; would be +{adds} −{removes}")?;
                    }
                }
                write!(f, "; to release: {}", hold.release(&list.key))
            }
            ListChange::Vanished {
                on_vanish: OnVanish::Empty,
                ..
            } => {
                write!(f, "- {} (vanished: empty): −{removes}", list.key)?;
                LeavingNote(list).fmt(f)
            }
            ListChange::Vanished {
                on_vanish: OnVanish::Keep,
                current,
                ..
            } => write!(
                f,
                "= {} (vanished: keep): {current} members left as they are",
                list.key
            ),
            ListChange::NotCreated { desired } => write!(
                f,
                "! {} (not created: family `{}` has create = false): {desired} members waiting",
                list.key, list.family
            ),
        }
    }
}

/// ` +2 owners −1 owner`, and the owner kept as the group's last one, apart from members.
struct OwnersNote<'a>(&'a ListPlan);

impl fmt::Display for OwnersNote<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = self.0;
        let plural = |n: usize| if n == 1 { "owner" } else { "owners" };
        let (adds, removes) = (list.owner_adds().len(), list.owner_removes().len());
        if adds > 0 {
            write!(f, " +{adds} {}", plural(adds))?;
        }
        if removes > 0 {
            write!(f, " −{removes} {}", plural(removes))?;
        }
        match list.owner_kept() {
            Some(kept) => write!(
                f,
                "; owner {kept} kept: no source or family names an owner, and a group keeps its last one"
            ),
            None => Ok(()),
        }
    }
}

/// `leaving: N in grace until DATE` (the earliest due date), when a list has members in
/// their removal grace.
struct LeavingNote<'a>(&'a ListPlan);

impl fmt::Display for LeavingNote<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let leaving = self.0.leaving();
        match leaving.iter().map(|l| l.due).min() {
            Some(first) => write!(
                f,
                "; leaving: {} in grace until {}",
                leaving.len(),
                first.format("%Y-%m-%d %H:%M UTC")
            ),
            None => Ok(()),
        }
    }
}

/// A verdict in one line: outcome, guard, and the numbers it judged.
struct VerdictLine<'a>(&'a Verdict);

impl fmt::Display for VerdictLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        let outcome = match v.outcome {
            Outcome::Passed => "passed  ".to_owned(),
            Outcome::Tripped => "TRIPPED ".to_owned(),
            Outcome::Accepted { by } => format!("accepted (up to {by})"),
        };
        match (v.guard, &v.list, v.list_size, v.percent) {
            (GuardKind::MaxRemovalPercentPerList, Some(list), Some(size), Some(percent)) => write!(
                f,
                "{outcome} max_removal_percent_per_list: {list} loses {} of {size} members, \
                 at most {} ({percent}%) allowed",
                v.observed, v.limit
            ),
            (GuardKind::MaxAdditionPercentPerList, Some(list), Some(size), Some(percent)) => {
                write!(
                    f,
                    "{outcome} max_addition_percent_per_list: {list} gains {} on its {size} members, \
                 at most {} ({percent}%) allowed",
                    v.observed, v.limit
                )
            }
            (GuardKind::MaxMembers, Some(list), ..) => write!(
                f,
                "{outcome} max_members: {list} would have {} members, at most {} allowed",
                v.observed, v.limit
            ),
            (GuardKind::MaxAdditionsPerRun, ..) => write!(
                f,
                "{outcome} max_additions_per_run: {} additions, at most {} allowed",
                v.observed, v.limit
            ),
            (GuardKind::MaxOwnerRemovalsPerRun, ..) => write!(
                f,
                "{outcome} max_owner_removals_per_run: {} owner removals, at most {} allowed",
                v.observed, v.limit
            ),
            _ => write!(
                f,
                "{outcome} {}: {} removals, at most {} allowed",
                v.guard.key(),
                v.observed,
                v.limit
            ),
        }
    }
}

/// What a tripped guard means and what the operator can do; `removals` is the plan's
/// total, the count `--accept-removals` must cover.
pub fn tripped_message(verdict: &Verdict, removals: u64) -> String {
    let review = "Nothing was changed. Review the plan with `rollcall plan`;";
    let save = "save the plan with `rollcall plan --out FILE` and approve it with \
                `rollcall apply FILE --reason TEXT`";
    match verdict.guard {
        GuardKind::MaxRemovalsPerRun => format!(
            "Guard max_removals_per_run tripped: the plan removes {} members across all lists, \
             more than the {} allowed. {review} if the removals are right, approve them for one \
             run with `rollcall run --accept-removals {removals}`, or {save}.",
            verdict.observed, verdict.limit
        ),
        GuardKind::MaxRemovalPercentPerList
        | GuardKind::MaxAdditionPercentPerList
        | GuardKind::MaxMembers => {
            let list = verdict.list.as_deref().unwrap_or("?");
            format!(
                "Guard {} tripped on list `{list}`: {} against a limit of {}. The list is held \
                 and every other list goes on; if the change is right, release it for one run \
                 with `rollcall run --accept-list {list} --reason TEXT`.",
                verdict.guard.key(),
                verdict.observed,
                verdict.limit,
            )
        }
        GuardKind::MaxAdditionsPerRun => format!(
            "Guard max_additions_per_run tripped: the plan adds {} members, more than the {} \
             allowed. {review} if the additions are right, {save}, or raise \
             `[guard].max_additions_per_run`.",
            verdict.observed, verdict.limit
        ),
        GuardKind::MaxOwnerRemovalsPerRun => format!(
            "Guard max_owner_removals_per_run tripped: the plan removes {} owners across all \
             lists, more than the {} allowed. {review} if the owner changes are right, approve \
             them for one run with `rollcall run --accept-owner-removals {}`, or {save}.",
            verdict.observed, verdict.limit, verdict.observed
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GuardConfig;
    use crate::plan::fixtures::{actual, desired, have, modules, want};
    use crate::plan::{Approvals, Policies, Policy, diff, guard};

    fn limits(max_removals: u64) -> GuardConfig {
        GuardConfig {
            max_removals_per_run: max_removals,
            ..GuardConfig::default()
        }
    }

    #[test]
    fn each_kind_of_list_gets_its_own_line() {
        let mut fixed = want("mod-q", &[1, 2]);
        fixed.family = "fixed".into();
        let policies: Policies = [
            (
                "modules".to_owned(),
                Policy {
                    create: true,
                    on_vanish: OnVanish::Empty,
                    ..Policy::UNKNOWN_FAMILY
                },
            ),
            (
                "fixed".to_owned(),
                Policy {
                    create: false,
                    on_vanish: OnVanish::Keep,
                    ..Policy::UNKNOWN_FAMILY
                },
            ),
        ]
        .into_iter()
        .collect();
        let mut kept = have("mod-w", &[1, 2, 3]);
        kept.family = "fixed".into();
        let plan = diff(
            &desired(vec![
                want("mod-x", &[1, 2]),
                want("mod-y", &[1, 2, 3, 4]),
                fixed,
            ]),
            &actual(vec![have("mod-y", &[1, 5]), have("mod-z", &[7]), kept]),
            &policies,
        );
        let text = render_plan(&plan, &guard(&plan, &limits(500), &Approvals::default()));
        for line in [
            "! mod-q (not created: family `fixed` has create = false): 2 members waiting",
            "= mod-w (vanished: keep): 3 members left as they are",
            "+ mod-x (create): +2",
            "~ mod-y: +3 −1",
            "- mod-z (vanished: empty): −1",
            "5 lists: 1 to create, 1 to update, 0 unchanged, 2 vanished, 1 not created, \
             0 held; 5 members to add, 2 to remove; 0 titles to update.",
            "  passed   max_removals_per_run: 2 removals, at most 500 allowed",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in:\n{text}"
            );
        }
    }

    #[test]
    fn plan_without_changes_says_so() {
        let plan = diff(
            &desired(vec![want("a", &[1])]),
            &actual(vec![have("a", &[1])]),
            &modules(true, OnVanish::Keep),
        );
        let text = render_plan(&plan, &guard(&plan, &limits(500), &Approvals::default()));
        assert!(
            text.starts_with("No changes: all 1 lists are as desired.\n"),
            "{text}"
        );
    }

    #[test]
    fn tripped_guard_tells_the_operator_how_to_approve() {
        let held: Vec<u128> = (0..20).collect();
        let plan = diff(
            &desired(vec![want("a", &held[..8]), want("b", &[])]),
            &actual(vec![have("a", &held), have("b", &[100])]),
            &modules(true, OnVanish::Keep),
        );
        let verdicts = guard(&plan, &limits(5), &Approvals::default());
        let text = render_plan(&plan, &verdicts);
        assert!(
            text.contains("  TRIPPED  max_removals_per_run: 13 removals, at most 5 allowed"),
            "{text}"
        );
        assert!(
            text.contains(
                "  TRIPPED  max_removal_percent_per_list: a loses 12 of 20 members, at most 10 (50%) allowed"
            ),
            "{text}"
        );
        let messages: Vec<_> = verdicts.tripped().map(|v| tripped_message(v, 13)).collect();
        assert_eq!(messages.len(), 2);
        for message in &messages {
            assert!(text.contains(message.as_str()));
        }
        for part in [
            "`rollcall run --accept-removals 13`",
            "`rollcall apply FILE --reason TEXT`",
        ] {
            assert!(messages[0].contains(part), "{}", messages[0]);
        }
        for part in [
            "list `a`: 12 against a limit of 10. The list is held",
            "`rollcall run --accept-list a --reason TEXT`",
        ] {
            assert!(messages[1].contains(part), "{}", messages[1]);
        }
    }

    #[test]
    fn accepted_guard_shows_the_approval() {
        let held: Vec<u128> = (0..20).collect();
        let plan = diff(
            &desired(vec![want("a", &held[..14])]),
            &actual(vec![have("a", &held)]),
            &modules(true, OnVanish::Keep),
        );
        let approvals = Approvals {
            accept_removals: Some(6),
            accept_additions: None,
            ..Approvals::default()
        };
        let text = render_plan(&plan, &guard(&plan, &limits(5), &approvals));
        assert!(
            text.contains(
                "  accepted (up to 6) max_removals_per_run: 6 removals, at most 5 allowed"
            ),
            "{text}"
        );
        assert!(!text.contains("tripped"), "{text}");
    }

    #[test]
    fn additions_message_points_at_saved_plan_or_config() {
        let verdict = Verdict {
            guard: GuardKind::MaxAdditionsPerRun,
            list: None,
            limit: 10,
            observed: 11,
            list_size: None,
            percent: None,
            outcome: Outcome::Tripped,
        };
        let message = tripped_message(&verdict, 0);
        assert!(
            message.contains("adds 11 members, more than the 10 allowed"),
            "{message}"
        );
        assert!(message.contains("rollcall apply FILE --reason TEXT"));
        assert!(message.contains("[guard].max_additions_per_run"));
        assert!(!message.contains("--accept-removals"));
    }
}
