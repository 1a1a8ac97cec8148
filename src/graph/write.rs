//! Membership writes and tags, packed as GRAPH.md "Changing members" describes: adds as
//! `members@odata.bind` PATCHes of up to 20 members (one group's adds fill whole PATCHes
//! before the next group's start), removes as `DELETE …/members/{id}/$ref`, tags as open
//! extensions; all of them carried 20 to a `$batch`.
//!
//! A PATCH is all or nothing: when one member in it is already there or unknown, the chunk
//! is sent again as single adds. "Already a member", removing a non-member and a tag that is
//! already there all count as done, so every write can be repeated safely.

use crate::config::Visibility;
use std::collections::HashMap;

use graph_rs_sdk::http::Method;
use serde_json::{Value, json};

use super::batch::{self, AlsoRetry};
use super::error::{GraphError, is_already_member};
use super::transport::{Reply, Request, Transport};
use super::{MANAGED_EXTENSION, ManagedTag, Write};
use crate::plan::ObjectId;

/// Most members one `members@odata.bind` may carry.
pub const MAX_BINDS: usize = 20;

/// One request of a write plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// `PATCH /groups/{group}` binding up to 20 members.
    AddMany {
        /// Group object id.
        group: String,
        /// The members, in input order.
        members: Vec<ObjectId>,
    },
    /// `POST /groups/{group}/members/$ref`.
    AddOne {
        /// Group object id.
        group: String,
        /// The member.
        member: ObjectId,
    },
    /// `DELETE /groups/{group}/members/{member}/$ref`.
    Remove {
        /// Group object id.
        group: String,
        /// The member.
        member: ObjectId,
    },
    /// `POST /groups/{group}/owners/$ref`.
    AddOwner {
        /// Group object id.
        group: String,
        /// The owner.
        owner: ObjectId,
    },
    /// `DELETE /groups/{group}/owners/{owner}/$ref`.
    RemoveOwner {
        /// Group object id.
        group: String,
        /// The owner.
        owner: ObjectId,
    },
    /// `POST /groups/{group}/extensions`.
    Tag {
        /// Group object id.
        group: String,
        /// The tag.
        tag: ManagedTag,
    },
    /// `PATCH /groups/{group}` with a displayName (and description).
    Retitle {
        /// Group object id.
        group: String,
        /// The new displayName.
        display_name: String,
        /// The new description, when one is set.
        description: Option<String>,
        /// The new visibility, when it changes.
        visibility: Option<Visibility>,
    },
}

/// An op and the writes it settles: one list per member of an `AddMany`, else one list
/// (more than one write when the input repeats itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Packed {
    /// The request.
    pub(crate) op: Op,
    /// Indices into the input.
    pub(crate) settles: Vec<Vec<usize>>,
}

/// One group's adds: each member, with the writes that ask for it.
type GroupAdds<'a> = (&'a str, Vec<(ObjectId, Vec<usize>)>);

