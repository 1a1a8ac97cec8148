//! `status`, `runs`, `show RUN`, `pause` and `unpause`: what the state database says.

use chrono::{DateTime, Utc};
use clap::Args;

use super::Context;
use super::reconcile::Output;
use crate::exit::{CommandError, Exit};
use crate::plan::{Outcome, Verdict};
use crate::reconcile::{Approval, Detailed, RunReport, holder_name, seconds};
use crate::store::{Run, RunId, RunKind, Store};

/// `rollcall runs`.
#[derive(Debug, Clone, Args)]
pub struct RunsArgs {
    /// How many of the latest runs to list.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// A readable table or one JSON document.
    #[arg(long, value_enum, default_value_t = Output::Human)]
    pub output: Output,
}

/// `rollcall show RUN`.
#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    /// The run's id (see `rollcall runs`).
    pub run: i64,
    /// Readable text or one JSON document.
    #[arg(long, value_enum, default_value_t = Output::Human)]
    pub output: Output,
}

/// `rollcall pause`.
#[derive(Debug, Clone, Args)]
pub struct PauseArgs {
    /// Why (shown by `status` and in skipped runs).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// When the pause ends by itself (RFC 3339, e.g. 2026-11-22T06:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub until: Option<DateTime<Utc>>,
}

async fn store(context: &Context) -> Result<Store, CommandError> {
    let url = super::state_url(context)?;
    Store::open(&url).await.map_err(CommandError::failed)
}

/// `rollcall status`: lock holder, pause, last runs, pending operations, last drift.
pub async fn status(context: &Context) -> Result<Exit, CommandError> {
    let store = store(context).await?;
    let now = Utc::now();
    match store.current_lease().await.map_err(CommandError::failed)? {
        Some(lease) if lease.is_held(now) => println!(
            "lock: held by {} since {} (expires {})",
            lease.holder.unwrap_or_default(),
            lease.acquired_at.format("%F %T"),
            lease.expires_at.format("%F %T")
        ),
        _ => println!("lock: free"),
    }
    let pause = store.pause_state().await.map_err(CommandError::failed)?;
    if pause.paused {
        println!(
            "paused: yes, by {} ({}){}",
            pause.by.unwrap_or_default(),
            pause.reason.unwrap_or_default(),
            pause
                .until
                .map_or_else(String::new, |u| format!(" until {}", u.format("%F %T")))
        );
    } else {
        println!("paused: no");
    }
    let pending = store
        .pending_everywhere()
        .await
        .map_err(CommandError::failed)?;
    println!("pending operations: {pending}");
    let config = context.config()?;
    if let Some(certificate) = config
        .graph
        .as_ref()
        .and_then(crate::config::GraphConfig::certificate)
    {
        println!(
            "certificate: {} (thumbprint {}) expires {}",
            certificate.path.display(),
            certificate.thumbprints.sha1_hex(),
            certificate.not_after.format("%F %T UTC")
        );
    }
    for warning in config.warnings() {
        println!("warning: {warning}");
    }
    let runs = store.recent_runs(200).await.map_err(CommandError::failed)?;
    if let Some(verify) = runs
        .iter()
        .find(|r| r.kind == RunKind::Verify && r.exit_code.is_some())
    {
        let drift = report(verify).drift.unwrap_or(0);
        println!(
            "last verify: run {} at {}: {drift} lists drifted",
            verify.id,
            verify.started_at.format("%F %T")
        );
    }
    let last = runs.iter().find(|r| {
        matches!(r.kind, RunKind::Run | RunKind::Rebuild | RunKind::Apply) && r.exit_code.is_some()
    });
    if let Some(line) = last.and_then(tripped_line) {
        println!("{line}");
    }
    if let Some(run) = last {
        let report = report(run);
        if !report.leaving.is_empty() {
            println!(
                "removal grace: {} members leaving {} lists in the last run ({}), each once due",
                report.totals.leaving,
                report.leaving.len(),
                run.id
            );
        }
        for pending in &report.leaving {
            println!("  {}", crate::reconcile::pending_text(pending));
        }
        let held = report.held;
        if !held.is_empty() {
            println!("held lists: {} in the last run ({})", held.len(), run.id);
        }
        for list in held {
            println!(
                "  {} ({}): {}; to release: {}",
                list.list, list.reason, list.message, list.release
            );
        }
    }
    println!("last runs:");
    print_runs(runs.iter().take(5));
    store.close().await;
    Ok(Exit::Success)
}

