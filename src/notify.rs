//! Webhook notification (`[notify]`): one JSON POST when runs go wrong (a run fails, a source
//! check or a guard stops it, `verify` finds drift, operations fail for good) and one when they are good again, never one
//! per run. The last state told about is kept in the state store, so cron invocations and
//! `serve` share it. Delivering is best effort: a failure is a logged warning and never
//! changes a run's outcome; the state is only recorded once a message went through, so the
//! next run tries again.

use std::time::Duration;

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::config::Config;
use crate::exit::Exit;
use crate::reconcile::{RunReport, drift_text, holder_name};
use crate::store::{RunId, RunKind, RunStatus, Store};

/// The state store's name for the webhook's last notified state.
const CHANNEL: &str = "webhook";

/// How long one POST may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Pauses before the second and third attempt.
const BACKOFF: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(2)];

/// How many lists (or verdicts) a message names before it only counts them.
const LISTS_SHOWN: usize = 20;

/// A run's end, as the engine records it.
#[derive(Debug, Clone, Copy)]
pub struct Ended<'a> {
    /// The run.
    pub run: RunId,
    /// What kind of run.
    pub kind: RunKind,
    /// Its final status.
    pub status: RunStatus,
    /// Its exit code.
    pub exit: Exit,
    /// Its report.
    pub report: &'a RunReport,
}

/// How things stand after a run, as far as a person should be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Runs succeed and `verify` finds no drift.
    Ok,
    /// A run failed (exit 1).
    Failed,
    /// A run stopped before any change for a reason other than a guard: a faulty or
    /// incomplete source, a list Microsoft 365 would refuse, a stale saved plan (exit 3).
    Stopped,
    /// A guard stopped a run (exit 3).
    Tripped,
    /// `verify` found drift (exit 5).
    Drift,
    /// A run applied every list but some, which it held, each for a reason of its own
    /// (exit 7).
    Held,
    /// A run ended with operations that failed for good (a member gone from the directory,
    /// a group deleted under it): exit 0, but not every planned change is in Microsoft 365.
    Incomplete,
}

impl Condition {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Ok => "ok",
            Condition::Failed => "failed",
            Condition::Stopped => "stopped",
            Condition::Tripped => "tripped",
            Condition::Drift => "drift",
            Condition::Incomplete => "incomplete",
            Condition::Held => "held",
        }
    }

    /// What a run's end says; `None` when it says nothing either way: a skipped run (the
    /// lease was held, or paused) or an interrupted one (a signal, a pause, an unreachable
    /// Microsoft 365: the next run resumes it and tells).
    pub fn of(ended: &Ended<'_>) -> Option<Condition> {
        match (ended.status, ended.exit) {
            (RunStatus::Skipped | RunStatus::Interrupted, _) => None,
            (_, Exit::Drift) => Some(Condition::Drift),
            (_, Exit::Stopped) if !ended.report.tripped.is_empty() => Some(Condition::Tripped),
            (_, Exit::Stopped) => Some(Condition::Stopped),
            (RunStatus::Succeeded, Exit::Held) => Some(Condition::Held),
            (RunStatus::Succeeded, Exit::Success) if ended.report.applied.failed > 0 => {
                Some(Condition::Incomplete)
            }
            (RunStatus::Succeeded, Exit::Success) => Some(Condition::Ok),
            (RunStatus::Failed, _) | (_, Exit::Failed) => Some(Condition::Failed),
            _ => None,
        }
    }
}

/// The message a change from `previous` (the last notified state) to `now` calls for, by its
/// event name: the new state's name, or `recovered` when things are good again. `None` when
/// nothing changed, or when things were never reported bad.
pub fn event(previous: Option<&str>, now: Condition) -> Option<&'static str> {
    match (previous, now) {
        (None | Some("ok"), Condition::Ok) => None,
        (Some(_), Condition::Ok) => Some("recovered"),
        (Some(previous), now) if previous == now.as_str() => None,
        (_, now) => Some(now.as_str()),
    }
}

/// The JSON body for `event` about `ended`.
pub fn message(ended: &Ended<'_>, event: &str, previous: Option<&str>) -> Value {
    let report = ended.report;
    let summary = summary(ended, event, previous);
    let mut lists: Vec<String> = report.drifted.iter().map(drift_text).collect();
    lists.extend(report.held.iter().map(|h| {
        format!(
            "{} held ({}): {}; to release: {}",
            h.list, h.reason, h.message, h.release
        )
    }));
    lists.extend(report.tripped.iter().map(|v| {
        format!(
            "{}{}: {} over the limit of {}",
            v.guard.key(),
            v.list
                .as_deref()
                .map_or_else(String::new, |l| format!(" on {l}")),
            v.observed,
            v.limit
        )
    }));
    if lists.len() > LISTS_SHOWN {
        let more = lists.len() - LISTS_SHOWN;
        lists.truncate(LISTS_SHOWN);
        lists.push(format!("… and {more} more"));
    }
    let host = holder_name()
        .rsplit_once(':')
        .map_or_else(holder_name, |(host, _)| host.to_owned());
    json!({
        "event": event,
        "previous": previous,
        "run": ended.run.0,
        "kind": ended.kind.as_str(),
        "status": ended.status.as_str(),
        "exit_code": ended.exit.code(),
        "summary": summary,
        "text": summary,
        "lists": lists,
        "drifted": report.drift,
        "held": report.held,
        "failed_operations": report.applied.failed,
        "host": host,
        "time": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "version": env!("CARGO_PKG_VERSION"),
    })
}

