//! `plan`, `run`, `apply`, `resume`, `verify` and `rebuild`: the commands that reconcile.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::Utc;
use clap::{Args, ValueEnum};

use super::Context;
use crate::config::Config;
use crate::exit::{CommandError, Exit};
use crate::plan::{Approvals, render_plan};
use crate::reconcile::{
    Engine, Planned, Progress, SavedPlan, StopSignal, Verification, drift_text, exit_of,
    pending_text,
};
use crate::store::RunKind;

/// How a command prints its result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Readable text.
    #[default]
    Human,
    /// One JSON document on stdout.
    Json,
}

/// `--output`.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct OutputArgs {
    /// Readable text or one JSON document.
    #[arg(long, value_enum, default_value_t = Output::Human)]
    pub output: Output,
}

/// Operator approvals for a run whose guards would otherwise stop it.
#[derive(Debug, Clone, Default, Args)]
pub struct ApprovalArgs {
    /// Approve up to N removals across all lists in this run (and the per-list percentage
    /// guard for those removals).
    #[arg(long, value_name = "N")]
    pub accept_removals: Option<u64>,
    /// Approve up to N additions across all lists in this run.
    #[arg(long, value_name = "N")]
    pub accept_additions: Option<u64>,
    /// Approve up to N owner removals across all lists in this run.
    #[arg(long, value_name = "N")]
    pub accept_owner_removals: Option<u64>,
    /// Let this source go ahead although it shrank by more than
    /// `[guard].max_source_shrink_percent` since its last accepted snapshot (repeatable);
    /// check the source first.
    #[arg(long, value_name = "SOURCE")]
    pub accept_shrink: Vec<String>,
    /// Release this list, held by its per-list guard, for this run (repeatable; list keys
    /// ignore case).
    #[arg(long, value_name = "LIST")]
    pub accept_list: Vec<String>,
    /// Why (recorded in the run's history).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

impl ApprovalArgs {
    fn approvals(&self) -> Approvals {
        Approvals {
            accept_removals: self.accept_removals,
            accept_additions: self.accept_additions,
            accept_lists: accept_lists(&self.accept_list),
            accept_owner_removals: self.accept_owner_removals,
        }
    }

    fn record(&self) -> serde_json::Value {
        serde_json::json!({
            "operator": operator(),
            "reason": self.reason,
            "accept_removals": self.accept_removals,
            "accept_additions": self.accept_additions,
            "accept_owner_removals": self.accept_owner_removals,
            "accept_shrink": self.accept_shrink,
            "accept_list": self.accept_list,
        })
    }

    /// An approval needs a reason; `--accept-list` never goes without one.
    fn check(&self) -> Result<(), CommandError> {
        let reason = self.reason.as_deref().is_some_and(|r| !r.trim().is_empty());
        if !self.accept_list.is_empty() && !reason {
            return Err(CommandError::usage(anyhow::anyhow!(
                "--accept-list {} needs --reason TEXT: say why the list's changes are right \
                 (it is recorded in the run's history)",
                self.accept_list.join(" --accept-list ")
            )));
        }
        Ok(())
    }
}

/// `--accept-list` values, folded to lower case as list keys compare.
fn accept_lists(lists: &[String]) -> BTreeSet<String> {
    lists.iter().map(|l| l.trim().to_lowercase()).collect()
}

/// Who runs the command, as the run's history records it.
fn operator() -> Option<String> {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .ok()
}

/// `rollcall apply`.
#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// The saved plan, as `rollcall plan --out FILE` wrote it.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Why the plan is approved (recorded in the run's history).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Also release this list, held in the saved plan by its per-list guard (repeatable).
    #[arg(long, value_name = "LIST")]
    pub accept_list: Vec<String>,
}

/// `rollcall rebuild`.
#[derive(Debug, Clone, Default, Args)]
pub struct RebuildArgs {
    /// Rebuild only the state database (group ids, mirror, identities) from Microsoft 365;
    /// membership is not changed.
    #[arg(long)]
    pub state_only: bool,
    /// Approvals, as for `run`.
    #[command(flatten)]
    pub approvals: ApprovalArgs,
}

