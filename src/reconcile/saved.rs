//! Saved plans: `plan --out FILE` writes what a plan was computed from, and `apply FILE`
//! applies it only while that is still true (DESIGN.md `plan`, `apply`, `[guard].plan_ttl`).
//!
//! The decisions ([`fingerprint`], [`SavedPlan::changes_since`]) are pure; reading and
//! writing the file sit at the edge in [`SavedPlan::write`] and [`SavedPlan::read`].

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::planned::Planned;
use crate::plan::{Actual, Plan, Verdicts};
use crate::source::SourceSummary;

/// The saved-plan format this rollcall writes and reads.
/// Version 2: plans hold lists (`held`), retitle groups, and count both in their totals.
pub const SAVED_PLAN_VERSION: u32 = 2;

/// A plan as `plan --out FILE` saves it, with everything it was computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedPlan {
    /// The file format's version ([`SAVED_PLAN_VERSION`]).
    pub version: u32,
    /// When the plan was made.
    pub created_at: DateTime<Utc>,
    /// The configuration file it was made with.
    pub config: PathBuf,
    /// Each source's summary (rows, checksum) as read for the plan.
    pub sources: Vec<SourceSummary>,
    /// The [`fingerprint`] of the actual membership the plan was computed from.
    pub actual: String,
    /// Sources whose shrink the operator accepted for the plan (`--accept-shrink`).
    #[serde(default)]
    pub accept_shrink: Vec<String>,
    /// The plan.
    pub plan: Plan,
    /// The guards' verdicts on it, as `plan` judged them.
    pub verdicts: Verdicts,
}

/// A saved plan read back, with the digest of the file's bytes for the run's record.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedPlanFile {
    /// The file.
    pub path: PathBuf,
    /// The lower-case hex sha256 of its bytes.
    pub sha256: String,
    /// Its content.
    pub plan: SavedPlan,
}

/// Reading or writing a saved plan failed.
#[derive(Debug, thiserror::Error)]
pub enum SavedPlanError {
    /// The file could not be read.
    #[error("cannot read the saved plan {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file could not be written.
    #[error("cannot write the plan to {}: {source}; check that its folder exists and is writable", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a saved plan.
    #[error(
        "{} is not a saved plan ({source}); make one with `rollcall plan --out FILE`",
        path.display()
    )]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// The file is a saved plan of another format version.
    #[error(
        "{} is a saved plan of format version {found}, this rollcall reads version \
         {SAVED_PLAN_VERSION}; make a new plan with this rollcall's `plan --out FILE`",
        path.display()
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// The version it declares (`none` when it declares none).
        found: String,
    },
}

/// Something that changed since a plan was saved, so that applying it would no longer do
/// what the operator reviewed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The plan is older than `[guard].plan_ttl`.
    Expired {
        /// How old it is.
        age: Duration,
        /// `[guard].plan_ttl`.
        ttl: Duration,
    },
    /// A source's rows differ (its checksum changed).
    SourceChanged {
        /// The source's name.
        source: String,
        /// Rows when the plan was made.
        saved_rows: u64,
        /// Rows now.
        rows: u64,
    },
    /// A source was read for the plan but is not configured now.
    SourceGone {
        /// The source's name.
        source: String,
    },
    /// A source is configured now that the plan was not made with.
    SourceAdded {
        /// The source's name.
        source: String,
    },
    /// The managed groups or their members differ.
    ActualChanged,
    /// Sources and membership are the same, yet the plan computed now differs (the
    /// directory resolved people differently, or the families' settings changed).
    PlanChanged,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Expired { age, ttl } => {
                // Whole seconds, rounded up so that an expired plan never reads as on time.
                let shown = Duration::from_secs(age.as_secs() + u64::from(age.subsec_nanos() > 0));
                write!(
                    f,
                    "it is {} old, older than [guard].plan_ttl = {}",
                    humantime::format_duration(shown),
                    humantime::format_duration(*ttl)
                )
            }
            Change::SourceChanged {
                source,
                saved_rows,
                rows,
            } => write!(
                f,
                "source `{source}` changed since (its checksum differs; {saved_rows} rows then, \
                 {rows} now)"
            ),
            Change::SourceGone { source } => {
                write!(f, "source `{source}` is no longer configured")
            }
            Change::SourceAdded { source } => write!(
                f,
                "source `{source}` is configured now but was not when the plan was made"
            ),
            Change::ActualChanged => write!(
                f,
                "the membership of the managed groups in Microsoft 365 changed since"
            ),
            Change::PlanChanged => write!(
                f,
                "the plan computed now differs from the saved one (the directory or the \
                 families' settings changed)"
            ),
        }
    }
}