/// One line saying what happened.
fn summary(ended: &Ended<'_>, event: &str, previous: Option<&str>) -> String {
    let report = ended.report;
    let what = format!("rollcall {} (run {})", ended.kind, ended.run);
    let error = report
        .error
        .as_deref()
        .and_then(|e| e.lines().next())
        .unwrap_or("see `rollcall show RUN`");
    match event {
        "recovered" => format!(
            "{what} succeeded: back to normal after `{}`",
            previous.unwrap_or("?")
        ),
        "drift" => format!(
            "{what} found {} drifted lists; `rollcall run` repairs them",
            report.drift.unwrap_or(report.drifted.len() as u64)
        ),
        "tripped" => format!("{what} stopped before any change, a guard tripped: {error}"),
        "stopped" => match &report.failed_check {
            Some(check) => format!(
                "{what} stopped before any change: source check `{}` failed on source {}: {error}",
                check.check, check.source
            ),
            None => format!("{what} stopped before any change: {error}"),
        },
        "held" => format!(
            "{what} applied every list but {} held one(s): {}",
            report.held.len(),
            report
                .held
                .iter()
                .map(|h| format!("{} ({})", h.list, h.reason))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "incomplete" => format!(
            "{what} finished, but {} operations failed for good; `rollcall show {}` lists them \
             with their Microsoft Graph error codes",
            report.applied.failed, ended.run
        ),
        _ => format!("{what} failed: {error}"),
    }
}

/// Tells the webhook about a change of state, if `[notify]` is set and the run's end changes
/// it. Never fails: a problem is a logged warning.
pub async fn notify(config: &Config, store: &Store, ended: &Ended<'_>) {
    let Some(notify) = &config.notify else {
        return;
    };
    let Some(now) = Condition::of(ended) else {
        return;
    };
    let previous = match store.notified(CHANNEL).await {
        Ok(previous) => previous.map(|p| p.state),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the last notified state; notifying as if there were none");
            None
        }
    };
    let Some(event) = event(previous.as_deref(), now) else {
        return;
    };
    let url = match notify.webhook_url() {
        Ok(url) => url,
        Err(e) => {
            tracing::warn!(
                variable = %notify.webhook_url_env,
                error = %e,
                "no webhook URL; the notification is not sent"
            );
            return;
        }
    };
    let body = message(ended, event, previous.as_deref());
    match deliver(&url, &body).await {
        Ok(()) => {
            tracing::info!(event, run = %ended.run, "notification sent");
            if let Err(e) = store.set_notified(CHANNEL, now.as_str(), ended.run).await {
                tracing::warn!(error = %e, "could not record the notification; the next change may be told twice");
            }
        }
        Err(e) => tracing::warn!(
            event,
            run = %ended.run,
            error = %e,
            "the notification could not be delivered; the next run tries again"
        ),
    }
}