/// The sources named by `--accept-shrink`; a name no `[[source]]` has is a usage error,
/// so a typo never passes for an approval.
fn accepted_shrinks(config: &Config, names: &[String]) -> Result<BTreeSet<String>, CommandError> {
    for name in names {
        if !config.sources.iter().any(|s| &s.name == name) {
            let known: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
            return Err(CommandError::usage(anyhow::anyhow!(
                "--accept-shrink {name}: {} has no [[source]] named `{name}`; the sources are: {}",
                config.path.display(),
                known.join(", ")
            )));
        }
    }
    Ok(names.iter().cloned().collect())
}

async fn engine(
    context: &Context,
    progress: bool,
    accept_shrink: &[String],
) -> Result<Engine, CommandError> {
    let config = context.config()?;
    let accepted_shrinks = accepted_shrinks(&config, accept_shrink)?;
    let progress = if progress {
        Progress::new(context.human_logs)
    } else {
        Progress::silent()
    };
    let mut engine = Engine::open(config, progress).await?;
    engine.stop = StopSignal::install();
    engine.accepted_shrinks = accepted_shrinks;
    Ok(engine)
}

/// `rollcall plan`: everything a run does except applying; with `out`, the plan is also
/// saved there for `rollcall apply`.
pub async fn plan(
    context: &Context,
    args: ApprovalArgs,
    output: Output,
    out: Option<&Path>,
) -> Result<Exit, CommandError> {
    args.check()?;
    let engine = engine(context, false, &args.accept_shrink).await?;
    let planned = engine.prepare(&args.approvals(), false, false).await?;
    match output {
        Output::Json => println!("{}", plan_json(&planned)),
        Output::Human => print!("{}", plan_text(&planned)),
    }
    if let Some(out) = out {
        let config =
            std::path::absolute(&engine.config.path).unwrap_or_else(|_| engine.config.path.clone());
        SavedPlan::of(&planned, &config, args.accept_shrink.clone(), Utc::now())
            .write(out)
            .map_err(CommandError::failed)?;
        let ttl = humantime::format_duration(engine.config.guard.plan_ttl);
        let note = format!(
            "saved the plan to {}; `rollcall apply {} --reason TEXT` applies it within {ttl} \
             if the sources and Microsoft 365 are unchanged by then",
            out.display(),
            out.display()
        );
        match output {
            // stdout holds one JSON document; the note goes with the logs.
            Output::Json => tracing::info!(file = %out.display(), "{note}"),
            Output::Human => println!("\n{note}"),
        }
    }
    Ok(if planned.verdicts.any_tripped() {
        Exit::Stopped
    } else if planned.plan.totals.held > 0 {
        Exit::Held
    } else {
        Exit::Success
    })
}

/// `rollcall apply FILE --reason TEXT`: applies a saved plan, its guards approved by the
/// operator, if the sources and Microsoft 365 are as they were when it was made.
pub async fn apply(context: &Context, args: ApplyArgs) -> Result<Exit, CommandError> {
    if args.reason.trim().is_empty() {
        return Err(CommandError::usage(anyhow::anyhow!(
            "apply {}: --reason is empty; say why the plan is approved (it is recorded in the \
             run's history)",
            args.file.display()
        )));
    }
    let file = SavedPlan::read(&args.file).map_err(CommandError::usage)?;
    let saved = &file.plan;
    let engine = engine(context, true, &saved.accept_shrink).await?;
    let record = serde_json::json!({
        "operator": operator(),
        "reason": args.reason,
        "plan_file": std::path::absolute(&file.path).unwrap_or_else(|_| file.path.clone()),
        "plan_sha256": file.sha256,
        "plan_created_at": saved.created_at,
        "accept_removals": saved.plan.totals.removes,
        "accept_additions": saved.plan.totals.adds,
        "accept_owner_removals": saved.plan.totals.owner_removes,
        "accept_shrink": saved.accept_shrink,
        "accept_list": args.accept_list,
    });
    let accept = Approvals {
        accept_lists: accept_lists(&args.accept_list),
        ..Approvals::default()
    };
    let (run, report) = engine.apply(saved, &accept, &record).await?;
    println!(
        "run {run} (apply) succeeded: the saved plan {} is applied",
        file.path.display()
    );
    print!("{report}");
    Ok(exit_of(&report))
}

