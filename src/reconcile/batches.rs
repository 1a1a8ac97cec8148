//! How the apply cuts a run's pending operations into journal batches so that the Graph
//! requests they become fill whole `$batch`es.
//!
//! Graph packs one group's adds 20 to a PATCH and 20 requests to a `$batch`
//! ([`crate::graph::write`]). A journal batch cut at a fixed number of operations splits
//! groups and leaves a partly filled `$batch` at every cut; here each batch is made of whole
//! requests, and a cut falls only after a full `$batch`, so only the run's last `$batch` can
//! be partly filled. A new group's first adds travel in its create instead (see
//! [`first_adds`]).

use std::collections::HashMap;

use crate::graph::MAX_BINDS;
use crate::plan::ObjectId;
use crate::store::{JournalOp, OpKind};

/// Requests one `$batch` carries (GRAPH.md "JSON batching").
const REQUESTS_PER_BATCH: usize = 20;

/// Cuts member, tag and title operations into journal batches of whole requests. A batch
/// closes after a full `$batch` once another full one might take it past `max_ops`
/// operations, so it holds at most `max_ops` (given `max_ops` ≥ 400), and exactly `max_ops`
/// when it is all adds and `max_ops` is a multiple of 400.
///
/// Every list's removes come first (DESIGN.md "Transactions and interruption": a throttled,
/// paused or interrupted run has already withdrawn access), then each list's adds together
/// (in journal order) followed by its tag, title and owner adds; lists keep the order they
/// first appear in. Owner removes come last, in batches of their own: Graph keeps a group's
/// last owner, so every owner add has gone out before the first owner remove.
pub fn journal_batches(ops: Vec<JournalOp>, max_ops: usize) -> Vec<Vec<JournalOp>> {
    let mut removes: Vec<JournalOp> = Vec::new();
    let mut owner_removes: Vec<JournalOp> = Vec::new();
    let mut lists: Vec<ListOps> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for op in ops {
        match op.op.kind {
            OpKind::RemoveMember => {
                removes.push(op);
                continue;
            }
            OpKind::RemoveOwner => {
                owner_removes.push(op);
                continue;
            }
            _ => {}
        }
        let ix = *at.entry(op.op.list.clone()).or_insert_with(|| {
            lists.push(ListOps::default());
            lists.len() - 1
        });
        match op.op.kind {
            OpKind::AddMember => lists[ix].adds.push(op),
            _ => lists[ix].others.push(op),
        }
    }
    let additions = lists.into_iter().flat_map(|list| {
        let mut adds = list.adds.into_iter().peekable();
        let patches = std::iter::from_fn(move || {
            adds.peek()?;
            Some(adds.by_ref().take(MAX_BINDS).collect::<Vec<_>>())
        });
        patches.chain(list.others.into_iter().map(|op| vec![op]))
    });
    // The removes end a batch of their own: the requests of one batch go out concurrently,
    // so only a batch boundary makes every removal land before the first addition. That costs
    // at most one partly filled `$batch`, and only in a run that removes.
    let mut batches = cut(removes.into_iter().map(|op| vec![op]), max_ops);
    batches.extend(cut(additions, max_ops));
    batches.extend(cut(owner_removes.into_iter().map(|op| vec![op]), max_ops));
    batches
}

