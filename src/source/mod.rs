//! Sources: SQL and ODBC queries, CSV files, LDAP directories and Entra ID, each read whole
//! or not at all, and the snapshot that merges them into desired lists.
//!
//! A source is either read completely and consistently, or it is an error: a half-read
//! source must never be planned from, because missing rows would become removals.

pub mod completeness;
mod csv;
mod entra;
mod entries;
mod error;
mod exceptions;
mod ldap;
#[cfg(feature = "odbc")]
mod odbc;
mod planning;
mod rows;
mod snapshot;
mod sql;
mod template;
mod witness;

use std::collections::BTreeMap;
use std::time::Instant;

use crate::config::{Config, MemberKey, SourceConfig, SourceKind};
use crate::graph::GraphClient;

pub use error::SourceError;
pub use exceptions::Exception;
pub use planning::ResolvedLists;
pub use rows::SourceList;
pub use snapshot::{DesiredList, Member, Snapshot, SourceSummary};
pub use template::{Entry, Template, slug};
pub use witness::{Sighting, Witness, split_member};

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
    /// The source's kind.
    pub kind: SourceKind,
    /// Entries skipped because a template rendered empty or ambiguous.
    pub skipped: u64,
    /// What an operator should know about the read (the skipped entries, named).
    pub warnings: Vec<String>,
    /// How long the read took, in milliseconds.
    pub read_ms: u64,
    /// The rows a [`Witness`] asked for (`explain`), with their places; empty otherwise.
    pub sightings: Vec<Sighting>,
    /// Whether the source says who owns its lists (a `role` column, or `role` set): the
    /// owners of its family's lists are then rollcall's to keep.
    pub roles: bool,
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
            kind: source.kind,
            skipped: 0,
            warnings: Vec::new(),
            read_ms: 0,
            sightings: collected.sightings,
            roles: collected.roles,
        }
    }

    /// The read with its skipped entries counted and named.
    fn with_skipped(mut self, skipped: &entries::Skipped) -> Self {
        self.skipped = skipped.count;
        self.warnings.extend(skipped.warning(&self.name));
        self
    }

    /// The counts and checksum recorded for this read.
    pub fn summary(&self) -> SourceSummary {
        SourceSummary {
            name: self.name.clone(),
            family: self.family.clone(),
            rows: self.rows,
            distinct: self.distinct,
            checksum: self.checksum.clone(),
            kind: self.kind.as_str().to_owned(),
            skipped: self.skipped,
            read_ms: self.read_ms,
        }
    }
}

/// Reads one source, all of it or an error. An `entra` source needs [`read_source_with`].
pub async fn read_source(source: &SourceConfig) -> Result<SourceRead, SourceError> {
    read_source_with(source, None).await
}

/// Reads one source, all of it or an error; `entra` sources read through `graph`.
pub async fn read_source_with(
    source: &SourceConfig,
    graph: Option<&GraphClient>,
) -> Result<SourceRead, SourceError> {
    read_source_witnessed(source, graph, None).await
}

/// Reads one source, all of it or an error, keeping the rows `witness` asks for in
/// [`SourceRead::sightings`].
// The span keeps the name it had before explain existed, so that log queries still match.
#[tracing::instrument(
    name = "read_source_with",
    skip_all,
    fields(source = %source.name, kind = source.kind.as_str())
)]
pub async fn read_source_witnessed(
    source: &SourceConfig,
    graph: Option<&GraphClient>,
    witness: Option<Witness>,
) -> Result<SourceRead, SourceError> {
    let started = Instant::now();
    let mut read = match source.kind {
        SourceKind::Sql => sql::read(source, witness).await?,
        SourceKind::Entra => entra::read(source, graph, witness).await?,
        SourceKind::Ldap => ldap::read(source, witness).await?,
        #[cfg(feature = "odbc")]
        SourceKind::Odbc => odbc::read(source, witness).await?,
        #[cfg(not(feature = "odbc"))]
        SourceKind::Odbc => {
            return Err(SourceError::Config {
                source_name: source.name.clone(),
                message: "this rollcall was built without ODBC; build it with `--features odbc`"
                    .to_owned(),
            });
        }
        SourceKind::Csv => {
            let Some(path) = source.path.clone() else {
                return Err(SourceError::Config {
                    source_name: source.name.clone(),
                    message: "a csv source needs `path`".to_owned(),
                });
            };
            let owned = source.clone();
            // The csv crate reads synchronously; keep it off the async workers.
            tokio::task::spawn_blocking(move || csv::read(&owned, &path, witness))
                .await
                .map_err(|e| SourceError::Unexpected {
                    source_name: source.name.clone(),
                    error: anyhow::anyhow!("the CSV reading task failed: {e}"),
                })??
        }
    };
    read.read_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    tracing::info!(
        rows = read.rows,
        distinct = read.distinct,
        skipped = read.skipped,
        lists = read.lists.len(),
        checksum = %read.checksum,
        elapsed_ms = read.read_ms,
        "source read"
    );
    Ok(read)
}

/// Reads every source concurrently, then builds the desired lists: overrides applied,
/// family naming rendered. Any source error fails the whole call; nothing may be planned.
/// An `entra` source needs [`read_all_with`].
pub async fn read_all(config: &Config) -> Result<Snapshot, SourceError> {
    read_all_with(config, None).await
}

/// [`read_all`], with `entra` sources read through `graph`.
pub async fn read_all_with(
    config: &Config,
    graph: Option<&GraphClient>,
) -> Result<Snapshot, SourceError> {
    let reads = futures::future::try_join_all(
        config
            .sources
            .iter()
            .map(|source| read_source_with(source, graph)),
    )
    .await?;
    let exceptions = read_exceptions(config).await?;
    let snapshot = snapshot::assemble(config, reads, &exceptions, crate::clock::now())?;
    for warning in &snapshot.warnings {
        tracing::warn!(%warning, "snapshot warning");
    }
    Ok(snapshot)
}

/// Every `[[override_source]]` row, each file read whole or an error.
pub async fn read_exceptions(config: &Config) -> Result<Vec<Exception>, SourceError> {
    let owned = config.clone();
    tokio::task::spawn_blocking(move || exceptions::read_all(&owned))
        .await
        .map_err(|e| SourceError::Unexpected {
            source_name: "override_source".to_owned(),
            error: e.into(),
        })?
}

/// The desired lists from reads already made (configuration order), with the overrides and
/// `exceptions` that apply at `now`: what [`read_all_with`] builds after reading.
pub fn assemble(
    config: &Config,
    reads: Vec<SourceRead>,
    exceptions: &[Exception],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Snapshot, SourceError> {
    snapshot::assemble(config, reads, exceptions, now)
}
