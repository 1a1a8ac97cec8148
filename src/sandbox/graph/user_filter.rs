//! `$filter` over user properties beyond the indexed lookups: `eq`, `ne`, `startswith` and
//! `endswith`, joined by `and`, as Entra sources send them. Like Graph, `ne`, `endswith` and
//! `eq null` are advanced queries: they need `ConsistencyLevel: eventual` and `$count=true`.

use super::users::UserProperty;
use crate::sandbox::directory::User;
use crate::sandbox::error::GraphError;

/// What one clause compares against.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Literal {
    Text(String),
    Bool(bool),
    Null,
}

/// How one clause compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Test {
    Eq,
    Ne,
    StartsWith,
    EndsWith,
}

/// A property the filter reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Property(UserProperty),
    AccountEnabled,
}

/// One clause.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Clause {
    field: Field,
    test: Test,
    literal: Literal,
}

/// A parsed filter: clauses that must all hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFilter {
    clauses: Vec<Clause>,
}

impl UserFilter {
    /// Parses `filter`; anything else is Graph's 400 for an unsupported query.
    pub fn parse(filter: &str) -> Result<UserFilter, GraphError> {
        let unsupported =
            || GraphError::unsupported_query(format!("Unsupported Query: '{filter}'."));
        let mut clauses = Vec::new();
        let mut rest = filter.trim();
        loop {
            let (clause, after) = clause(rest).ok_or_else(unsupported)?;
            clauses.push(clause);
            let after = after.trim_start();
            if after.is_empty() {
                return Ok(UserFilter { clauses });
            }
            let (joiner, next) = after
                .split_once(char::is_whitespace)
                .ok_or_else(unsupported)?;
            if !joiner.eq_ignore_ascii_case("and") {
                return Err(unsupported());
            }
            rest = next.trim_start();
        }
    }

    /// Whether Graph serves this filter only as an advanced query.
    pub fn is_advanced(&self) -> bool {
        self.clauses.iter().any(|c| {
            matches!(c.test, Test::Ne | Test::EndsWith)
                || (c.literal == Literal::Null && c.test == Test::Eq)
        })
    }

    /// Whether `user` passes every clause.
    pub fn matches(&self, user: &User) -> bool {
        self.clauses.iter().all(|clause| {
            let value: Option<String> = match clause.field {
                Field::Property(p) => p.value(user).map(str::to_owned),
                Field::AccountEnabled => Some(user.account_enabled.to_string()),
            };
            let wanted = match &clause.literal {
                Literal::Text(text) => Some(text.clone()),
                Literal::Bool(b) => Some(b.to_string()),
                Literal::Null => None,
            };
            // Graph compares string properties case-insensitively.
            let fold = |v: &Option<String>| v.as_deref().map(str::to_lowercase);
            let (value, wanted) = (fold(&value), fold(&wanted));
            match clause.test {
                Test::Eq => value == wanted,
                Test::Ne => value != wanted,
                Test::StartsWith => match (value, wanted) {
                    (Some(v), Some(w)) => v.starts_with(&w),
                    _ => false,
                },
                Test::EndsWith => match (value, wanted) {
                    (Some(v), Some(w)) => v.ends_with(&w),
                    _ => false,
                },
            }
        })
    }
}

fn field(name: &str) -> Option<Field> {
    if name.eq_ignore_ascii_case("accountEnabled") {
        return Some(Field::AccountEnabled);
    }
    UserProperty::parse(name).map(Field::Property)
}

/// One clause and what follows it.
fn clause(input: &str) -> Option<(Clause, &str)> {
    let lower = input.to_ascii_lowercase();
    for (prefix, test) in [
        ("startswith(", Test::StartsWith),
        ("endswith(", Test::EndsWith),
    ] {
        if lower.starts_with(prefix) {
            let inside = &input[prefix.len()..];
            let (name, after) = inside.split_once(',')?;
            let (literal, after) = super::request::string_literal(after.trim_start())?;
            let after = after.trim_start().strip_prefix(')')?;
            let clause = Clause {
                field: field(name.trim())?,
                test,
                literal: Literal::Text(literal),
            };
            return Some((clause, after));
        }
    }
    let (name, after) = input.split_once(char::is_whitespace)?;
    let (operator, after) = after.trim_start().split_once(char::is_whitespace)?;
    let test = match operator.to_ascii_lowercase().as_str() {
        "eq" => Test::Eq,
        "ne" => Test::Ne,
        _ => return None,
    };
    let after = after.trim_start();
    let (literal, after) = if after.starts_with('\'') {
        let (text, after) = super::request::string_literal(after)?;
        (Literal::Text(text), after)
    } else {
        let end = after.find([' ', ')']).unwrap_or(after.len());
        let literal = match after[..end].to_ascii_lowercase().as_str() {
            "true" => Literal::Bool(true),
            "false" => Literal::Bool(false),
            "null" => Literal::Null,
            _ => return None,
        };
        (literal, &after[end..])
    };
    Some((
        Clause {
            field: field(name)?,
            test,
            literal,
        },
        after,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(department: Option<&str>, enabled: bool) -> User {
        User {
            id: "u".into(),
            user_principal_name: "a@x.org".into(),
            mail: None,
            employee_id: None,
            display_name: "A".into(),
            department: department.map(str::to_owned),
            job_title: Some("Lecturer".into()),
            employee_type: Some("Staff".into()),
            account_enabled: enabled,
        }
    }

    #[test]
    fn conjunctions_of_eq_ne_and_startswith_match_as_graph_does() {
        let filter =
            UserFilter::parse("department eq 'physics' and accountEnabled eq true").unwrap();
        assert!(filter.matches(&user(Some("Physics"), true)));
        assert!(!filter.matches(&user(Some("Physics"), false)));
        assert!(!filter.matches(&user(None, true)));
        assert!(!filter.is_advanced());
        let prefix = UserFilter::parse("startswith(jobTitle,'lect')").unwrap();
        assert!(prefix.matches(&user(None, true)));
        let advanced = UserFilter::parse("department ne null and endswith(mail,'@x.org')").unwrap();
        assert!(advanced.is_advanced());
        assert!(!advanced.matches(&user(Some("Physics"), true)));
    }

    #[test]
    fn other_forms_are_unsupported_queries() {
        for filter in [
            "department eq 'a' or department eq 'b'",
            "colour eq 'blue'",
            "department gt 'a'",
            "startswith(department 'a')",
        ] {
            let error = UserFilter::parse(filter).unwrap_err();
            assert_eq!(error.status, 400, "{filter}");
        }
    }
}
