//! The owner mirror (issue 15): each managed group's owners (users or service principals, by
//! object id) as last read from or written to Microsoft 365, kept like the membership mirror
//! (full reads replace a list's rows, delta rounds and done `add_owner`/`remove_owner`
//! operations change them) and, like it, rebuilt from Microsoft 365 by a full read.

use std::collections::HashMap;

use super::state::OWNER_MIRROR;
use super::{Store, StoreError};

impl Store {
    /// The whole owner mirror: each list's owners (object ids), sorted. Lists without an
    /// owner are left out.
    pub async fn owner_mirror(&self) -> Result<HashMap<String, Vec<String>>, StoreError> {
        self.read_mirror(&OWNER_MIRROR).await
    }

    /// Replaces a list's mirrored owners with `owners` (object ids), e.g. after a full read.
    pub async fn replace_owners(&self, list: &str, owners: &[String]) -> Result<(), StoreError> {
        self.replace_mirrored(&OWNER_MIRROR, list, owners).await
    }

    /// A list's mirrored owners (object ids), sorted.
    pub async fn owners(&self, list: &str) -> Result<Vec<String>, StoreError> {
        self.read_mirrored(&OWNER_MIRROR, list).await
    }
}