/// Cuts whole requests into journal batches that end on a full `$batch` (the last one
/// aside).
fn cut(requests: impl Iterator<Item = Vec<JournalOp>>, max_ops: usize) -> Vec<Vec<JournalOp>> {
    let mut batches = Vec::new();
    let mut batch: Vec<JournalOp> = Vec::new();
    let mut in_batch = 0;
    for request in requests {
        batch.extend(request);
        in_batch += 1;
        if in_batch % REQUESTS_PER_BATCH == 0
            && batch.len() + REQUESTS_PER_BATCH * MAX_BINDS > max_ops
        {
            batches.push(std::mem::take(&mut batch));
            in_batch = 0;
        }
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    batches
}

/// One list's pending adds, then its tag and title.
#[derive(Default)]
struct ListOps {
    adds: Vec<JournalOp>,
    others: Vec<JournalOp>,
}

/// By list, the adds a create binds (owner adds first, then member adds), each with its
/// person.
pub type FirstAdds = HashMap<String, Vec<(JournalOp, ObjectId)>>;

/// Takes, for each list in `creating`, its first [`MAX_BINDS`] pending owner and member adds
/// out of `ops`, owners first (members and owners share a request's references, GRAPH.md
/// "Owners"): a create binds them itself, which spares the writes that would add them after
/// it. Returns the adds taken, by list, with their people, and the operations left.
pub fn first_adds(
    mut ops: Vec<JournalOp>,
    creating: impl Fn(&str) -> bool,
) -> (FirstAdds, Vec<JournalOp>) {
    // First which operations each create binds, by position; then those alone are taken out
    // in place, so a build's 300,000 operations are never copied.
    let mut candidates: HashMap<&str, (Vec<usize>, Vec<usize>)> = HashMap::new();
    for (at, op) in ops.iter().enumerate() {
        let kind = op.op.kind;
        let bindable = op
            .op
            .member
            .as_deref()
            .is_some_and(|m| m.parse::<ObjectId>().is_ok());
        if !bindable || !creating(&op.op.list) {
            continue;
        }
        let (owners, members) = candidates.entry(op.op.list.as_str()).or_default();
        match kind {
            OpKind::AddOwner => owners.push(at),
            OpKind::AddMember => members.push(at),
            _ => {}
        }
    }
    let mut chosen: Vec<usize> = Vec::new();
    for (owners, members) in candidates.into_values() {
        let owners = &owners[..owners.len().min(MAX_BINDS)];
        let members = &members[..members.len().min(MAX_BINDS - owners.len())];
        chosen.extend(owners.iter().chain(members));
    }
    chosen.sort_unstable();
    let mut at = 0;
    let mut next = chosen.iter().peekable();
    let bound: Vec<JournalOp> = ops
        .extract_if(.., |_| {
            let take = next.next_if_eq(&&at).is_some();
            at += 1;
            take
        })
        .collect();
    let mut taken = FirstAdds::new();
    for op in bound {
        let person = op
            .op
            .member
            .as_deref()
            .and_then(|m| m.parse::<ObjectId>().ok())
            .expect("only operations with an object id are bound");
        taken
            .entry(op.op.list.clone())
            .or_default()
            .push((op, person));
    }
    // Owners first within each create, as Graph binds them.
    for adds in taken.values_mut() {
        adds.sort_by_key(|(op, _)| op.op.kind != OpKind::AddOwner);
    }
    (taken, ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OpStatus;

    fn op(seq: i64, list: &str, kind: OpKind) -> JournalOp {
        let member =
            (kind != OpKind::TagGroup).then(|| format!("00000000-0000-0000-0000-{seq:012}"));
        JournalOp::sample(seq, list, kind, member, OpStatus::Pending)
    }

    /// The number of requests each batch becomes, as `graph::write` packs them.
    fn requests(batch: &[JournalOp]) -> usize {
        let mut adds: HashMap<&str, usize> = HashMap::new();
        let mut others = 0;
        for op in batch {
            match op.op.kind {
                OpKind::AddMember => *adds.entry(op.op.list.as_str()).or_default() += 1,
                _ => others += 1,
            }
        }
        others + adds.values().map(|n| n.div_ceil(MAX_BINDS)).sum::<usize>()
    }

    #[test]
    fn batches_are_whole_batches_of_whole_requests() {
        // Lists of awkward sizes, interleaved the way a journal can interleave them.
        let mut ops = Vec::new();
        let mut seq = 0;
        for round in 0..30 {
            for (l, size) in [7, 45, 3, 101, 20].into_iter().enumerate() {
                for _ in 0..size {
                    seq += 1;
                    ops.push(op(
                        seq,
                        &format!("list-{l}-{}", round % 4),
                        OpKind::AddMember,
                    ));
                }
                seq += 1;
                ops.push(op(
                    seq,
                    &format!("list-{l}-{}", round % 4),
                    OpKind::RemoveMember,
                ));
            }
            seq += 1;
            ops.push(op(seq, &format!("list-tag-{round}"), OpKind::TagGroup));
        }
        let total = ops.len();
        let mut seqs: Vec<i64> = ops.iter().map(|o| o.seq).collect();
        let batches = journal_batches(ops, 700);
        assert!(batches.len() > 3);
        // The removes come in batches of their own, then the rest: in each part only the last
        // batch may end on a partly filled `$batch`.
        let (removes, rest): (Vec<&Vec<JournalOp>>, Vec<&Vec<JournalOp>>) = batches
            .iter()
            .partition(|b| b.iter().all(|o| o.op.kind == OpKind::RemoveMember));
        assert_eq!(removes.iter().map(|b| b.len()).sum::<usize>(), 150);
        for part in [removes, rest] {
            let (last, full) = part.split_last().unwrap();
            for batch in full {
                assert_eq!(
                    requests(batch) % REQUESTS_PER_BATCH,
                    0,
                    "a cut left a partly filled $batch"
                );
                assert!(batch.len() > 300 && batch.len() <= 700, "{}", batch.len());
            }
            assert!(!last.is_empty() && last.len() <= 700);
        }
        // Every operation lands in exactly one batch.
        let mut out: Vec<i64> = batches.iter().flatten().map(|o| o.seq).collect();
        assert_eq!(out.len(), total);
        seqs.sort_unstable();
        out.sort_unstable();
        assert_eq!(out, seqs);
    }

    #[test]
    fn adds_alone_fill_batches_to_the_operation_limit() {
        let ops: Vec<JournalOp> = (1..=4_000)
            .map(|seq| op(seq, &format!("list-{}", seq / 130), OpKind::AddMember))
            .collect();
        let sizes: Vec<usize> = journal_batches(ops, 1_600).iter().map(Vec::len).collect();
        // 130-member lists take 7 PATCHes, the last of 10: a full `$batch` of 20 PATCHes then
        // holds a little under 400 members.
        assert!(sizes.iter().all(|&n| n <= 1_600), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 4_000);
        let ops: Vec<JournalOp> = (0..4_000)
            .map(|seq| op(seq, &format!("list-{}", seq / 200), OpKind::AddMember))
            .collect();
        let sizes: Vec<usize> = journal_batches(ops, 1_600).iter().map(Vec::len).collect();
        assert_eq!(sizes, [1_600, 1_600, 800]);
    }

    #[test]
    fn a_list_keeps_its_adds_in_order_and_together() {
        let ops = vec![
            op(1, "a", OpKind::AddMember),
            op(2, "b", OpKind::AddMember),
            op(3, "a", OpKind::RemoveMember),
            op(4, "a", OpKind::AddMember),
            op(5, "b", OpKind::TagGroup),
        ];
        let batches = journal_batches(ops, 1_600);
        let seqs: Vec<i64> = batches.concat().iter().map(|o| o.seq).collect();
        assert_eq!(seqs, [3, 1, 4, 2, 5]);
    }

    #[test]
    fn every_removal_comes_before_the_first_addition() {
        let mut ops = Vec::new();
        for seq in 1..=900 {
            let kind = if seq % 3 == 0 {
                OpKind::RemoveMember
            } else {
                OpKind::AddMember
            };
            ops.push(op(seq, &format!("list-{}", seq % 7), kind));
        }
        let batches = journal_batches(ops, 400);
        let kinds: Vec<OpKind> = batches.concat().iter().map(|o| o.op.kind).collect();
        let first_add = kinds.iter().position(|k| *k == OpKind::AddMember).unwrap();
        let last_remove = kinds
            .iter()
            .rposition(|k| *k == OpKind::RemoveMember)
            .unwrap();
        assert_eq!((first_add, last_remove), (300, 299));
        // No batch mixes the two: a batch's requests go out at once.
        for batch in &batches {
            let removes = batch
                .iter()
                .filter(|o| o.op.kind == OpKind::RemoveMember)
                .count();
            assert!(
                removes == 0 || removes == batch.len(),
                "a batch mixes removes and adds"
            );
        }
    }

    #[test]
    fn creates_take_the_first_twenty_adds_of_their_lists() {
        let mut ops: Vec<JournalOp> = (1..=25).map(|s| op(s, "new", OpKind::AddMember)).collect();
        ops.push(op(26, "new", OpKind::RemoveMember));
        ops.push(op(27, "old", OpKind::AddMember));
        let mut bad = op(28, "new", OpKind::AddMember);
        bad.op.member = Some("not an id".to_owned());
        ops.insert(0, bad);
        let (taken, left) = first_adds(ops, |list| list == "new");
        let new = &taken["new"];
        assert_eq!(new.len(), MAX_BINDS);
        assert_eq!(new.first().map(|(o, _)| o.seq), Some(1));
        assert_eq!(new.last().map(|(o, _)| o.seq), Some(20));
        assert!(!taken.contains_key("old"));
        let left: Vec<i64> = left.iter().map(|o| o.seq).collect();
        assert_eq!(left, [28, 21, 22, 23, 24, 25, 26, 27]);
    }

    #[test]
    fn creates_bind_owners_first_and_owner_removes_come_last() {
        let mut ops: Vec<JournalOp> = (1..=25).map(|s| op(s, "new", OpKind::AddMember)).collect();
        ops.push(op(26, "new", OpKind::AddOwner));
        ops.push(op(27, "new", OpKind::AddOwner));
        let (taken, left) = first_adds(ops, |list| list == "new");
        let kinds: Vec<OpKind> = taken["new"].iter().map(|(o, _)| o.op.kind).collect();
        assert_eq!(kinds.len(), MAX_BINDS);
        assert_eq!(&kinds[..2], [OpKind::AddOwner, OpKind::AddOwner]);
        assert_eq!(
            left.len(),
            7,
            "18 of the 25 members fit beside the 2 owners"
        );

        let ops = vec![
            op(1, "a", OpKind::RemoveOwner),
            op(2, "a", OpKind::AddOwner),
            op(3, "b", OpKind::AddMember),
            op(4, "a", OpKind::RemoveMember),
        ];
        let batches = journal_batches(ops, 1_600);
        let seqs: Vec<Vec<i64>> = batches
            .iter()
            .map(|b| b.iter().map(|o| o.seq).collect())
            .collect();
        // Member removes, then additions (owner adds among them), then owner removes, each
        // part in batches of its own.
        assert_eq!(seqs, [vec![4], vec![2, 3], vec![1]]);
    }
}
