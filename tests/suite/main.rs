//! rollcall's end-to-end suite: one test binary, one module per area.

mod approvals;
mod common;
mod config;
mod crash;
mod csv_source;
mod delta;
mod deploy;
mod entra_source;
mod generate;
mod graph;
mod incidents;
mod interrupt;
mod ldap_source;
mod maintenance;
mod notify;
mod odbc_source;
mod reconcile;
mod reports;
mod sandbox;
mod serve;
mod source_speed;
mod sql_source;
mod store;
