//! The apply: a run's journalled operations sent to Microsoft 365 in batches, each batch's
//! outcomes committed (fenced by the lease) before the next batch goes out.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::batches::{self, FirstAdds};
use super::lease::RunLease;
use super::outcome::{HELD, outcome_of};
use super::planned_group::PlannedGroup;
use super::progress::Progress;
use super::stop::{Stop, StopSignal};
use crate::graph::{Ensured, GraphClient, GroupSpec, ManagedTag, Write};
use crate::plan::{ObjectId, Title};
use crate::store::{
    Batch, GroupOrigin, JournalOp, ManagedGroup, OpKind, Outcome, PauseState, RunId, Store,
};

/// Most member and tag operations per journal batch: enough for every connection to carry a
/// full `$batch` of twenty 20-member PATCHes at once. A batch ends on a full `$batch`, so a
/// batch of removes or tags holds a little fewer.
pub const OPS_PER_BATCH: usize = 1_600;

/// Group creations per journal batch.
const CREATES_PER_BATCH: usize = 20;

/// Passes over the pending operations before the run gives up and leaves the rest pending;
/// later passes catch writes that failed while a new group replicated.
const PASSES: usize = 3;

/// What the apply did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Applied {
    /// Operations done.
    pub done: u64,
    /// Operations failed for good.
    pub failed: u64,
    /// Operations still pending.
    pub pending: u64,
    /// Batches committed to the journal (each one a Graph batch, or a chunk of creates).
    pub batches: u64,
    /// Round trips to the state database for the batches: two for each batch commit (the
    /// second also reads the pause flag for the next batch's check), and one pause check
    /// at the start of each pass.
    pub state_round_trips: u64,
}

/// Everything the apply needs.
#[derive(Debug)]
pub struct Apply<'a> {
    /// The state store.
    pub store: &'a Store,
    /// Microsoft Graph.
    pub graph: &'a GraphClient,
    /// The lease the run holds.
    pub lease: &'a RunLease,
    /// The run whose journal is applied.
    pub run: RunId,
    /// Groups to create, by list key.
    pub creates: &'a HashMap<String, PlannedGroup>,
    /// Titles to set, by list key.
    pub retitles: &'a HashMap<String, Title>,
    /// Signals, pause, lease loss.
    pub stop: &'a StopSignal,
    /// Progress shown to the operator.
    pub progress: &'a Progress,
    /// The pause flag as the last batch commit read it, for the check before the next batch
    /// (taken by that check; a pass starts without it).
    pub paused_at_commit: Mutex<Option<PauseState>>,
}