/// POSTs `body` as JSON, trying up to three times on no reply, 429 and 5xx.
async fn deliver(url: &SecretString, body: &Value) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| format!("no HTTP client: {e}"))?;
    let mut attempt = 0;
    loop {
        let outcome = client.post(url.expose_secret()).json(body).send().await;
        // The URL usually embeds a token: errors never show it.
        let (error, again) = match outcome {
            Ok(reply) if reply.status().is_success() => return Ok(()),
            Ok(reply) => {
                let status = reply.status();
                (
                    format!("the webhook answered {status}"),
                    status.as_u16() == 429 || status.is_server_error(),
                )
            }
            Err(e) => (e.without_url().to_string(), true),
        };
        match BACKOFF.get(attempt) {
            Some(pause) if again => {
                tracing::debug!(error, attempt, "notification not delivered; trying again");
                tokio::time::sleep(*pause).await;
                attempt += 1;
            }
            _ => return Err(format!("{error} (after {} attempts)", attempt + 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{GuardKind, Outcome, Verdict};
    use crate::reconcile::Drift;

    fn ended(status: RunStatus, exit: Exit, report: &RunReport) -> Ended<'_> {
        Ended {
            run: RunId(7),
            kind: RunKind::Run,
            status,
            exit,
            report,
        }
    }

    fn tripped() -> RunReport {
        RunReport {
            tripped: vec![Verdict {
                guard: GuardKind::MaxRemovalsPerRun,
                list: None,
                limit: 500,
                observed: 600,
                list_size: None,
                percent: None,
                outcome: Outcome::Tripped,
            }],
            error: Some("600 removals planned".to_owned()),
            ..RunReport::default()
        }
    }

    #[test]
    fn a_run_that_held_lists_is_its_own_condition_naming_each_list_and_its_release() {
        let report = RunReport {
            held: vec![crate::reconcile::HeldList {
                list: "mod b".to_owned(),
                reason: "invalid_name".to_owned(),
                message: "it renders the mailNickname `mod b`".to_owned(),
                release: "fix the list key in source enrolments".to_owned(),
            }],
            ..RunReport::default()
        };
        let held = ended(RunStatus::Succeeded, Exit::Held, &report);
        assert_eq!(Condition::of(&held), Some(Condition::Held));
        assert_eq!(event(Some("ok"), Condition::Held), Some("held"));
        let body = message(&held, "held", Some("ok"));
        assert_eq!(body["exit_code"], 7);
        assert_eq!(body["held"][0]["reason"], "invalid_name");
        let line = body["lists"][0].as_str().unwrap_or_default();
        assert!(
            line.contains("mod b held (invalid_name)") && line.contains("fix the list key"),
            "{line}"
        );
        assert!(
            body["summary"]
                .as_str()
                .unwrap_or_default()
                .contains("1 held"),
            "{body}"
        );
    }

    #[test]
    fn run_ends_map_to_conditions() {
        let plain = RunReport::default();
        let trip = tripped();
        let mut incomplete = RunReport::default();
        incomplete.applied.failed = 2;
        let cases = [
            (
                RunStatus::Succeeded,
                Exit::Success,
                &plain,
                Some(Condition::Ok),
            ),
            (
                RunStatus::Succeeded,
                Exit::Drift,
                &plain,
                Some(Condition::Drift),
            ),
            (
                RunStatus::Failed,
                Exit::Failed,
                &plain,
                Some(Condition::Failed),
            ),
            (
                RunStatus::Stopped,
                Exit::Stopped,
                &plain,
                Some(Condition::Stopped),
            ),
            (
                RunStatus::Stopped,
                Exit::Stopped,
                &trip,
                Some(Condition::Tripped),
            ),
            (
                RunStatus::Succeeded,
                Exit::Success,
                &incomplete,
                Some(Condition::Incomplete),
            ),
            (RunStatus::Interrupted, Exit::Interrupted, &plain, None),
            (RunStatus::Skipped, Exit::Skipped, &plain, None),
        ];
        for (status, exit, report, expected) in cases {
            assert_eq!(
                Condition::of(&ended(status, exit, report)),
                expected,
                "{status} {exit:?}"
            );
        }
    }

    #[test]
    fn one_message_per_change_of_state() {
        assert_eq!(event(None, Condition::Ok), None);
        assert_eq!(event(Some("ok"), Condition::Ok), None);
        assert_eq!(event(None, Condition::Tripped), Some("tripped"));
        assert_eq!(event(Some("ok"), Condition::Tripped), Some("tripped"));
        assert_eq!(event(Some("tripped"), Condition::Tripped), None);
        assert_eq!(event(Some("tripped"), Condition::Drift), Some("drift"));
        assert_eq!(event(Some("drift"), Condition::Ok), Some("recovered"));
        assert_eq!(event(Some("failed"), Condition::Failed), None);
    }

    #[test]
    fn a_message_names_the_run_the_event_and_each_list() {
        let report = RunReport {
            drift: Some(2),
            drifted: vec![
                Drift {
                    list: "mod-a".to_owned(),
                    missing: 2,
                    extra: 1,
                    group_missing: false,
                    title: false,
                    owners_missing: 0,
                    owners_extra: 0,
                    held: None,
                    visibility: None,
                },
                Drift {
                    list: "mod-b".to_owned(),
                    missing: 4,
                    extra: 0,
                    group_missing: true,
                    title: false,
                    owners_missing: 0,
                    owners_extra: 0,
                    held: None,
                    visibility: None,
                },
            ],
            ..RunReport::default()
        };
        let body = message(
            &ended(RunStatus::Succeeded, Exit::Drift, &report),
            "drift",
            Some("ok"),
        );
        assert_eq!(body["event"], "drift");
        assert_eq!(body["run"], 7);
        assert_eq!(body["kind"], "run");
        assert_eq!(body["exit_code"], 5);
        assert_eq!(
            body["lists"],
            json!([
                "mod-a: 2 missing, 1 extra",
                "mod-b: no managed group (4 members wanted)"
            ])
        );
        assert!(
            body["summary"]
                .as_str()
                .unwrap()
                .contains("2 drifted lists")
        );
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
        assert!(body["host"].as_str().is_some_and(|h| !h.is_empty()));

        let trip = tripped();
        let body = message(
            &ended(RunStatus::Stopped, Exit::Stopped, &trip),
            "tripped",
            None,
        );
        assert_eq!(
            body["lists"],
            json!(["max_removals_per_run: 600 over the limit of 500"])
        );
        assert!(
            body["text"]
                .as_str()
                .unwrap()
                .contains("600 removals planned"),
            "{body}"
        );
    }
}