/// The guards that stopped `run`, if any: one line naming each with its numbers.
fn tripped_line(run: &Run) -> Option<String> {
    let tripped = report(run).tripped;
    if tripped.is_empty() {
        return None;
    }
    let guards: Vec<String> = tripped.iter().map(verdict_text).collect();
    Some(format!(
        "guards: the last run ({}) was stopped by {}; `rollcall show {}` has the plan's \
         verdicts, `rollcall plan` shows them now",
        run.id,
        guards.join(", "),
        run.id
    ))
}

/// A verdict in a few words: its `[guard]` key, the list, and observed against the limit.
fn verdict_text(verdict: &Verdict) -> String {
    let key = verdict.guard.key();
    let list = verdict
        .list
        .as_deref()
        .map_or_else(String::new, |l| format!(" on {l}"));
    format!(
        "{key}{list} ({}, at most {} allowed)",
        verdict.observed, verdict.limit
    )
}

/// `rollcall runs`: run history, newest first.
pub async fn runs(context: &Context, args: RunsArgs) -> Result<Exit, CommandError> {
    let store = store(context).await?;
    let runs = store
        .recent_runs(args.limit)
        .await
        .map_err(CommandError::failed)?;
    store.close().await;
    match args.output {
        Output::Json => println!(
            "{}",
            serde_json::Value::Array(runs.iter().map(run_json).collect())
        ),
        Output::Human => print_runs(runs.iter()),
    }
    Ok(Exit::Success)
}

/// How long a run took, in milliseconds, once it ended.
fn took_ms(run: &Run) -> Option<u64> {
    run.finished_at
        .map(|end| (end - run.started_at).num_milliseconds().max(0) as u64)
}

/// What the operator approved for a run: from its report, or from the run's approvals
/// record for reports written before reports carried it.
fn approval(run: &Run, report: &RunReport) -> Option<Approval> {
    report
        .approval
        .clone()
        .or_else(|| run.approvals.as_ref().and_then(Approval::from_record))
}

/// What `runs` and `show` say of every run in JSON, with `more` laid over it.
fn run_json_with(run: &Run, more: serde_json::Value) -> serde_json::Value {
    let mut json = serde_json::json!({
        "id": run.id.0,
        "kind": run.kind.as_str(),
        "status": run.status.as_str(),
        "holder": run.holder,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "exit_code": run.exit_code,
    });
    if let (Some(json), serde_json::Value::Object(more)) = (json.as_object_mut(), more) {
        json.extend(more);
    }
    json
}

/// One line of `runs --output json`.
fn run_json(run: &Run) -> serde_json::Value {
    let report = report(run);
    run_json_with(
        run,
        serde_json::json!({
            "duration_ms": took_ms(run),
            "added": report.lists.iter().map(|l| l.added).sum::<u64>(),
            "removed": report.lists.iter().map(|l| l.removed).sum::<u64>(),
            "created": report.lists.iter().filter(|l| l.created).count(),
            "failed": report.applied.failed,
            "pending": report.applied.pending,
            "unresolved": report.unresolved,
            "drift": report.drift,
            "tripped": report.tripped.iter().map(|v| v.guard.key()).collect::<Vec<_>>(),
            "graph_requests": report.graph.requests,
            "throttled": report.graph.throttled,
            "approval": approval(run, &report),
            "error": report.error,
        }),
    )
}

fn print_runs<'a>(runs: impl Iterator<Item = &'a Run>) {
    println!(
        "{:>6}  {:<13}  {:<11}  {:<19}  {:>8}  {:>4}  {:>13}  {:>6}  {:>10}  {:>7}  {:>5}  approved",
        "run",
        "kind",
        "status",
        "started (UTC)",
        "took",
        "exit",
        "members",
        "failed",
        "unresolved",
        "graph",
        "429s"
    );
    for run in runs {
        let took = took_ms(run).map_or_else(|| "-".to_owned(), seconds);
        let report = report(run);
        let members = format!(
            "+{} −{}",
            report.lists.iter().map(|l| l.added).sum::<u64>(),
            report.lists.iter().map(|l| l.removed).sum::<u64>()
        );
        let approved = approval(run, &report).map_or_else(String::new, |a| {
            let mut marker = match (a.operator, a.reason) {
                (Some(operator), Some(reason)) => format!("✓ {operator}: {reason}"),
                (None, Some(reason)) => format!("✓ {reason}"),
                (Some(operator), None) => format!("✓ {operator}"),
                (None, None) => "✓".to_owned(),
            };
            if marker.chars().count() > 40 {
                marker = marker.chars().take(39).collect::<String>() + "…";
            }
            marker
        });
        println!(
            "{:>6}  {:<13}  {:<11}  {:<19}  {:>8}  {:>4}  {:>13}  {:>6}  {:>10}  {:>7}  {:>5}  {approved}",
            run.id,
            run.kind.as_str(),
            run.status.as_str(),
            run.started_at.format("%F %T").to_string(),
            took,
            run.exit_code
                .map_or_else(|| "-".to_owned(), |c| c.to_string()),
            members,
            report.applied.failed,
            report.unresolved,
            report.graph.requests,
            report.graph.throttled,
        );
    }
}