/// Turns writes into requests: removes first (a withdrawal goes out before any addition),
/// then each group's adds in PATCHes of 20 (groups in order of first appearance), then tags,
/// titles and owner adds, then owner removes. A write that repeats another shares its
/// request. The requests of one `$batch` run in any order, so a caller that must add an
/// owner before removing another (Graph keeps a group's last owner) sends them in separate
/// calls.
pub(crate) fn pack(writes: &[Write]) -> Vec<Packed> {
    let mut adds: Vec<GroupAdds<'_>> = Vec::new();
    let mut add_group: HashMap<&str, usize> = HashMap::new();
    let mut add_member: HashMap<(&str, ObjectId), (usize, usize)> = HashMap::new();
    let mut removes: Vec<Packed> = Vec::new();
    let mut remove_at: HashMap<(&str, ObjectId), usize> = HashMap::new();
    let mut tags: Vec<Packed> = Vec::new();
    let mut owner_removes: Vec<Packed> = Vec::new();
    // (added, group, owner) → where its request is, in `tags` or `owner_removes`.
    let mut owner_at: HashMap<(bool, &str, ObjectId), usize> = HashMap::new();
    for (index, write) in writes.iter().enumerate() {
        match write {
            Write::Add { group, member } => {
                if let Some(&(g, m)) = add_member.get(&(group.as_str(), *member)) {
                    adds[g].1[m].1.push(index);
                    continue;
                }
                let g = *add_group.entry(group).or_insert_with(|| {
                    adds.push((group, Vec::new()));
                    adds.len() - 1
                });
                add_member.insert((group, *member), (g, adds[g].1.len()));
                adds[g].1.push((*member, vec![index]));
            }
            Write::Remove { group, member } => {
                if let Some(&at) = remove_at.get(&(group.as_str(), *member)) {
                    removes[at].settles[0].push(index);
                    continue;
                }
                remove_at.insert((group, *member), removes.len());
                removes.push(Packed {
                    op: Op::Remove {
                        group: group.clone(),
                        member: *member,
                    },
                    settles: vec![vec![index]],
                });
            }
            Write::Tag { group, tag } => tags.push(Packed {
                op: Op::Tag {
                    group: group.clone(),
                    tag: tag.clone(),
                },
                settles: vec![vec![index]],
            }),
            Write::AddOwner { group, owner } | Write::RemoveOwner { group, owner } => {
                let added = matches!(write, Write::AddOwner { .. });
                let to = if added { &mut tags } else { &mut owner_removes };
                if let Some(&at) = owner_at.get(&(added, group.as_str(), *owner)) {
                    to[at].settles[0].push(index);
                    continue;
                }
                owner_at.insert((added, group, *owner), to.len());
                let (group, owner) = (group.clone(), *owner);
                to.push(Packed {
                    op: if added {
                        Op::AddOwner { group, owner }
                    } else {
                        Op::RemoveOwner { group, owner }
                    },
                    settles: vec![vec![index]],
                });
            }
            Write::Retitle {
                group,
                display_name,
                description,
                visibility,
            } => tags.push(Packed {
                op: Op::Retitle {
                    group: group.clone(),
                    display_name: display_name.clone(),
                    description: description.clone(),
                    visibility: *visibility,
                },
                settles: vec![vec![index]],
            }),
        }
    }
    let mut packed = removes;
    for (group, members) in adds {
        for chunk in members.chunks(MAX_BINDS) {
            packed.push(Packed {
                op: Op::AddMany {
                    group: group.to_owned(),
                    members: chunk.iter().map(|(member, _)| *member).collect(),
                },
                settles: chunk.iter().map(|(_, writes)| writes.clone()).collect(),
            });
        }
    }
    packed.extend(tags);
    packed.extend(owner_removes);
    packed
}

/// What one op's outcome means for its writes.
#[derive(Debug, Clone)]
pub(crate) enum Verdict {
    /// Every write it settles is done.
    Done,
    /// Every write it settles failed with this error.
    Failed(GraphError),
    /// A PATCH refused as a whole: send its members again one by one.
    OneByOne,
}

/// Reads an op's final outcome (after the batch layer's retries).
pub(crate) fn judge(op: &Op, request: &Request, outcome: Result<Reply, GraphError>) -> Verdict {
    let reply = match outcome {
        Ok(reply) => reply,
        Err(error) => return Verdict::Failed(error),
    };
    if reply.is_success() {
        return Verdict::Done;
    }
    let already = is_already_member(reply.status, &reply.body);
    match op {
        // One bad entry fails the whole PATCH; which one only single adds can tell.
        Op::AddMany { members, .. } if members.len() > 1 && (already || reply.status == 404) => {
            Verdict::OneByOne
        }
        Op::AddMany { .. } | Op::AddOne { .. } if already => Verdict::Done,
        // Not a member (the message names the group): what a remove wants.
        Op::Remove { .. } if reply.status == 404 => Verdict::Done,
        Op::AddOwner { .. } if already => Verdict::Done,
        // Not an owner: what an owner remove wants.
        Op::RemoveOwner { .. } if reply.status == 404 => Verdict::Done,
        // The tag is there from an earlier attempt whose reply was lost.
        Op::Tag { .. } if reply.status == 409 => Verdict::Done,
        _ => Verdict::Failed(reply.error(request)),
    }
}

/// The `directoryObjects` URL that binds `member` in a `members@odata.bind` list.
pub(crate) fn bind_url(transport: &Transport, member: &ObjectId) -> Value {
    Value::String(
        transport
            .url(&["directoryObjects", &member.to_string()], &[])
            .to_string(),
    )
}

