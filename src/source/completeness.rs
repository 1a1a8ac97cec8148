//! Completeness: is a source that was read whole also plausibly all there? Pure: a source's
//! counts, its settings and the last accepted snapshot in, a verdict out.
//!
//! A migration that copied half the rows reads without a single error; only its size gives
//! it away. So before anything is planned, each source must have rows (unless
//! `allow_empty`), at least `min_rows` of them, and must not have shrunk by more than
//! `[guard].max_source_shrink_percent` against the last snapshot a run went ahead on.

use std::collections::{BTreeMap, BTreeSet};

use super::{SourceError, SourceSummary};
use crate::config::{Config, SourceConfig};

/// What a source is checked against besides its own settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Baseline {
    /// Rows of the source's last accepted snapshot; `None` on its first run.
    pub accepted_rows: Option<u64>,
    /// `[guard].max_source_shrink_percent`.
    pub max_shrink_percent: u8,
    /// The operator accepted a shrink of this source for this run (`--accept-shrink`).
    pub shrink_accepted: bool,
}

/// Checks one source's read against its settings and baseline. `Ok` carries a warning for
/// the run report when a shrink over the limit went ahead because the operator accepted it.
pub fn check(
    summary: &SourceSummary,
    source: &SourceConfig,
    baseline: Baseline,
) -> Result<Option<String>, SourceError> {
    let name = || summary.name.clone();
    if summary.rows == 0 && !source.allow_empty {
        return Err(SourceError::Empty {
            source_name: name(),
        });
    }
    if summary.rows < source.min_rows {
        return Err(SourceError::MinRows {
            source_name: name(),
            rows: summary.rows,
            min_rows: source.min_rows,
        });
    }
    let Some(accepted) = baseline.accepted_rows else {
        return Ok(None);
    };
    let lost = accepted.saturating_sub(summary.rows);
    // lost / accepted > limit / 100, in integers: exactly at the limit passes.
    let over =
        u128::from(lost) * 100 > u128::from(accepted) * u128::from(baseline.max_shrink_percent);
    if !over {
        return Ok(None);
    }
    let percent = lost as f64 * 100.0 / accepted as f64;
    if baseline.shrink_accepted {
        return Ok(Some(format!(
            "source `{}` shrank by {percent:.1}% ({accepted} → {} rows), over the {}% limit; \
             it went ahead because --accept-shrink {} was given",
            summary.name, summary.rows, baseline.max_shrink_percent, summary.name
        )));
    }
    Err(SourceError::Shrink {
        source_name: name(),
        rows: summary.rows,
        accepted,
        percent,
        limit: baseline.max_shrink_percent,
    })
}