fn report(run: &Run) -> RunReport {
    RunReport::of(run).unwrap_or_default()
}

/// Every guard's verdict on a run's plan, as its plan summary keeps them.
fn verdicts(run: &Run) -> Vec<Verdict> {
    run.plan_summary
        .as_ref()
        .and_then(|s| s.get("verdicts"))
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// `rollcall show RUN`: one run's report.
pub async fn show(context: &Context, args: ShowArgs) -> Result<Exit, CommandError> {
    let store = store(context).await?;
    let run = store
        .run(RunId(args.run))
        .await
        .map_err(CommandError::failed)?
        .ok_or_else(|| {
            CommandError::usage(anyhow::anyhow!(
                "there is no run {}; `rollcall runs` lists them",
                args.run
            ))
        })?;
    let counts = store
        .journal_counts(run.id)
        .await
        .map_err(CommandError::failed)?;
    store.close().await;
    match args.output {
        Output::Json => println!(
            "{}",
            run_json_with(
                &run,
                serde_json::json!({
                    "approvals": run.approvals,
                    "plan": run.plan_summary,
                    "journal": {
                        "pending": counts.pending, "done": counts.done,
                        "failed": counts.failed, "superseded": counts.superseded,
                    },
                    "report": run.report,
                })
            )
        ),
        Output::Human => {
            println!(
                "run {} ({}): {}, exit {}",
                run.id,
                run.kind,
                run.status,
                run.exit_code
                    .map_or_else(|| "-".to_owned(), |c| c.to_string())
            );
            println!(
                "started {} UTC{}{}",
                run.started_at.format("%F %T"),
                run.finished_at
                    .map_or_else(String::new, |f| format!(", finished {}", f.format("%F %T"))),
                run.holder
                    .as_deref()
                    .map_or_else(String::new, |h| format!(", by {h}"))
            );
            let report = report(&run);
            println!(
                "journal: {} done, {} failed, {} pending, {} superseded",
                counts.done, counts.failed, counts.pending, counts.superseded
            );
            if report.approval.is_none()
                && let Some(approval) = approval(&run, &report)
            {
                println!("approved {approval}");
            }
            print!("{}", Detailed(&report));
            let verdicts = verdicts(&run);
            if !verdicts.is_empty() {
                println!("guards:");
                for verdict in &verdicts {
                    let outcome = match verdict.outcome {
                        Outcome::Passed => "passed".to_owned(),
                        Outcome::Tripped => "TRIPPED".to_owned(),
                        Outcome::Accepted { by } => format!("accepted (up to {by} approved)"),
                    };
                    println!("  {}: {outcome}", verdict_text(verdict));
                }
            }
        }
    }
    Ok(Exit::Success)
}

/// `rollcall pause`: scheduled runs skip; an applying run stops at its next batch.
pub async fn pause(context: &Context, args: PauseArgs) -> Result<Exit, CommandError> {
    let store = store(context).await?;
    store
        .pause(&args.reason, args.until, &holder_name())
        .await
        .map_err(CommandError::failed)?;
    store.close().await;
    println!(
        "paused{}: runs skip (exit 6) and a run in progress stops at its next batch, resumable",
        args.until
            .map_or_else(String::new, |u| format!(" until {}", u.format("%F %T UTC")))
    );
    Ok(Exit::Success)
}

/// `rollcall unpause`.
pub async fn unpause(context: &Context) -> Result<Exit, CommandError> {
    let store = store(context).await?;
    store
        .unpause(&holder_name())
        .await
        .map_err(CommandError::failed)?;
    store.close().await;
    println!("unpaused: the next run goes ahead (and resumes anything a pause interrupted)");
    Ok(Exit::Success)
}
