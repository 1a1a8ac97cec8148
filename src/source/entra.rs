//! Entra ID sources: users by a Graph `$filter`, or the members of an existing group, read
//! through rollcall's own Graph client (paging, retry, throttling) and turned into rows by
//! the source's templates over each user's properties.

use serde_json::Value;

use super::entries::{RowTemplates, Skipped};
use super::rows::Accumulator;
use super::template::Entry;
use super::{SourceError, SourceRead, Witness};
use crate::config::SourceConfig;
use crate::graph::{GraphClient, GraphError};

/// Reads a whole Entra source within its timeout.
pub(crate) async fn read(
    source: &SourceConfig,
    graph: Option<&GraphClient>,
    witness: Option<Witness>,
) -> Result<SourceRead, SourceError> {
    let Some(graph) = graph else {
        return Err(SourceError::Config {
            source_name: source.name.clone(),
            message: "an entra source reads Microsoft Graph and needs the [graph] section"
                .to_owned(),
        });
    };
    let templates = RowTemplates::of(source, None)?;
    let mut select = templates.attributes();
    select.insert("id".to_owned());
    let select: Vec<String> = select.into_iter().collect();
    let select_text = select.join(",");
    let read = async {
        let mut rows = Accumulator::new(source.member_key)
            .with_role(source.role, false)
            .watching(witness);
        let mut skipped = Skipped::default();
        let mut fault: Option<SourceError> = None;
        let mut take = |users: Vec<Value>| {
            for user in &users {
                let id = user["id"].as_str().unwrap_or("a user without an id");
                let entry = entry_of(user, &select);
                if let Err(error) =
                    templates.push_entry(&mut rows, &mut skipped, id, &entry, &source.name)
                {
                    fault.get_or_insert(error);
                }
            }
            Ok(())
        };
        let graph_fault = |error: GraphError| SourceError::Directory {
            source_name: source.name.clone(),
            message: format!("Microsoft Graph: {error}"),
        };
        match (&source.users_filter, &source.group) {
            (Some(filter), _) => graph
                .users_where(filter, &select_text, &mut take)
                .await
                .map_err(graph_fault)?,
            (None, Some(group)) => {
                let id = graph
                    .group_id(group)
                    .await
                    .map_err(graph_fault)?
                    .ok_or_else(|| SourceError::NoGroup {
                        source_name: source.name.clone(),
                        group: group.clone(),
                    })?;
                graph
                    .group_users(&id, &select_text, &mut take)
                    .await
                    .map_err(graph_fault)?;
            }
            (None, None) => {
                return Err(SourceError::Config {
                    source_name: source.name.clone(),
                    message: "needs `users_filter` or `group`".to_owned(),
                });
            }
        }
        if let Some(error) = fault {
            return Err(error);
        }
        Ok((rows, skipped))
    };
    let (rows, skipped) = tokio::time::timeout(source.timeout, read)
        .await
        .map_err(|_| SourceError::Timeout {
            source_name: source.name.clone(),
            after: source.timeout,
        })??;
    Ok(SourceRead::new(source, rows.finish()).with_skipped(&skipped))
}

/// A user's selected properties as a template entry: text as it is, numbers and booleans as
/// written, arrays (`otherMails`, `businessPhones`) as several values, null as absent.
fn entry_of(user: &Value, select: &[String]) -> Entry {
    let mut entry = Entry::new();
    for name in select {
        // Graph answers with its own spelling of the name; match it case-insensitively.
        let value = user.get(name.as_str()).or_else(|| {
            user.as_object()?
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        });
        let values: Vec<String> = match value {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(text)) => vec![text.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|item| match item {
                    Value::String(text) => Some(text.clone()),
                    Value::Null => None,
                    other => Some(other.to_string()),
                })
                .collect(),
            Some(other) => vec![other.to_string()],
        };
        entry.add(name, values);
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_properties_become_entries_with_arrays_as_several_values() {
        let select: Vec<String> = [
            "id",
            "department",
            "otherMails",
            "accountEnabled",
            "jobTitle",
        ]
        .map(str::to_owned)
        .to_vec();
        let entry = entry_of(
            &json!({"id": "u1", "Department": "Ffiseg", "otherMails": ["a@x", "b@x"],
                    "accountEnabled": true, "jobTitle": null}),
            &select,
        );
        assert_eq!(entry.get("department"), ["Ffiseg"]);
        assert_eq!(entry.get("othermails"), ["a@x", "b@x"]);
        assert_eq!(entry.get("accountEnabled"), ["true"]);
        assert!(entry.get("jobTitle").is_empty());
    }
}