/// Checks every source read, in configuration order; the first failure is the error.
/// `accepted_rows` holds each source's last accepted row count, `accepted_shrinks` the
/// sources named by `--accept-shrink`. `Ok` carries the warnings of accepted shrinks.
pub fn check_all(
    config: &Config,
    summaries: &[SourceSummary],
    accepted_rows: &BTreeMap<String, u64>,
    accepted_shrinks: &BTreeSet<String>,
) -> Result<Vec<String>, SourceError> {
    let mut warnings = Vec::new();
    for summary in summaries {
        let Some(source) = config.sources.iter().find(|s| s.name == summary.name) else {
            return Err(SourceError::Config {
                source_name: summary.name.clone(),
                message: "was read but is not in the configuration".to_owned(),
            });
        };
        let baseline = Baseline {
            accepted_rows: accepted_rows.get(&summary.name).copied(),
            max_shrink_percent: config.guard.max_source_shrink_percent,
            shrink_accepted: accepted_shrinks.contains(&summary.name),
        };
        warnings.extend(check(summary, source, baseline)?);
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rstest::rstest;

    use super::*;
    use crate::config::Config;

    fn source(min_rows: u64, allow_empty: bool) -> SourceConfig {
        let text = format!(
            "[[family]]\nname = \"modules\"\n\n[[source]]\nname = \"enrolments\"\nfamily = \"modules\"\n\
             kind = \"csv\"\npath = \"modules.csv\"\nmember_key = \"upn\"\nmin_rows = {min_rows}\n\
             allow_empty = {allow_empty}\n"
        );
        let mut config = Config::parse(&text, Path::new("rollcall.toml")).unwrap();
        config.sources.remove(0)
    }

    fn summary(rows: u64) -> SourceSummary {
        SourceSummary {
            name: "enrolments".to_owned(),
            family: "modules".to_owned(),
            rows,
            distinct: rows,
            checksum: String::new(),
            ..SourceSummary::default()
        }
    }

    fn baseline(accepted_rows: Option<u64>, shrink_accepted: bool) -> Baseline {
        Baseline {
            accepted_rows,
            max_shrink_percent: 10,
            shrink_accepted,
        }
    }

    /// The check id a source fails with, or `"ok"`.
    fn verdict(rows: u64, min_rows: u64, allow_empty: bool, accepted: Option<u64>) -> &'static str {
        match check(
            &summary(rows),
            &source(min_rows, allow_empty),
            baseline(accepted, false),
        ) {
            Ok(_) => "ok",
            Err(e) => e.check(),
        }
    }

    #[rstest]
    #[case::zero_rows_fail(0, 0, false, None, "empty")]
    #[case::zero_rows_fail_even_with_a_baseline_of_zero(0, 0, false, Some(0), "empty")]
    #[case::zero_rows_pass_when_allowed_on_a_first_run(0, 0, true, None, "ok")]
    #[case::allowed_zero_still_shrinks_against_a_baseline(0, 0, true, Some(50), "shrink")]
    #[case::one_row_passes(1, 0, false, None, "ok")]
    #[case::exactly_min_rows_passes(100, 100, false, None, "ok")]
    #[case::one_below_min_rows_fails(99, 100, false, None, "min-rows")]
    #[case::a_first_run_has_no_shrink_check(1, 0, false, None, "ok")]
    #[case::exactly_at_the_shrink_limit_passes(900, 0, false, Some(1000), "ok")]
    #[case::one_row_beyond_the_shrink_limit_trips(899, 0, false, Some(1000), "shrink")]
    #[case::a_fractional_limit_rounds_toward_passing(905, 0, false, Some(1005), "ok")]
    #[case::just_past_a_fractional_limit_trips(904, 0, false, Some(1005), "shrink")]
    #[case::growth_passes(5000, 0, false, Some(1000), "ok")]
    #[case::min_rows_is_checked_before_shrink(10, 100, false, Some(1000), "min-rows")]
    fn completeness_verdicts(
        #[case] rows: u64,
        #[case] min_rows: u64,
        #[case] allow_empty: bool,
        #[case] accepted: Option<u64>,
        #[case] expected: &str,
    ) {
        assert_eq!(verdict(rows, min_rows, allow_empty, accepted), expected);
    }

    #[test]
    fn a_shrink_names_both_counts_the_percentage_and_how_to_accept_it() {
        let error = check(
            &summary(700),
            &source(0, false),
            baseline(Some(1000), false),
        )
        .unwrap_err();
        assert_eq!(error.source_name(), "enrolments");
        let message = error.to_string();
        for part in [
            "source `enrolments`",
            "700 rows",
            "1000",
            "30.0%",
            "10%",
            "--accept-shrink enrolments",
        ] {
            assert!(message.contains(part), "`{part}` missing in: {message}");
        }
    }

    #[test]
    fn an_accepted_shrink_goes_ahead_with_a_warning() {
        let warning = check(&summary(700), &source(0, false), baseline(Some(1000), true))
            .unwrap()
            .unwrap();
        assert!(
            warning.contains("30.0%") && warning.contains("--accept-shrink enrolments"),
            "{warning}"
        );
        let within = check(&summary(950), &source(0, false), baseline(Some(1000), true));
        assert_eq!(within.unwrap(), None);
    }

    #[test]
    fn accepting_a_shrink_does_not_lift_min_rows_or_empty() {
        let empty = check(&summary(0), &source(0, false), baseline(Some(1000), true));
        assert_eq!(empty.unwrap_err().check(), "empty");
        let few = check(
            &summary(10),
            &source(100, false),
            baseline(Some(1000), true),
        );
        assert_eq!(few.unwrap_err().check(), "min-rows");
    }

    #[test]
    fn every_source_is_checked_and_the_first_failure_in_configuration_order_wins() {
        let text = "[guard]\nmax_source_shrink_percent = 10\n\n[[family]]\nname = \"modules\"\n\n\
                    [[source]]\nname = \"a\"\nfamily = \"modules\"\nkind = \"csv\"\npath = \"a.csv\"\n\
                    member_key = \"upn\"\n\n[[source]]\nname = \"b\"\nfamily = \"modules\"\n\
                    kind = \"csv\"\npath = \"b.csv\"\nmember_key = \"upn\"\nmin_rows = 5\n";
        let config = Config::parse(text, Path::new("rollcall.toml")).unwrap();
        let named = |name: &str, rows| SourceSummary {
            name: name.to_owned(),
            ..summary(rows)
        };
        let accepted: BTreeMap<String, u64> = [("a".to_owned(), 100), ("b".to_owned(), 100)].into();
        let shrink_a: BTreeSet<String> = ["a".to_owned()].into();

        let warnings = check_all(
            &config,
            &[named("a", 50), named("b", 95)],
            &accepted,
            &shrink_a,
        )
        .unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("source `a`"), "{warnings:?}");

        let both_fail = [named("a", 50), named("b", 1)];
        let error = check_all(&config, &both_fail, &accepted, &BTreeSet::new()).unwrap_err();
        assert_eq!((error.source_name(), error.check()), ("a", "shrink"));
        let error = check_all(&config, &both_fail, &accepted, &shrink_a).unwrap_err();
        assert_eq!((error.source_name(), error.check()), ("b", "min-rows"));
    }

    #[test]
    fn empty_and_min_rows_messages_say_what_to_do() {
        let empty = check(&summary(0), &source(0, false), baseline(None, false)).unwrap_err();
        assert!(empty.to_string().contains("allow_empty = true"), "{empty}");
        let few = check(&summary(99), &source(100, false), baseline(None, false)).unwrap_err();
        let message = few.to_string();
        assert!(
            message.contains("99 rows") && message.contains("min_rows = 100"),
            "{message}"
        );
    }
}
