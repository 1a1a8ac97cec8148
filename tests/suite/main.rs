//! rollcall's end-to-end suite: one test binary, one module per area.

mod approvals;
mod common;
mod config;
mod crash;
mod csv_exports;
mod csv_source;
mod delta;
mod deploy;
mod generate;
mod graph;
mod incidents;
mod interrupt;
mod isolation;
mod maintenance;
mod notify;
mod reconcile;
mod reports;
mod sandbox;
mod serve;
mod signin;
mod sql_source;
mod state_trust;
mod store;
mod store_refusals;
