//! rollcall keeps Microsoft 365 mailing lists in step with authoritative records.
//!
//! Data flows one way: sources → snapshot → desired, Microsoft 365 → actual, then a pure
//! diff and guard, the journal, and the apply. See DESIGN.md for the contract.

pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod exit;
pub mod explain;
pub mod generate;
pub mod graph;
pub mod logging;
pub mod notify;
pub mod plan;
pub mod reconcile;
pub mod sandbox;
pub mod serve;
pub mod source;
pub mod store;
