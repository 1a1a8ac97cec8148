//! A reconcile run, end to end: lock → snapshot → check → desired → actual → diff → guard →
//! journal → apply → record (DESIGN.md "Words", "Transactions and interruption").
//!
//! The pure decisions live in [`crate::plan`]; this module is the I/O around them: the
//! sources, Microsoft Graph, the state store, the lease, and the run's report.

//!
//! The stages run one way: `prepare` (sources, directory, actual, diff, guards) gives a
//! [`Planned`]; `journal` commits it; `apply` sends it; `record` ends the run with a
//! [`RunReport`] folded from the plan and the journal. Each list's fate (planned, held with
//! its reason, applied) travels inside the plan as a value, so one list's problem holds that
//! list and no other.

mod actual;
mod apply;
mod batches;
mod commands;
mod engine;
mod identity;
mod journal;
mod lease;
mod outcome;
mod planned;
mod planned_group;
mod prepare;
mod progress;
mod record;
mod report;
mod saved;
mod stop;
mod verify;

pub use actual::Conflict;
pub use apply::{Applied, OPS_PER_BATCH};
pub use engine::{Engine, needed_permissions};
pub use identity::Refresh;
pub use lease::{LEASE_TTL, RunLease, holder_name};
pub use planned::{Durations, Planned};
pub use planned_group::PlannedGroup;
pub use progress::Progress;
pub use record::exit_of;
pub use report::{
    Approval, Detailed, FailedCheck, HeldList, ListReport, OpError, RunReport, seconds,
    write_source,
};
pub use saved::{
    Change, SAVED_PLAN_VERSION, SavedPlan, SavedPlanError, SavedPlanFile, fingerprint,
};
pub use stop::{Stop, StopSignal};
pub use verify::{Drift, PendingRemovals, Verification, drift_text, pending_text};
