//! The sandbox tenant: a Microsoft Graph emulator for the subset rollcall uses.

pub mod seed;

pub use seed::{Seed, SeedGroup, SeedUser};