/// The request for an op.
pub(crate) fn request(transport: &Transport, op: &Op) -> Request {
    let bind = |member: &ObjectId| bind_url(transport, member);
    match op {
        Op::AddMany { group, members } => Request::with_body(
            Method::PATCH,
            transport.url(&["groups", group], &[]),
            json!({ "members@odata.bind": members.iter().map(bind).collect::<Vec<_>>() }),
        ),
        Op::AddOne { group, member } => Request::with_body(
            Method::POST,
            transport.url(&["groups", group, "members", "$ref"], &[]),
            json!({ "@odata.id": bind(member) }),
        ),
        Op::Remove { group, member } => Request {
            method: Method::DELETE,
            url: transport.url(
                &["groups", group, "members", &member.to_string(), "$ref"],
                &[],
            ),
            body: None,
            eventual: false,
        },
        Op::AddOwner { group, owner } => Request::with_body(
            Method::POST,
            transport.url(&["groups", group, "owners", "$ref"], &[]),
            json!({ "@odata.id": bind(owner) }),
        ),
        Op::RemoveOwner { group, owner } => Request {
            method: Method::DELETE,
            url: transport.url(
                &["groups", group, "owners", &owner.to_string(), "$ref"],
                &[],
            ),
            body: None,
            eventual: false,
        },
        Op::Tag { group, tag } => Request::with_body(
            Method::POST,
            transport.url(&["groups", group, "extensions"], &[]),
            json!({
                "@odata.type": "microsoft.graph.openTypeExtension",
                "extensionName": MANAGED_EXTENSION,
                "list": tag.list,
                "family": tag.family,
                "since": tag.since,
            }),
        ),
        Op::Retitle {
            group,
            display_name,
            description,
            visibility,
        } => {
            let mut body = json!({ "displayName": display_name });
            if let Some(description) = description {
                body["description"] = json!(description);
            }
            if let Some(visibility) = visibility {
                body["visibility"] = json!(visibility.as_str());
            }
            Request::with_body(Method::PATCH, transport.url(&["groups", group], &[]), body)
        }
    }
}

/// Sends the writes; one outcome per write, in input order.
pub(crate) async fn write(transport: &Transport, writes: &[Write]) -> Vec<Result<(), GraphError>> {
    let mut outcomes: Vec<Option<Result<(), GraphError>>> = writes.iter().map(|_| None).collect();
    let one_by_one = send(transport, pack(writes), &mut outcomes).await;
    let left = send(transport, one_by_one, &mut outcomes).await;
    debug_assert!(left.is_empty(), "single adds are never split again");
    outcomes
        .into_iter()
        .map(|outcome| outcome.expect("every write is settled by exactly one request"))
        .collect()
}

/// Sends packed ops, settles their writes, and returns the single adds that replace any
/// refused PATCH.
async fn send(
    transport: &Transport,
    packed: Vec<Packed>,
    outcomes: &mut [Option<Result<(), GraphError>>],
) -> Vec<Packed> {
    if packed.is_empty() {
        return Vec::new();
    }
    let requests: Vec<Request> = packed.iter().map(|p| request(transport, &p.op)).collect();
    let replies = batch::send_all(transport, &requests, AlsoRetry::NotReplicated).await;
    let mut one_by_one = Vec::new();
    for ((packed, request), outcome) in packed.into_iter().zip(&requests).zip(replies) {
        match judge(&packed.op, request, outcome) {
            Verdict::Done => settle(outcomes, &packed.settles, &Ok(())),
            Verdict::Failed(error) => settle(outcomes, &packed.settles, &Err(error)),
            Verdict::OneByOne => {
                let Op::AddMany { group, members } = packed.op else {
                    unreachable!("only PATCHes are sent again one by one")
                };
                for (member, settles) in members.into_iter().zip(packed.settles) {
                    one_by_one.push(Packed {
                        op: Op::AddOne {
                            group: group.clone(),
                            member,
                        },
                        settles: vec![settles],
                    });
                }
            }
        }
    }
    one_by_one
}