impl SavedPlan {
    /// The saved form of `planned`, made at `created_at` with the configuration at `config`.
    pub fn of(
        planned: &Planned,
        config: &Path,
        accept_shrink: Vec<String>,
        created_at: DateTime<Utc>,
    ) -> SavedPlan {
        SavedPlan {
            version: SAVED_PLAN_VERSION,
            created_at,
            config: config.to_path_buf(),
            sources: planned.sources.clone(),
            actual: fingerprint(&planned.actual.actual),
            accept_shrink,
            plan: planned.plan.clone(),
            verdicts: planned.verdicts.clone(),
        }
    }

    /// What changed between this saved plan and `current` (the same computed again at
    /// `now`); empty when the saved plan may be applied. A plan made "in the future" (the
    /// clocks of two machines disagree) counts as new.
    pub fn changes_since(
        &self,
        current: &SavedPlan,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        let age = (now - self.created_at).to_std().unwrap_or_default();
        if age > ttl {
            changes.push(Change::Expired { age, ttl });
        }
        let saved: BTreeMap<&str, &SourceSummary> =
            self.sources.iter().map(|s| (s.name.as_str(), s)).collect();
        let now_read: BTreeMap<&str, &SourceSummary> = current
            .sources
            .iter()
            .map(|s| (s.name.as_str(), s))
            .collect();
        for (name, then) in &saved {
            match now_read.get(name) {
                Some(read) if read.checksum == then.checksum => {}
                Some(read) => changes.push(Change::SourceChanged {
                    source: (*name).to_owned(),
                    saved_rows: then.rows,
                    rows: read.rows,
                }),
                None => changes.push(Change::SourceGone {
                    source: (*name).to_owned(),
                }),
            }
        }
        for name in now_read.keys().filter(|name| !saved.contains_key(*name)) {
            changes.push(Change::SourceAdded {
                source: (*name).to_owned(),
            });
        }
        if self.actual != current.actual {
            changes.push(Change::ActualChanged);
        }
        // A different plan from different inputs is already explained by the changes above.
        if changes.iter().all(|c| matches!(c, Change::Expired { .. })) && self.plan != current.plan
        {
            changes.push(Change::PlanChanged);
        }
        changes
    }

    /// Writes the plan to `path` as JSON, readable by its owner only; the file is replaced
    /// whole, so a reader never sees half of it.
    pub fn write(&self, path: &Path) -> Result<(), SavedPlanError> {
        let error = |source| SavedPlanError::Write {
            path: path.to_path_buf(),
            source,
        };
        let folder = match path.parent() {
            Some(folder) if !folder.as_os_str().is_empty() => folder,
            _ => Path::new("."),
        };
        // A temporary file is created with mode 0600 on Unix.
        let mut file = tempfile::NamedTempFile::new_in(folder).map_err(error)?;
        let json = serde_json::to_vec_pretty(self).map_err(|e| error(e.into()))?;
        file.write_all(&json).map_err(error)?;
        file.write_all(b"\n").map_err(error)?;
        file.as_file().sync_all().map_err(error)?;
        file.persist(path).map_err(|e| error(e.error))?;
        Ok(())
    }