impl Apply<'_> {
    /// Sends every pending operation of the run. Returns when none is left, or with
    /// [`Stop`] when the run must stop with operations pending (exit 4).
    pub async fn run(&self) -> Result<Applied, Stop> {
        let trips = self.store.round_trips();
        let mut applied = self.send().await?;
        applied.state_round_trips = self.store.round_trips() - trips;
        Ok(applied)
    }

    async fn send(&self) -> Result<Applied, Stop> {
        let mut applied = Applied::default();
        for pass in 0..PASSES {
            let pending = self
                .store
                .pending(self.run)
                .await
                .map_err(Stop::lost_store)?;
            if pending.is_empty() {
                break;
            }
            // A pass checks the pause flag afresh: the last commit's reading may be old.
            drop(self.known_pause());
            if pass > 0 {
                tracing::info!(
                    pending = pending.len(),
                    pass,
                    "sending operations that did not go through"
                );
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            self.progress.start("apply", pending.len() as u64);
            let mut groups: HashMap<String, ManagedGroup> = self
                .store
                .groups()
                .await
                .map_err(Stop::lost_store)?
                .into_iter()
                .map(|g| (g.list.clone(), g))
                .collect();
            // Taken out in place: a build's 300,000 pending operations are never copied.
            let mut others = pending;
            let creates: Vec<JournalOp> = others
                .extract_if(.., |op| op.op.kind == OpKind::CreateGroup)
                .collect();
            let creating: HashSet<&str> = creates
                .iter()
                .filter(|op| self.creates.contains_key(&op.op.list))
                .map(|op| op.op.list.as_str())
                .collect();
            let (mut first_adds, mut others) =
                batches::first_adds(others, |list| creating.contains(list));
            let mut not_created = HashSet::new();
            for chunk in creates.chunks(CREATES_PER_BATCH) {
                self.check().await?;
                let (counts, unsettled) = self
                    .create(chunk, &mut first_adds, &mut groups, &mut not_created)
                    .await?;
                applied.add(counts);
                others.extend(unsettled);
            }
            // Adds whose create never came to be sent (the plan lost its group properties).
            others.extend(first_adds.into_values().flatten().map(|(op, _)| op));
            let mut fates = Fates::default();
            for chunk in batches::journal_batches(others, OPS_PER_BATCH) {
                self.check().await?;
                let (counts, unreachable) = self
                    .write(&chunk, &mut groups, &not_created, &mut fates)
                    .await?;
                applied.add(counts);
                if unreachable {
                    return Err(Stop::unreachable(chunk.len()));
                }
            }
            self.progress.finish();
        }
        let left = self
            .store
            .pending(self.run)
            .await
            .map_err(Stop::lost_store)?;
        applied.pending = left.len() as u64;
        if left.is_empty() {
            Ok(applied)
        } else {
            Err(Stop::still_pending(
                left.len(),
                left.first().and_then(|op| op.last_error.clone()),
            ))
        }
    }

    /// Before a batch: stops on a signal, a lost lease or a pause, the last commit's reading
    /// of the pause flag standing in for a round trip of its own.
    async fn check(&self) -> Result<(), Stop> {
        let known = self.known_pause();
        self.stop.check(self.store, self.lease, known).await
    }

    /// Takes the pause flag as the last batch commit read it.
    fn known_pause(&self) -> Option<PauseState> {
        self.paused_at_commit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// Creates (or finds) the groups of a chunk of create operations, each with the first
    /// adds of its list bound in, then commits: a group created with its members settles
    /// those adds in the same commit. Returns the adds it did not settle (the group was
    /// found, created empty, or not created), for the ordinary writes.
    async fn create(
        &self,
        ops: &[JournalOp],
        first_adds: &mut FirstAdds,
        groups: &mut HashMap<String, ManagedGroup>,
        not_created: &mut HashSet<String>,
    ) -> Result<(Applied, Vec<JournalOp>), Stop> {
        // Operations whose plan lost its group properties cannot be sent; the rest are
        // looked up (and, where missing, created) together.
        let (known, unknown): (Vec<&JournalOp>, Vec<&JournalOp>) = ops
            .iter()
            .partition(|op| self.creates.contains_key(&op.op.list));
        let bound: Vec<Vec<(JournalOp, ObjectId)>> = known
            .iter()
            .map(|op| first_adds.remove(&op.op.list).unwrap_or_default())
            .collect();
        let specs: Vec<GroupSpec> = known
            .iter()
            .zip(&bound)
            .map(|(op, adds)| {
                let planned = &self.creates[&op.op.list];
                GroupSpec {
                    mail_nickname: planned.mail_nickname.clone(),
                    display_name: planned.display_name.clone(),
                    description: planned.description.clone(),
                    visibility: Some(planned.visibility.clone()),
                    behaviors: planned.behaviors.clone(),
                    members: people(adds, OpKind::AddMember),
                    owners: people(adds, OpKind::AddOwner),
                }
            })
            .collect();
        let results = self.graph.ensure_groups(&specs).await;
        let mut creates = Vec::with_capacity(ops.len());
        let mut made = Vec::new();
        let mut bound_done = Vec::new();
        let mut unsettled = Vec::new();
        for ((op, adds), result) in known.into_iter().zip(bound).zip(results) {
            let created_with_members = matches!(result, Ok((_, Ensured::Created)));
            for (add, _) in adds {
                if created_with_members {
                    bound_done.push(add);
                } else {
                    unsettled.push(add);
                }
            }
            let outcome = match result {
                Ok((group, ensured)) => {
                    if ensured == Ensured::Found {
                        tracing::info!(list = %op.op.list, group = %group.id, "the group already existed (an earlier create whose reply was lost); using it");
                    }
                    let managed = ManagedGroup {
                        list: op.op.list.clone(),
                        group_id: group.id.clone(),
                        family: self.creates[&op.op.list].family.clone(),
                        origin: GroupOrigin::Created,
                        mail_nickname: group.mail_nickname.clone(),
                        tagged: group.tag.as_ref().is_some_and(|t| t.list == op.op.list),
                    };
                    groups.insert(managed.list.clone(), managed.clone());
                    made.push(managed);
                    Outcome::Done
                }
                Err(e) if e.is_transient() => Outcome::Retry(e.to_string()),
                Err(e) => {
                    not_created.insert(op.op.list.clone());
                    Outcome::Failed(e.to_string())
                }
            };
            creates.push((op, outcome));
        }
        let mut outcomes: Vec<(&JournalOp, Outcome)> =
            bound_done.iter().map(|add| (add, Outcome::Done)).collect();
        outcomes.extend(creates);
        for op in unknown {
            outcomes.push((
                op,
                Outcome::Failed(format!(
                    "the plan of run {} holds no group properties for list `{}`",
                    self.run, op.op.list
                )),
            ));
        }
        let titled: Vec<(String, Title)> = made
            .iter()
            .map(|g| {
                let planned = &self.creates[&g.list];
                let title = Title {
                    display_name: planned.display_name.clone(),
                    description: planned.description.clone(),
                    visibility: serde_json::from_value(planned.visibility.clone().into()).ok(),
                };
                (g.list.clone(), title)
            })
            .collect();
        let (counts, _) = self.commit(&outcomes, &made, &titled, ops.len()).await?;
        Ok((counts, unsettled))
    }

    /// Sends a chunk of member, owner, tag and title operations, then commits. A list whose
    /// group Microsoft Graph refuses for good is held: the failure is journalled as such and
    /// the list's later operations are superseded, never sent. A list whose owner add did
    /// not go through keeps its owner removes pending (Graph keeps a group's last owner).
    async fn write(
        &self,
        ops: &[JournalOp],
        groups: &mut HashMap<String, ManagedGroup>,
        not_created: &HashSet<String>,
        fates: &mut Fates,
    ) -> Result<(Applied, bool), Stop> {
        let held = &mut fates.held;
        let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut sent: Vec<(usize, Write)> = Vec::with_capacity(ops.len());
        let mut outcomes: Vec<(&JournalOp, Outcome)> = Vec::with_capacity(ops.len());
        for (ix, op) in ops.iter().enumerate() {
            if let Some(why) = held.get(&op.op.list) {
                outcomes.push((op, Outcome::Superseded(format!("{HELD}{why}"))));
                continue;
            }
            let Some(group) = groups.get(&op.op.list) else {
                let outcome = if not_created.contains(&op.op.list) {
                    Outcome::Failed(format!(
                        "the group of list `{}` could not be created",
                        op.op.list
                    ))
                } else {
                    Outcome::Retry(format!(
                        "the group of list `{}` does not exist yet",
                        op.op.list
                    ))
                };
                outcomes.push((op, outcome));
                continue;
            };
            if op.op.kind == OpKind::RemoveOwner
                && let Some(&for_good) = fates.owners_waiting.get(&op.op.list)
            {
                let why = format!("list `{}` did not get its new owners", op.op.list);
                let outcome = if for_good {
                    Outcome::Superseded(format!("{why}, so its old ones stay"))
                } else {
                    Outcome::Retry(format!("{why} yet"))
                };
                outcomes.push((op, outcome));
                continue;
            }
            let member = op.op.member.as_deref().map(str::parse);
            let write = match (op.op.kind, member) {
                (OpKind::AddMember, Some(Ok(member))) => Write::Add {
                    group: group.group_id.clone(),
                    member,
                },
                (OpKind::RemoveMember, Some(Ok(member))) => Write::Remove {
                    group: group.group_id.clone(),
                    member,
                },
                (OpKind::AddOwner, Some(Ok(owner))) => Write::AddOwner {
                    group: group.group_id.clone(),
                    owner,
                },
                (OpKind::RemoveOwner, Some(Ok(owner))) => Write::RemoveOwner {
                    group: group.group_id.clone(),
                    owner,
                },
                (OpKind::TagGroup, _) => Write::Tag {
                    group: group.group_id.clone(),
                    tag: ManagedTag {
                        list: group.list.clone(),
                        family: group.family.clone(),
                        since: since.clone(),
                    },
                },
                (OpKind::UpdateGroup, _) if self.retitles.contains_key(&op.op.list) => {
                    let title = &self.retitles[&op.op.list];
                    Write::Retitle {
                        group: group.group_id.clone(),
                        display_name: title.display_name.clone(),
                        description: title.description.clone(),
                        visibility: title.visibility,
                    }
                }
                (kind, member) => {
                    outcomes.push((
                        op,
                        Outcome::Failed(format!(
                            "journal operation {} of run {} is a {kind} with member {member:?}, which cannot be sent",
                            op.seq, self.run
                        )),
                    ));
                    continue;
                }
            };
            sent.push((ix, write));
        }
        let writes: Vec<Write> = sent.iter().map(|(_, w)| w.clone()).collect();
        let results = self.graph.write(&writes).await;
        let mut tagged = Vec::new();
        let mut titled = Vec::new();
        for ((ix, write), result) in sent.iter().zip(results) {
            let op = &ops[*ix];
            let outcome = outcome_of(write, result);
            match (&outcome, write) {
                (Outcome::Done, Write::Tag { .. }) => {
                    if let Some(group) = groups.get_mut(&op.op.list) {
                        group.tagged = true;
                        tagged.push(group.clone());
                    }
                }
                (Outcome::Done, Write::Retitle { .. }) => {
                    titled.push((op.op.list.clone(), self.retitles[&op.op.list].clone()));
                }
                (Outcome::Failed(e), _) if e.starts_with(HELD) => {
                    tracing::warn!(list = %op.op.list, error = %e, "Microsoft Graph refused the list's group; the list is held");
                    held.insert(op.op.list.clone(), e[HELD.len()..].to_owned());
                }
                _ => {}
            }
            if matches!(write, Write::AddOwner { .. }) && outcome != Outcome::Done {
                let for_good = !matches!(outcome, Outcome::Retry(_));
                *fates.owners_waiting.entry(op.op.list.clone()).or_default() |= for_good;
            }
            outcomes.push((op, outcome));
        }
        self.commit(&outcomes, &tagged, &titled, sent.len()).await
    }

    /// Commits one batch's outcomes; a failed commit stops the run at once. Also says
    /// whether every one of the `sent` requests failed for now: Microsoft 365 is unreachable.
    async fn commit(
        &self,
        outcomes: &[(&JournalOp, Outcome)],
        groups: &[ManagedGroup],
        titles: &[(String, Title)],
        sent: usize,
    ) -> Result<(Applied, bool), Stop> {
        let lease = self.lease.current();
        let pause = self
            .store
            .record_batch(
                &lease,
                Batch {
                    run: self.run,
                    outcomes,
                    groups,
                    titles,
                },
            )
            .await
            .map_err(Stop::commit)?;
        *self
            .paused_at_commit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(pause);
        let mut counts = Applied {
            batches: 1,
            ..Applied::default()
        };
        let mut retry = 0;
        for (op, outcome) in outcomes {
            match outcome {
                Outcome::Done => counts.done += 1,
                Outcome::Failed(e) => {
                    counts.failed += 1;
                    tracing::warn!(run = %self.run, seq = op.seq, error = %e, "operation failed");
                }
                Outcome::Retry(_) => retry += 1,
                Outcome::Superseded(_) => {}
            }
        }
        self.progress.advance(outcomes.len() as u64);
        Ok((counts, sent > 0 && retry == outcomes.len()))
    }
}

/// What one pass of the apply has learnt about lists, batch after batch.
#[derive(Debug, Default)]
struct Fates {
    /// Lists whose group Microsoft Graph refused for good, with why: their later
    /// operations are superseded.
    held: HashMap<String, String>,
    /// Lists with an owner add that did not go through, and whether for good: their owner
    /// removes wait (for now), or are not sent (for good).
    owners_waiting: HashMap<String, bool>,
}

/// The people of `adds` (a create's bound adds) whose operations are of `kind`.
fn people(adds: &[(JournalOp, ObjectId)], kind: OpKind) -> Vec<ObjectId> {
    adds.iter()
        .filter(|(op, _)| op.op.kind == kind)
        .map(|(_, person)| *person)
        .collect()
}

impl Applied {
    fn add(&mut self, other: Applied) {
        self.done += other.done;
        self.failed += other.failed;
        self.batches += other.batches;
    }
}
