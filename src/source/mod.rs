//! Sources: CSV files and SQL queries, each read whole or not at all, and the snapshot that
//! merges them into desired lists.
//!
//! A source is either read completely and consistently, or it is an error: a half-read
//! source must never be planned from, because missing rows would become removals.

pub mod completeness;
mod csv;
mod error;
mod planning;
mod rows;
mod snapshot;
mod sql;

use std::collections::BTreeMap;
use std::time::Instant;

use crate::config::{Config, MemberKey, SourceConfig, SourceKind};

pub use error::SourceError;
pub use planning::ResolvedLists;
pub use rows::SourceList;
pub use snapshot::{DesiredList, Member, Snapshot, SourceSummary};

/// One source, read whole: its lists after trimming, normalizing and collapsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRead {
    /// The source's name.
    pub name: String,
    /// The family it feeds.
    pub family: String,
    /// How its members are named.
    pub member_key: MemberKey,
    /// Data rows read, before duplicates collapsed.
    pub rows: u64,
    /// Distinct `(list, member)` pairs.
    pub distinct: u64,
    /// The sha256 (hex) of the canonical form (see `rows::checksum`); row order and
    /// duplicates do not change it.
    pub checksum: String,
    /// The lists by key.
    pub lists: BTreeMap<String, SourceList>,
}

impl SourceRead {
    fn new(source: &SourceConfig, collected: rows::Collected) -> Self {
        Self {
            name: source.name.clone(),
            family: source.family.clone(),
            member_key: source.member_key,
            rows: collected.rows,
            distinct: collected.distinct,
            checksum: collected.checksum,
            lists: collected.lists,
        }
    }

    /// The counts and checksum recorded for this read.
    pub fn summary(&self) -> SourceSummary {
        SourceSummary {
            name: self.name.clone(),
            family: self.family.clone(),
            rows: self.rows,
            distinct: self.distinct,
            checksum: self.checksum.clone(),
        }
    }
}

/// Reads one source, all of it or an error.
#[tracing::instrument(skip_all, fields(source = %source.name, kind = ?source.kind))]
pub async fn read_source(source: &SourceConfig) -> Result<SourceRead, SourceError> {
    let started = Instant::now();
    let read = match source.kind {
        SourceKind::Sql => sql::read(source).await?,
        SourceKind::Csv => {
            let Some(path) = source.path.clone() else {
                return Err(SourceError::Config {
                    source_name: source.name.clone(),
                    message: "a csv source needs `path`".to_owned(),
                });
            };
            let owned = source.clone();
            // The csv crate reads synchronously; keep it off the async workers.
            tokio::task::spawn_blocking(move || csv::read(&owned, &path))
                .await
                .map_err(|e| SourceError::Unexpected {
                    source_name: source.name.clone(),
                    error: anyhow::anyhow!("the CSV reading task failed: {e}"),
                })??
        }
    };
    tracing::info!(
        rows = read.rows,
        distinct = read.distinct,
        lists = read.lists.len(),
        checksum = %read.checksum,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "source read"
    );
    Ok(read)
}

/// Reads every source concurrently, then builds the desired lists: overrides applied,
/// family naming rendered. Any source error fails the whole call; nothing may be planned.
pub async fn read_all(config: &Config) -> Result<Snapshot, SourceError> {
    let reads = futures::future::try_join_all(config.sources.iter().map(read_source)).await?;
    let snapshot = snapshot::assemble(config, reads)?;
    for warning in &snapshot.warnings {
        tracing::warn!(%warning, "snapshot warning");
    }
    Ok(snapshot)
}
