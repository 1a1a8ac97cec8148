//! Rows from directory entries (`ldap`, `entra`): the source's templates rendered over each
//! entry, and the rows that render empty or ambiguous skipped, counted and named.

use std::collections::BTreeSet;

use super::SourceError;
use super::rows::{Accumulator, RawRow};
use super::template::{Entry, Fault, Template};
use crate::config::{MemberKey, SourceConfig};

/// How many skipped entries a warning names before it only counts them.
const SKIPPED_NAMED: usize = 10;

/// A source's `list`, `member` and `display_name` templates.
#[derive(Debug, Clone)]
pub(crate) struct RowTemplates {
    pub(crate) list: Template,
    pub(crate) member: Template,
    pub(crate) display_name: Option<Template>,
}

/// The attribute `member_key` names, which `member` renders when it is not given.
pub(crate) fn default_member(key: MemberKey) -> &'static str {
    match key {
        MemberKey::ObjectId => "{id}",
        MemberKey::Upn => "{userPrincipalName}",
        MemberKey::Mail => "{mail}",
        MemberKey::EmployeeId => "{employeeId}",
    }
}

impl RowTemplates {
    /// The templates of `source` (validated with the configuration); `list` falls back to
    /// `default_list` (the groups form's `{cn}`).
    pub(crate) fn of(
        source: &SourceConfig,
        default_list: Option<&str>,
    ) -> Result<Self, SourceError> {
        let parse = |field: &str, text: &str| {
            Template::parse(text).map_err(|message| SourceError::Config {
                source_name: source.name.clone(),
                message: format!("`{field}`: {message}"),
            })
        };
        let list = source
            .list
            .as_deref()
            .or(default_list)
            .ok_or_else(|| SourceError::Config {
                source_name: source.name.clone(),
                message: "needs a `list` template".to_owned(),
            })?;
        Ok(Self {
            list: parse("list", list)?,
            member: parse(
                "member",
                source
                    .member
                    .as_deref()
                    .unwrap_or(default_member(source.member_key)),
            )?,
            display_name: source
                .display_name
                .as_deref()
                .map(|t| parse("display_name", t))
                .transpose()?,
        })
    }

    /// Every attribute the templates read (what an LDAP search or a Graph `$select` asks for).
    pub(crate) fn attributes(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for template in [
            Some(&self.list),
            Some(&self.member),
            self.display_name.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            names.extend(template.attributes().map(str::to_owned));
        }
        names
    }
}

/// Entries whose rows were skipped, counted and the first few named.
#[derive(Debug, Default)]
pub(crate) struct Skipped {
    pub(crate) count: u64,
    named: Vec<String>,
}

impl Skipped {
    /// Counts a skipped entry; `place` is its DN or user id.
    pub(crate) fn note(&mut self, place: &str, what: &str, fault: &Fault) {
        self.count += 1;
        if self.named.len() < SKIPPED_NAMED {
            self.named.push(format!("{place} ({what}: {fault})"));
        }
    }

    /// Counts a skipped entry with a reason of its own.
    pub(crate) fn note_text(&mut self, place: &str, why: &str) {
        self.count += 1;
        if self.named.len() < SKIPPED_NAMED {
            self.named.push(format!("{place} ({why})"));
        }
    }

    /// The report's warning, when anything was skipped.
    pub(crate) fn warning(&self, source: &str) -> Option<String> {
        (self.count > 0).then(|| {
            let more = self.count - self.named.len() as u64;
            let tail = if more > 0 {
                format!(", and {more} more")
            } else {
                String::new()
            };
            format!(
                "source `{source}`: {} entries skipped because a template rendered empty or ambiguous: {}{tail}",
                self.count,
                self.named.join("; ")
            )
        })
    }
}

/// The lists an entry puts a member on: each key with its display name.
#[derive(Debug)]
pub(crate) struct ListSide {
    pub(crate) lists: Vec<(String, Option<String>)>,
}

impl RowTemplates {
    /// Renders the list side over `entry`; `Err` is why the entry gives no list.
    /// A multi-valued attribute in `list` gives one list per value, and `display_name` sees
    /// that value alone (`Department of {department}` names each of two departments).
    pub(crate) fn list_side(&self, entry: &Entry) -> Result<ListSide, (&'static str, Fault)> {
        let one = |entry: &Entry| -> Result<(String, Option<String>), (&'static str, Fault)> {
            let key = self.list.render_one(entry).map_err(|f| ("list", f))?;
            let display_name = match &self.display_name {
                None => None,
                Some(t) => Some(t.render_one(entry).map_err(|f| ("display_name", f))?),
            };
            Ok((key, display_name))
        };
        let Some(spread) = self.list.spread(entry).map_err(|f| ("list", f))? else {
            return Ok(ListSide {
                lists: vec![one(entry)?],
            });
        };
        let mut lists = Vec::new();
        for pinned in entry.each_value(spread) {
            match one(&pinned) {
                Ok(list) => lists.push(list),
                // A blank value among several is passed over.
                Err(("list", Fault::Empty(name))) if name.eq_ignore_ascii_case(spread) => {}
                Err(other) => return Err(other),
            }
        }
        if lists.is_empty() {
            return Err(("list", Fault::Empty(spread.to_owned())));
        }
        Ok(ListSide { lists })
    }

    /// Renders the member over `entry`.
    pub(crate) fn member(&self, entry: &Entry) -> Result<String, (&'static str, Fault)> {
        self.member.render_one(entry).map_err(|f| ("member", f))
    }

    /// One entry as rows (the `filter` form and Entra): list side and member from the same
    /// entry; a faulty one is skipped and noted.
    pub(crate) fn push_entry(
        &self,
        rows: &mut Accumulator,
        skipped: &mut Skipped,
        place: &str,
        entry: &Entry,
        source: &str,
    ) -> Result<(), SourceError> {
        let rendered = self
            .list_side(entry)
            .and_then(|side| Ok((side, self.member(entry)?)));
        match rendered {
            Ok((side, member)) => push(rows, &side, &member, place, source),
            Err((what, fault)) => {
                skipped.note(place, what, &fault);
                Ok(())
            }
        }
    }
}

/// Pushes `member` onto every list of `side`.
pub(crate) fn push(
    rows: &mut Accumulator,
    side: &ListSide,
    member: &str,
    place: &str,
    source: &str,
) -> Result<(), SourceError> {
    for (key, display_name) in &side.lists {
        let row = RawRow {
            list: key,
            member,
            display_name: display_name.as_deref(),
            description: None,
            role: None,
        };
        rows.push_at(row, || place.to_owned())
            .map_err(|fault| fault.into_error(source, place.to_owned()))?;
    }
    Ok(())
}
