//! rollcall's end-to-end suite: one test binary, one module per area.

mod common;
mod config;
mod generate;
mod sandbox;
