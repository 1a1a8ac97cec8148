//! Helpers shared by the end-to-end suite.

// Not every scenario uses every helper.
#![allow(dead_code)]

pub mod backends;
pub mod certificates;
pub mod db;
pub mod directory;
pub mod graph;
pub mod numbered;
pub mod proxy;
pub mod scene;
pub mod server;
pub mod serving;
pub mod slapd;
pub mod tenant;
