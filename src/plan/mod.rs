//! The plan: the pure heart of rollcall.
//!
//! [`diff`] turns desired lists (from sources) and actual lists (managed groups in
//! Microsoft 365) into a [`Plan`]; [`guard`] judges it against the `[guard]` limits and
//! the operator's [`Approvals`]; [`render_plan`] shows both to an operator. Plain data in,
//! plain data out: no I/O and no clock, so every decision here is table-tested and the
//! whole diff is property-tested against the result of applying it.

mod diff;
#[cfg(test)]
mod fixtures;
mod grace;
mod guard;
mod hold;
mod id;
mod list_plan;
mod lists;
mod merge;
mod owners;
mod render;
mod visibility;

pub use diff::{
    Hold, ListChange, ListPlan, NewGroup, Operation, OperationKind, Plan, Totals, diff,
    diff_holding,
};
pub use grace::{AbsenceChanges, FirstAbsent, Leaving, defer_removals, leaving_by_list};
pub use guard::{Approvals, GuardKind, Outcome, Verdict, Verdicts, guard, guard_holding};
pub use hold::{HoldReason, ListName, MAX_DISPLAY_NAME, check_names, nickname_problem};
pub use id::{ObjectId, ParseObjectIdError};
pub use lists::{
    Actual, ActualList, Desired, DesiredList, DuplicateList, Members, Policies, Policy, Title,
};
pub use owners::{OwnerChange, owner_changes};
pub use render::{render_plan, tripped_message};
pub use visibility::VisibilityDrift;
