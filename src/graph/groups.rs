//! Groups: the tenant's groups with their tags, lookup by nickname, creation that never makes
//! a second group, and complete member lists.

use graph_rs_sdk::http::Method;
use serde_json::{Value, json};

use super::batch::{self, AlsoRetry};
use super::error::{GraphError, is_nickname_taken};
use super::pages::{MAX_PAGE, follow, list_all};
use super::retry::{Attempts, Fault};
use super::transport::{Request, Transport};
use super::write::{MAX_BINDS, bind_url};
use super::{DirectoryGroup, Ensured, GroupSpec, MANAGED_EXTENSION, ManagedTag};
use crate::plan::ObjectId;

/// The group properties rollcall reads.
const GROUP_SELECT: &str = "id,mailNickname,displayName,description,visibility,groupTypes";

/// Every group in the tenant, with its tag. (With `$expand`, Graph serves at most 100
/// directory objects a page whatever `$top` says; the paging loop follows the links.)
pub(crate) async fn groups(transport: &Transport) -> Result<Vec<DirectoryGroup>, GraphError> {
    let first = Request::get(transport.url(
        &["groups"],
        &[
            ("$select", GROUP_SELECT),
            ("$expand", "extensions"),
            ("$top", MAX_PAGE),
        ],
    ));
    let request = first.describe();
    list_all(transport, first)
        .await?
        .iter()
        .map(|value| parse_group(value, &request))
        .collect()
}

/// The `$filter` lookup of one nickname (with extensions, so a tag shows).
fn lookup_request(transport: &Transport, mail_nickname: &str) -> Request {
    let filter = format!("mailNickname eq '{}'", mail_nickname.replace('\'', "''"));
    Request::get(transport.url(
        &["groups"],
        &[
            ("$filter", filter.as_str()),
            ("$select", GROUP_SELECT),
            ("$expand", "extensions"),
        ],
    ))
}

/// The group among a lookup's results that has this nickname.
fn with_nickname(
    values: &[Value],
    mail_nickname: &str,
    request: &str,
) -> Result<Option<DirectoryGroup>, GraphError> {
    for value in values {
        let group = parse_group(value, request)?;
        if group.mail_nickname.eq_ignore_ascii_case(mail_nickname) {
            return Ok(Some(group));
        }
    }
    Ok(None)
}

/// The group with this mailNickname, if a read sees one.
pub(crate) async fn find_group(
    transport: &Transport,
    mail_nickname: &str,
) -> Result<Option<DirectoryGroup>, GraphError> {
    let first = lookup_request(transport, mail_nickname);
    let request = first.describe();
    with_nickname(&list_all(transport, first).await?, mail_nickname, &request)
}

/// Looks each nickname up; the lookups travel 20 to a `$batch`. One outcome per nickname, in
/// order: the group that holds it, if a read sees one.
pub(crate) async fn find_groups(
    transport: &Transport,
    mail_nicknames: &[String],
) -> Vec<Result<Option<DirectoryGroup>, GraphError>> {
    let lookups: Vec<Request> = mail_nicknames
        .iter()
        .map(|nickname| lookup_request(transport, nickname))
        .collect();
    let replies = batch::send_all(transport, &lookups, AlsoRetry::Nothing).await;
    let found = mail_nicknames.iter().zip(lookups).zip(replies).map(
        |((nickname, lookup), reply)| async move {
            let request = lookup.describe();
            let mut found = Vec::new();
            follow(transport, lookup, reply?, |items| {
                found.extend(items);
                Ok(())
            })
            .await?;
            with_nickname(&found, nickname, &request)
        },
    );
    futures::future::join_all(found).await
}

/// Finds each group by nickname, or creates it; one outcome per spec, in order. The
/// lookups travel 20 to a `$batch`; only the groups none of them found are created, each as
/// [`create_group`] does.
pub(crate) async fn ensure_groups(
    transport: &Transport,
    specs: &[GroupSpec],
) -> Vec<Result<(DirectoryGroup, Ensured), GraphError>> {
    let nicknames: Vec<String> = specs.iter().map(|s| s.mail_nickname.clone()).collect();
    let found = find_groups(transport, &nicknames).await;
    let ensured = specs.iter().zip(found).map(|(spec, found)| async move {
        match found? {
            Some(group) => Ok((group, Ensured::Found)),
            None => create_group(transport, spec).await,
        }
    });
    futures::future::join_all(ensured).await
}