fn settle(
    outcomes: &mut [Option<Result<(), GraphError>>],
    settles: &[Vec<usize>],
    outcome: &Result<(), GraphError>,
) {
    for &index in settles.iter().flatten() {
        outcomes[index] = Some(outcome.clone());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn oid(n: u128) -> ObjectId {
        ObjectId::from_u128(n)
    }

    fn add(group: &str, n: u128) -> Write {
        Write::Add {
            group: group.to_owned(),
            member: oid(n),
        }
    }

    fn remove(group: &str, n: u128) -> Write {
        Write::Remove {
            group: group.to_owned(),
            member: oid(n),
        }
    }

    fn reply(status: u16, body: Value) -> Result<Reply, GraphError> {
        Ok(Reply {
            status,
            retry_after: None,
            load: None,
            body,
        })
    }

    fn graph_error(code: &str, message: &str) -> Value {
        json!({"error": {"code": code, "message": message}})
    }

    fn some_request() -> Request {
        Request::get(url::Url::parse("https://graph.microsoft.com/v1.0/groups/g").unwrap())
    }

    #[test]
    fn owner_adds_go_with_the_tags_and_owner_removes_last_repeats_shared() {
        let owner = |added: bool, n: u128| {
            let (group, owner) = ("a".to_owned(), oid(n));
            if added {
                Write::AddOwner { group, owner }
            } else {
                Write::RemoveOwner { group, owner }
            }
        };
        let writes = vec![
            owner(false, 1),
            owner(true, 2),
            add("a", 9),
            owner(true, 2),
            remove("a", 8),
        ];
        let packed = pack(&writes);
        let ops: Vec<&Op> = packed.iter().map(|p| &p.op).collect();
        assert!(matches!(ops[0], Op::Remove { .. }), "{ops:?}");
        assert!(matches!(ops[1], Op::AddMany { .. }), "{ops:?}");
        assert!(matches!(ops[2], Op::AddOwner { .. }), "{ops:?}");
        assert!(matches!(ops[3], Op::RemoveOwner { .. }), "{ops:?}");
        assert_eq!(packed.len(), 4);
        assert_eq!(packed[2].settles, vec![vec![1, 3]]);
        let refused = reply(
            400,
            graph_error(
                "Request_BadRequest",
                "One or more added object references already exist for the following modified properties: 'owners'.",
            ),
        );
        assert!(matches!(
            judge(&packed[2].op, &some_request(), refused),
            Verdict::Done
        ));
        let absent = reply(404, graph_error("Request_ResourceNotFound", "gone"));
        assert!(matches!(
            judge(&packed[3].op, &some_request(), absent),
            Verdict::Done
        ));
    }

    #[test]
    fn one_groups_adds_fill_patches_of_twenty_before_the_next_group() {
        let mut writes: Vec<Write> = (0..45).map(|n| add("a", n)).collect();
        writes.insert(10, add("b", 100));
        writes.push(add("b", 101));
        let packed = pack(&writes);
        let sizes: Vec<(String, usize)> = packed
            .iter()
            .map(|p| match &p.op {
                Op::AddMany { group, members } => (group.clone(), members.len()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            sizes,
            vec![
                ("a".to_owned(), 20),
                ("a".to_owned(), 20),
                ("a".to_owned(), 5),
                ("b".to_owned(), 2)
            ]
        );
        // The write inserted at 10 is settled by group b's PATCH, first member.
        assert_eq!(packed[3].settles[0], vec![10]);
        assert_eq!(packed[0].settles[10], vec![11]);
    }

    #[test]
    fn every_write_is_settled_once_and_repeats_share_a_request() {
        let writes = vec![
            add("a", 1),
            remove("a", 2),
            add("a", 1),
            Write::Tag {
                group: "a".to_owned(),
                tag: ManagedTag {
                    list: "l".to_owned(),
                    family: "f".to_owned(),
                    since: "2026-01-01T00:00:00Z".to_owned(),
                },
            },
            remove("a", 2),
        ];
        let packed = pack(&writes);
        assert_eq!(packed.len(), 3, "{packed:?}");
        let mut settled: Vec<usize> = packed
            .iter()
            .flat_map(|p| p.settles.iter().flatten().copied())
            .collect();
        settled.sort_unstable();
        assert_eq!(settled, vec![0, 1, 2, 3, 4]);
        assert!(
            matches!(packed[0].op, Op::Remove { .. }),
            "removes go first"
        );
        assert_eq!(packed[0].settles, vec![vec![1, 4]]);
        assert_eq!(packed[1].settles, vec![vec![0, 2]]);
        assert!(matches!(packed[2].op, Op::Tag { .. }));
    }

    #[test]
    fn a_thousand_adds_to_few_groups_need_ceil_adds_over_400_batches() {
        let writes: Vec<Write> = (0..1_000u128)
            .map(|n| add(["a", "b", "c"][(n % 3) as usize], n))
            .collect();
        let packed = pack(&writes);
        assert_eq!(packed.len(), 51, "17 PATCHes per group");
        assert_eq!(packed.len().div_ceil(batch::MAX_BATCH), 3);
    }

    #[test]
    fn refused_patch_goes_one_by_one_and_single_outcomes_settle() {
        let many = Op::AddMany {
            group: "g".to_owned(),
            members: vec![oid(1), oid(2)],
        };
        let one = Op::AddOne {
            group: "g".to_owned(),
            member: oid(1),
        };
        let already = graph_error(
            "Request_BadRequest",
            "One or more added object references already exist for the following modified properties: 'members'.",
        );
        let missing = graph_error(
            "Request_ResourceNotFound",
            "Resource 'x' does not exist or one of its queried reference-property objects are not present.",
        );
        let r = some_request();
        assert!(matches!(
            judge(&many, &r, reply(204, Value::Null)),
            Verdict::Done
        ));
        assert!(matches!(
            judge(&many, &r, reply(400, already.clone())),
            Verdict::OneByOne
        ));
        assert!(matches!(
            judge(&many, &r, reply(404, missing.clone())),
            Verdict::OneByOne
        ));
        assert!(matches!(
            judge(&one, &r, reply(400, already.clone())),
            Verdict::Done
        ));
        assert!(matches!(
            judge(&one, &r, reply(404, missing.clone())),
            Verdict::Failed(e) if e.is_not_found()
        ));
        let lone = Op::AddMany {
            group: "g".to_owned(),
            members: vec![oid(1)],
        };
        assert!(
            matches!(judge(&lone, &r, reply(400, already)), Verdict::Done),
            "a PATCH of one needs no second try"
        );
    }

    #[test]
    fn absent_members_and_existing_tags_count_as_done() {
        let r = some_request();
        let gone = Op::Remove {
            group: "g".to_owned(),
            member: oid(1),
        };
        assert!(matches!(
            judge(
                &gone,
                &r,
                reply(
                    404,
                    graph_error("Request_ResourceNotFound", "Resource 'g' does not exist")
                )
            ),
            Verdict::Done
        ));
        let tag = Op::Tag {
            group: "g".to_owned(),
            tag: ManagedTag {
                list: "l".to_owned(),
                family: "f".to_owned(),
                since: "s".to_owned(),
            },
        };
        assert!(matches!(
            judge(
                &tag,
                &r,
                reply(
                    409,
                    graph_error(
                        "NameAlreadyExists",
                        "An extension already exists with given id."
                    )
                )
            ),
            Verdict::Done
        ));
        assert!(matches!(
            judge(
                &tag,
                &r,
                reply(403, graph_error("Authorization_RequestDenied", "no"))
            ),
            Verdict::Failed(_)
        ));
    }

    #[test]
    fn read_only_groups_and_unanswered_requests_fail_every_write_they_carry() {
        let r = some_request();
        let many = Op::AddMany {
            group: "g".to_owned(),
            members: vec![oid(1), oid(2)],
        };
        let read_only = graph_error(
            "Request_BadRequest",
            "Cannot Update a mail-enabled security groups and or distribution list.",
        );
        assert!(matches!(
            judge(&many, &r, reply(400, read_only)),
            Verdict::Failed(_)
        ));
        let dropped = GraphError::Transport {
            request: "POST /v1.0/$batch".to_owned(),
            reason: "connection closed".to_owned(),
        };
        assert!(matches!(
            judge(&many, &r, Err(dropped)),
            Verdict::Failed(e) if e.is_transient()
        ));
    }
}