    /// Reads a saved plan; a file that is not one, or is of another format version, is an
    /// error naming the file.
    pub fn read(path: &Path) -> Result<SavedPlanFile, SavedPlanError> {
        let bytes = std::fs::read(path).map_err(|source| SavedPlanError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let plan = SavedPlan::parse(&bytes).map_err(|e| e.at(path))?;
        Ok(SavedPlanFile {
            path: path.to_path_buf(),
            sha256: hex::encode(Sha256::digest(&bytes)),
            plan,
        })
    }

    /// Parses a saved plan's bytes, checking the version before the rest.
    fn parse(bytes: &[u8]) -> Result<SavedPlan, Unreadable> {
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(Unreadable::Json)?;
        let version = value.get("version");
        if version.and_then(serde_json::Value::as_u64) != Some(u64::from(SAVED_PLAN_VERSION)) {
            return Err(Unreadable::Version(
                version.map_or_else(|| "none".to_owned(), ToString::to_string),
            ));
        }
        serde_json::from_value(value).map_err(Unreadable::Json)
    }
}

/// Why a saved plan's bytes do not parse, before the file's path is known.
#[derive(Debug)]
enum Unreadable {
    Json(serde_json::Error),
    Version(String),
}

impl Unreadable {
    fn at(self, path: &Path) -> SavedPlanError {
        let path = path.to_path_buf();
        match self {
            Unreadable::Json(source) => SavedPlanError::Parse { path, source },
            Unreadable::Version(found) => SavedPlanError::Version { path, found },
        }
    }
}

/// A digest of actual membership: sha256 (hex) over each managed list's key, group id and
/// sorted member ids, lists by key. Equal digests mean the same groups with the same members.
pub fn fingerprint(actual: &Actual) -> String {
    let mut digest = Sha256::new();
    for list in actual.lists() {
        // NUL and newline appear in neither keys nor ids, so no two states share a byte stream.
        digest.update(list.key.as_bytes());
        digest.update(b"\0");
        digest.update(list.group_id.as_bytes());
        for member in list.members.as_slice() {
            digest.update(b"\0");
            digest.update(member.to_string().as_bytes());
        }
        digest.update(b"\n");
    }
    hex::encode(digest.finalize())
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::plan::{ActualList, ObjectId, Totals};

    fn list(key: &str, group: &str, members: &[u128]) -> ActualList {
        ActualList {
            key: key.to_owned(),
            family: "modules".to_owned(),
            group_id: group.to_owned(),
            title: None,
            members: members.iter().copied().map(ObjectId::from_u128).collect(),
            owners: Default::default(),
        }
    }

    fn actual(lists: Vec<ActualList>) -> Actual {
        Actual::new(lists).unwrap()
    }

    #[test]
    fn fingerprint_ignores_order_and_sees_every_member_and_group() {
        let base = fingerprint(&actual(vec![
            list("a", "g1", &[1, 2]),
            list("b", "g2", &[3]),
        ]));
        assert_eq!(base.len(), 64);
        assert_eq!(
            base,
            fingerprint(&actual(vec![
                list("b", "g2", &[3]),
                list("a", "g1", &[2, 1])
            ]))
        );
        for changed in [
            vec![list("a", "g1", &[1]), list("b", "g2", &[3])],
            vec![list("a", "g1", &[1, 2]), list("b", "g2", &[3, 4])],
            vec![list("a", "g9", &[1, 2]), list("b", "g2", &[3])],
            vec![list("a", "g1", &[1, 2])],
            vec![list("a", "g1", &[1, 2, 3]), list("b", "g2", &[])],
        ] {
            assert_ne!(base, fingerprint(&actual(changed)));
        }
    }

    fn source(name: &str, rows: u64, checksum: &str) -> SourceSummary {
        SourceSummary {
            name: name.to_owned(),
            family: "modules".to_owned(),
            rows,
            distinct: rows,
            checksum: checksum.to_owned(),
            ..SourceSummary::default()
        }
    }

    const MADE: &str = "2026-09-01T10:00:00Z";

    fn saved() -> SavedPlan {
        SavedPlan {
            version: SAVED_PLAN_VERSION,
            created_at: MADE.parse().unwrap(),
            config: PathBuf::from("/etc/rollcall/rollcall.toml"),
            sources: vec![source("enrolments", 100, "aa"), source("staff", 10, "bb")],
            actual: "f1".to_owned(),
            accept_shrink: Vec::new(),
            plan: Plan::default(),
            verdicts: Verdicts::default(),
        }
    }

    fn at(offset_secs: i64) -> DateTime<Utc> {
        MADE.parse::<DateTime<Utc>>().unwrap() + chrono::Duration::seconds(offset_secs)
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[rstest]
    #[case::just_made(0)]
    #[case::at_the_ttl(3600)]
    #[case::from_a_clock_ahead_of_ours(-600)]
    fn an_unchanged_plan_within_its_ttl_may_be_applied(#[case] age_secs: i64) {
        assert_eq!(saved().changes_since(&saved(), at(age_secs), HOUR), vec![]);
    }

    #[test]
    fn a_plan_older_than_its_ttl_is_refused_with_its_age() {
        let changes = saved().changes_since(&saved(), at(3601), HOUR);
        assert_eq!(
            changes,
            vec![Change::Expired {
                age: Duration::from_secs(3601),
                ttl: HOUR
            }]
        );
        let text = changes[0].to_string();
        assert!(
            text.contains("1h 1s") && text.contains("plan_ttl = 1h"),
            "{text}"
        );
    }

    #[test]
    fn a_changed_source_is_named_with_its_rows() {
        let mut now = saved();
        now.sources[1] = source("staff", 9, "cc");
        let changes = saved().changes_since(&now, at(1), HOUR);
        assert_eq!(
            changes,
            vec![Change::SourceChanged {
                source: "staff".to_owned(),
                saved_rows: 10,
                rows: 9
            }]
        );
        assert!(changes[0].to_string().contains("source `staff` changed"));
    }

    #[test]
    fn sources_gone_or_added_since_are_changes() {
        let mut now = saved();
        now.sources = vec![source("enrolments", 100, "aa"), source("visitors", 3, "dd")];
        assert_eq!(
            saved().changes_since(&now, at(1), HOUR),
            vec![
                Change::SourceGone {
                    source: "staff".to_owned()
                },
                Change::SourceAdded {
                    source: "visitors".to_owned()
                },
            ]
        );
    }

    #[test]
    fn changed_membership_is_refused_and_explains_the_different_plan() {
        let mut now = saved();
        now.actual = "f2".to_owned();
        now.plan.totals.adds = 1;
        assert_eq!(
            saved().changes_since(&now, at(1), HOUR),
            vec![Change::ActualChanged]
        );
    }

    #[test]
    fn a_different_plan_from_the_same_inputs_is_refused() {
        let mut now = saved();
        now.plan.totals = Totals {
            adds: 3,
            ..Totals::default()
        };
        assert_eq!(
            saved().changes_since(&now, at(4000), HOUR),
            vec![
                Change::Expired {
                    age: Duration::from_secs(4000),
                    ttl: HOUR
                },
                Change::PlanChanged
            ]
        );
    }

    #[test]
    fn a_saved_plan_reads_back_from_its_file_with_the_files_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        saved().write(&path).unwrap();
        let read = SavedPlan::read(&path).unwrap();
        assert_eq!(read.plan, saved());
        assert_eq!(
            read.sha256,
            hex::encode(Sha256::digest(std::fs::read(&path).unwrap()))
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[rstest]
    #[case::not_json(b"rm -rf /".as_slice(), "is not a saved plan")]
    #[case::json_without_a_version(b"{\"plan\": {}}".as_slice(), "format version none")]
    #[case::an_older_version(b"{\"version\": 1}".as_slice(), "format version 1")]
    #[case::another_version(b"{\"version\": 3}".as_slice(), "format version 3")]
    #[case::a_version_without_the_rest(b"{\"version\": 2}".as_slice(), "is not a saved plan")]
    fn files_that_are_not_saved_plans_of_this_version_are_refused_by_name(
        #[case] bytes: &[u8],
        #[case] expected: &str,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        std::fs::write(&path, bytes).unwrap();
        let message = SavedPlan::read(&path).unwrap_err().to_string();
        assert!(
            message.contains(expected) && message.contains("plan.json"),
            "{message}"
        );
    }
}