/// Creates a group a lookup did not find. A create whose outcome is unknown (no reply, a
/// 5xx) or that finds the nickname taken is followed by lookups, riding out replication lag,
/// before any second create: a lost reply never makes a second group.
async fn create_group(
    transport: &Transport,
    spec: &GroupSpec,
) -> Result<(DirectoryGroup, Ensured), GraphError> {
    let mut body = json!({
        "displayName": spec.display_name,
        "mailNickname": spec.mail_nickname,
        "mailEnabled": true,
        "securityEnabled": false,
        "groupTypes": ["Unified"],
    });
    // Visibility and behaviours can be right only at creation (HiddenMembership and the
    // behaviours never change afterwards): GRAPH.md "Groups".
    if let Some(visibility) = &spec.visibility {
        body["visibility"] = json!(visibility);
    }
    if !spec.behaviors.is_empty() {
        body["resourceBehaviorOptions"] = json!(spec.behaviors);
    }
    if let Some(description) = spec.description.as_deref().filter(|d| !d.trim().is_empty()) {
        body["description"] = json!(description);
    }
    let plain = Request::with_body(Method::POST, transport.url(&["groups"], &[]), body.clone());
    let mut create = plain.clone();
    let mut ensured = Ensured::Created;
    let binds = !spec.members.is_empty() || !spec.owners.is_empty();
    if binds {
        // Owners and members share the 20 references a request may carry (GRAPH.md
        // "Owners"): owners first, members with what is left.
        let owners = spec.owners.len().min(MAX_BINDS);
        let urls = |people: &[ObjectId], most: usize| -> Vec<Value> {
            people
                .iter()
                .take(most)
                .map(|person| bind_url(transport, person))
                .collect()
        };
        if owners > 0 {
            body["owners@odata.bind"] = json!(urls(&spec.owners, owners));
        }
        if !spec.members.is_empty() && owners < MAX_BINDS {
            body["members@odata.bind"] = json!(urls(&spec.members, MAX_BINDS - owners));
        }
        create = Request::with_body(Method::POST, transport.url(&["groups"], &[]), body);
    }
    let mut attempts = Attempts::start();
    loop {
        let unknown = match transport.send_once(&create).await {
            Ok(reply) if reply.is_success() => {
                let group = parse_group(&reply.body, &create.describe())?;
                tracing::info!(group = %group.id, mail_nickname = %group.mail_nickname, "created group");
                return Ok((group, ensured));
            }
            Ok(reply) if is_nickname_taken(reply.status, &reply.body) => {
                // Someone holds the nickname: a create of ours whose reply was lost, or a race.
                return match settled_lookup(transport, &spec.mail_nickname).await? {
                    Some(group) => Ok((group, Ensured::Found)),
                    None => Err(reply.error(&create)),
                };
            }
            Ok(reply) if reply.status >= 500 => reply.error(&create),
            Ok(reply) if ensured == Ensured::Created && binds => {
                // A bound member Graph does not know (or not yet) fails the whole create:
                // create the group empty and leave its members to the ordinary adds.
                tracing::debug!(mail_nickname = %spec.mail_nickname, error = %reply.error(&create), "create with members refused; creating the group empty");
                create = plain.clone();
                ensured = Ensured::CreatedEmpty;
                continue;
            }
            Ok(reply) => return Err(reply.error(&create)),
            Err(error @ GraphError::Transport { .. }) => error,
            Err(error) => return Err(error),
        };
        tracing::debug!(mail_nickname = %spec.mail_nickname, error = %unknown, "group create outcome unknown; looking it up");
        if let Some(group) = settled_lookup(transport, &spec.mail_nickname).await? {
            return Ok((group, Ensured::Found));
        }
        let Some(delay) = transport.policy.next_delay(&mut attempts, Fault::NoReply) else {
            return Err(unknown);
        };
        transport.counters.retry();
        tokio::time::sleep(delay).await;
    }
}

/// Looks a nickname up until a read shows it or the retry policy runs out, so that a group
/// created moments ago (Graph's reads lag its writes) is found rather than made again.
async fn settled_lookup(
    transport: &Transport,
    mail_nickname: &str,
) -> Result<Option<DirectoryGroup>, GraphError> {
    let mut attempts = Attempts::start();
    loop {
        if let Some(group) = find_group(transport, mail_nickname).await? {
            return Ok(Some(group));
        }
        let Some(delay) = transport
            .policy
            .next_delay(&mut attempts, Fault::NotReplicated)
        else {
            return Ok(None);
        };
        tokio::time::sleep(delay).await;
    }
}

/// Every user member of each group; the first pages travel 20 to a `$batch`, the rest are
/// followed one group at a time.
pub(crate) async fn members_of(
    transport: &Transport,
    groups: &[String],
) -> Vec<Result<Vec<ObjectId>, GraphError>> {
    listings_of(transport, groups, &["members", "microsoft.graph.user"]).await
}

/// Every owner of each group (users, and service principals such as an app that owns it),
/// read as [`members_of`] reads members (GRAPH.md "Owners").
pub(crate) async fn owners_of(
    transport: &Transport,
    groups: &[String],
) -> Vec<Result<Vec<ObjectId>, GraphError>> {
    listings_of(transport, groups, &["owners"]).await
}

