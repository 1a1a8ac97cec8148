//! What a write's result means for its journal operation (DESIGN.md "Per-list isolation"):
//! done, retried later, failed for good, or failed in a way that holds the whole list.

use crate::graph::{GraphError, Write};
use crate::store::Outcome;

/// How the journal marks an operation whose failure holds its list (the group is gone or
/// refused to rollcall): the report folds such failures into held lists.
pub const HELD: &str = "list held: ";

/// Graph's refusal to remove a group's last owner (GRAPH.md "Owners").
const LAST_OWNER: &str = "must have at least one owner";

/// What a write's result means for its journal operation: done; retried later (transient);
/// failed for good; or failed in a way that holds the whole list (a 403 for the group, the
/// last-owner refusal, or a 404 that names the group rather than the member: the group is
/// gone).
pub(super) fn outcome_of(write: &Write, result: Result<(), GraphError>) -> Outcome {
    let error = match result {
        Ok(()) => return Outcome::Done,
        Err(e) if e.is_transient() => return Outcome::Retry(e.to_string()),
        Err(e) => e,
    };
    let group = match write {
        Write::Add { group, .. }
        | Write::Remove { group, .. }
        | Write::AddOwner { group, .. }
        | Write::RemoveOwner { group, .. }
        | Write::Tag { group, .. }
        | Write::Retitle { group, .. } => group,
    };
    let holds = match &error {
        GraphError::Status { status: 403, .. } => true,
        // Graph keeps a group's last owner: the list's owners need a person (DESIGN.md
        // "Per-list isolation").
        GraphError::Status {
            status: 400,
            message,
            ..
        } if message.contains(LAST_OWNER) => true,
        GraphError::Status {
            status: 404,
            message,
            ..
        } => match write {
            Write::Add { member, .. } => !message.contains(&member.to_string()),
            _ => {
                message.contains(group.as_str())
                    || matches!(write, Write::Retitle { .. } | Write::Tag { .. })
            }
        },
        _ => false,
    };
    if holds {
        Outcome::Failed(format!("{HELD}{error}"))
    } else {
        Outcome::Failed(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::ObjectId;

    fn status(status: u16, message: &str) -> Result<(), GraphError> {
        Err(GraphError::Status {
            request: "PATCH /v1.0/groups/g-1".to_owned(),
            status,
            code: "Request_ResourceNotFound".to_owned(),
            message: message.to_owned(),
        })
    }

    fn add() -> Write {
        Write::Add {
            group: "g-1".to_owned(),
            member: ObjectId::from_u128(7),
        }
    }

    #[test]
    fn a_group_refused_for_good_holds_its_list_and_a_member_refused_stays_the_members() {
        let member = ObjectId::from_u128(7).to_string();
        assert_eq!(outcome_of(&add(), Ok(())), Outcome::Done);
        let gone = outcome_of(&add(), status(404, "Resource 'g-1' does not exist"));
        assert!(
            matches!(&gone, Outcome::Failed(e) if e.starts_with(HELD)),
            "{gone:?}"
        );
        let denied = outcome_of(&add(), status(403, "Insufficient privileges"));
        assert!(
            matches!(&denied, Outcome::Failed(e) if e.starts_with(HELD)),
            "{denied:?}"
        );
        let unknown = outcome_of(
            &add(),
            status(404, &format!("Resource '{member}' does not exist")),
        );
        assert!(
            matches!(&unknown, Outcome::Failed(e) if !e.starts_with(HELD)),
            "{unknown:?}"
        );
        let throttled = outcome_of(&add(), status(429, "slow down"));
        assert!(matches!(throttled, Outcome::Retry(_)));
        let retitle = Write::Retitle {
            group: "g-1".to_owned(),
            display_name: "T".to_owned(),
            description: None,
            visibility: None,
        };
        assert!(
            matches!(outcome_of(&retitle, status(404, "gone")), Outcome::Failed(e) if e.starts_with(HELD))
        );
    }

    #[test]
    fn the_last_owner_refusal_holds_the_list_and_an_absent_owner_is_done() {
        let remove = Write::RemoveOwner {
            group: "g-1".to_owned(),
            owner: ObjectId::from_u128(7),
        };
        let refused = outcome_of(
            &remove,
            Err(GraphError::Status {
                request: "DELETE /v1.0/groups/g-1/owners/x/$ref".to_owned(),
                status: 400,
                code: "Request_BadRequest".to_owned(),
                message:
                    "The group must have at least one owner, hence this owner cannot be removed."
                        .to_owned(),
            }),
        );
        assert!(
            matches!(&refused, Outcome::Failed(e) if e.starts_with(HELD)),
            "{refused:?}"
        );
        assert_eq!(outcome_of(&remove, Ok(())), Outcome::Done);
    }
}