fn plan_json(planned: &Planned) -> serde_json::Value {
    serde_json::json!({
        "plan": planned.plan,
        "verdicts": planned.verdicts,
        "unresolved": planned.unresolved,
        "held": planned.plan.held().map(|(list, hold)| serde_json::json!({
            "list": list.key,
            "reason": hold.key(),
            "message": hold.to_string(),
            "release": hold.release(&list.key),
        })).collect::<Vec<_>>(),
        "adopted": planned.actual.adopted.iter().map(|g| serde_json::json!({
            "list": g.list, "group_id": g.group_id, "mail_nickname": g.mail_nickname,
        })).collect::<Vec<_>>(),
        "sources": planned.sources,
    })
}

fn plan_text(planned: &Planned) -> String {
    let mut out = String::new();
    for source in &planned.sources {
        let _ = crate::reconcile::write_source(&mut out, source);
    }
    out.push_str(&render_plan(&planned.plan, &planned.verdicts));
    for group in &planned.actual.adopted {
        let _ = writeln!(
            out,
            "adopt: list {} takes over the existing group {} ({})",
            group.list, group.mail_nickname, group.group_id
        );
    }
    let unresolved: usize = planned.unresolved.values().map(Vec::len).sum();
    if unresolved > 0 {
        let _ = writeln!(
            out,
            "unresolved: {unresolved} member keys in {} lists have no account yet (not added; tried again next run)",
            planned.unresolved.len()
        );
        for (list, keys) in planned.unresolved.iter().take(10) {
            let _ = writeln!(out, "  {list}: {}", keys.join(", "));
        }
    }
    for warning in planned.warnings.iter().chain(&planned.actual.warnings) {
        let _ = writeln!(out, "warning: {warning}");
    }
    out
}

/// `rollcall run` and `rollcall rebuild`.
pub async fn run(
    context: &Context,
    kind: RunKind,
    args: ApprovalArgs,
) -> Result<Exit, CommandError> {
    args.check()?;
    let engine = engine(context, true, &args.accept_shrink).await?;
    let (run, report) = engine.run(kind, &args.approvals(), &args.record()).await?;
    let exit = exit_of(&report);
    if exit == Exit::Held {
        println!(
            "run {run} ({kind}) applied every list but {} held one(s) (exit 7)",
            report.held.len()
        );
    } else {
        println!("run {run} ({kind}) succeeded");
    }
    print!("{report}");
    Ok(exit)
}

/// `rollcall rebuild [--state-only]`.
pub async fn rebuild(context: &Context, args: RebuildArgs) -> Result<Exit, CommandError> {
    if !args.state_only {
        return run(context, RunKind::Rebuild, args.approvals).await;
    }
    let engine = engine(context, true, &args.approvals.accept_shrink).await?;
    let (run, report) = engine.rebuild_state(&args.approvals.record()).await?;
    println!("run {run} (state-rebuild) succeeded: the state database matches Microsoft 365");
    print!("{report}");
    Ok(Exit::Success)
}

/// `rollcall resume`.
pub async fn resume(context: &Context) -> Result<Exit, CommandError> {
    let engine = engine(context, true, &[]).await?;
    match engine.resume().await? {
        Some(run) => println!("run {run}: every pending operation is done"),
        None => println!("no interrupted run: nothing to resume"),
    }
    Ok(Exit::Success)
}

/// `rollcall verify`: exit 5 on drift.
pub async fn verify(context: &Context, output: Output) -> Result<Exit, CommandError> {
    let engine = engine(context, false, &[]).await?;
    let (run, verification) = engine.verify().await?;
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_value(&verification).unwrap_or_default()
        ),
        Output::Human => print!("{}", verify_text(run, &verification)),
    }
    Ok(if verification.drift.is_empty() {
        Exit::Success
    } else {
        Exit::Drift
    })
}

fn verify_text(run: crate::store::RunId, verification: &Verification) -> String {
    let mut out = format!(
        "verify (run {run}): {} lists checked, {} drifted\n",
        verification.checked,
        verification.drift.len()
    );
    for drift in &verification.drift {
        let _ = writeln!(out, "  {}", drift_text(drift));
    }
    for pending in &verification.pending {
        let _ = writeln!(out, "  pending (not drift): {}", pending_text(pending));
    }
    if verification.unresolved > 0 {
        let _ = writeln!(
            out,
            "{} member keys have no account (not drift: nobody can add them yet)",
            verification.unresolved
        );
    }
    if !verification.drift.is_empty() {
        out.push_str("`rollcall run` repairs the drift (exit 5)\n");
    }
    out
}