/// The ids of the directory objects under `/groups/{id}/{tail…}` of each group.
async fn listings_of(
    transport: &Transport,
    groups: &[String],
    tail: &[&str],
) -> Vec<Result<Vec<ObjectId>, GraphError>> {
    let firsts: Vec<Request> = groups
        .iter()
        .map(|group| {
            let mut path = vec!["groups", group.as_str()];
            path.extend_from_slice(tail);
            Request::get(transport.url(&path, &[("$select", "id"), ("$top", MAX_PAGE)]))
        })
        .collect();
    let replies = batch::send_all(transport, &firsts, AlsoRetry::Nothing).await;
    let listings = firsts
        .into_iter()
        .zip(replies)
        .map(|(first, reply)| async move {
            let reply = reply?;
            let request = first.describe();
            let mut members = Vec::new();
            follow(transport, first, reply, |items| {
                members.reserve(items.len());
                for item in &items {
                    members.push(object_id(item, &request)?);
                }
                Ok(())
            })
            .await?;
            Ok(members)
        });
    futures::future::join_all(listings).await
}

/// The `id` of a directory object in a reply.
pub(crate) fn object_id(value: &Value, request: &str) -> Result<ObjectId, GraphError> {
    let id = value["id"].as_str().unwrap_or_default();
    id.parse()
        .map_err(|e| GraphError::Other(format!("{request}: {e}")))
}

/// A group as Graph shows it.
fn parse_group(value: &Value, request: &str) -> Result<DirectoryGroup, GraphError> {
    let text = |name: &str| value[name].as_str().unwrap_or_default().to_owned();
    let id = text("id");
    if id.is_empty() {
        return Err(GraphError::Other(format!(
            "{request}: a group without an `id` in the reply"
        )));
    }
    Ok(DirectoryGroup {
        id,
        mail_nickname: text("mailNickname"),
        display_name: text("displayName"),
        description: value["description"]
            .as_str()
            .filter(|d| !d.is_empty())
            .map(str::to_owned),
        visibility: serde_json::from_value(value["visibility"].clone()).ok(),
        unified: value["groupTypes"]
            .as_array()
            .is_some_and(|types| types.iter().any(|t| t == "Unified")),
        tag: parse_tag(&value["extensions"]),
    })
}

/// The `org.rollcall.managed` extension among a group's expanded extensions. One that lacks
/// a property is no tag: rollcall then leaves the group alone rather than guess.
pub(crate) fn parse_tag(extensions: &Value) -> Option<ManagedTag> {
    let extension = extensions
        .as_array()?
        .iter()
        .find(|e| e["extensionName"] == MANAGED_EXTENSION || e["id"] == MANAGED_EXTENSION)?;
    let property = |name: &str| extension[name].as_str().map(str::to_owned);
    match (property("list"), property("family"), property("since")) {
        (Some(list), Some(family), Some(since)) => Some(ManagedTag {
            list,
            family,
            since,
        }),
        _ => {
            tracing::warn!(
                extension = %extension,
                "a group's {MANAGED_EXTENSION} extension lacks list, family or since; treating the group as unmanaged"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_is_read_from_the_managed_extension_only() {
        let extensions = json!([
            {"@odata.type": "#microsoft.graph.openTypeExtension", "id": "com.other", "extensionName": "com.other", "list": "x"},
            {"@odata.type": "#microsoft.graph.openTypeExtension", "id": "org.rollcall.managed",
             "extensionName": "org.rollcall.managed", "list": "mod-cs101", "family": "modules",
             "since": "2026-01-01T00:00:00Z"}
        ]);
        assert_eq!(
            parse_tag(&extensions),
            Some(ManagedTag {
                list: "mod-cs101".to_owned(),
                family: "modules".to_owned(),
                since: "2026-01-01T00:00:00Z".to_owned(),
            })
        );
    }

    #[test]
    fn incomplete_or_absent_tags_are_no_tags() {
        assert_eq!(parse_tag(&json!([])), None);
        assert_eq!(parse_tag(&Value::Null), None);
        assert_eq!(
            parse_tag(
                &json!([{"extensionName": "org.rollcall.managed", "list": "a", "family": "b"}])
            ),
            None
        );
        assert_eq!(
            parse_tag(
                &json!([{"extensionName": "org.rollcall.managed", "list": "a", "family": "b", "since": 7}])
            ),
            None
        );
    }

    #[test]
    fn groups_are_parsed_with_their_kind_and_tag() {
        let group = parse_group(
            &json!({"id": "g1", "mailNickname": "n", "displayName": "N", "groupTypes": ["Unified"],
                    "extensions": [{"extensionName": "org.rollcall.managed", "list": "n", "family": "f", "since": "s"}]}),
            "GET /groups",
        )
        .unwrap();
        assert!(group.unified);
        assert_eq!(group.tag.map(|t| t.list), Some("n".to_owned()));
        let security = parse_group(&json!({"id": "g2", "groupTypes": []}), "GET /groups").unwrap();
        assert!(!security.unified);
        assert!(parse_group(&json!({"displayName": "x"}), "GET /groups").is_err());
    }
}
