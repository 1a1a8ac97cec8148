//! LDAP sources (Active Directory, OpenLDAP): simple bind over LDAPS or StartTLS, every
//! search paged, Active Directory's ranged values followed to their end, and any limit,
//! referral or unfinished range a fault: a read cut short never becomes fewer members.

use std::collections::HashMap;
use std::time::Duration;

use ldap3::adapters::{Adapter, PagedResults};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry};
use secrecy::ExposeSecret;

use super::entries::{ListSide, RowTemplates, Skipped, push};
use super::rows::Accumulator;
use super::template::Entry;
use super::{SourceError, SourceRead, Witness};
use crate::config::SourceConfig;

/// Entries per page of a paged search (Active Directory's MaxPageSize is 1,000).
const PAGE_SIZE: i32 = 500;

/// The attribute holding a group's member DNs.
const MEMBER: &str = "member";

/// Reads a whole LDAP source within its timeout.
pub(crate) async fn read(
    source: &SourceConfig,
    witness: Option<Witness>,
) -> Result<SourceRead, SourceError> {
    let groups = source.groups_filter.is_some();
    let templates = RowTemplates::of(source, groups.then_some("{cn}"))?;
    let read = async {
        let mut ldap = connect(source).await?;
        let mut reader = Reader {
            source,
            ldap: &mut ldap,
            templates: &templates,
            rows: Accumulator::new(source.member_key)
                .with_role(source.role, false)
                .watching(witness),
            skipped: Skipped::default(),
            members: HashMap::new(),
        };
        if groups {
            reader.read_groups().await?;
        } else {
            reader.read_entries().await?;
        }
        let Reader { rows, skipped, .. } = reader;
        // The rows are in hand; a failed goodbye loses nothing.
        let _ = ldap.unbind().await;
        Ok::<_, SourceError>((rows, skipped))
    };
    let (rows, skipped) = tokio::time::timeout(source.timeout, read)
        .await
        .map_err(|_| SourceError::Timeout {
            source_name: source.name.clone(),
            after: source.timeout,
        })??;
    Ok(SourceRead::new(source, rows.finish()).with_skipped(&skipped))
}

/// Connects (TLS as configured) and binds.
async fn connect(source: &SourceConfig) -> Result<Ldap, SourceError> {
    let url = source.url.as_deref().unwrap_or_default();
    let unreachable = |message: String| SourceError::Unreachable {
        source_name: source.name.clone(),
        url: url.to_owned(),
        message,
    };
    let settings = LdapConnSettings::new()
        .set_conn_timeout(source.timeout.min(Duration::from_secs(30)))
        .set_starttls(source.start_tls);
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, url)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    ldap3::drive!(conn);
    let password = source
        .bind_password()
        .map_err(|message| SourceError::Config {
            source_name: source.name.clone(),
            message,
        })?;
    if let Some(dn) = &source.bind_dn {
        let password = password.as_ref().map_or("", |p| p.expose_secret());
        ldap.simple_bind(dn, password)
            .await
            .and_then(ldap3::LdapResult::success)
            .map_err(|e| unreachable(format!("the bind as `{dn}` failed: {}", describe(&e))))?;
    }
    Ok(ldap)
}

/// One read's state: the connection, the rows so far, and the member entries already read.
struct Reader<'a> {
    source: &'a SourceConfig,
    ldap: &'a mut Ldap,
    templates: &'a RowTemplates,
    rows: Accumulator,
    skipped: Skipped,
    /// Member DN (lower-cased) → its rendered member, or why it gives none; read once per run.
    members: HashMap<String, Result<String, String>>,
}

impl Reader<'_> {
    fn base(&self) -> &str {
        self.source.base.as_deref().unwrap_or_default()
    }

    /// `filter`: one row per entry.
    async fn read_entries(&mut self) -> Result<(), SourceError> {
        let filter = self.source.filter.clone().unwrap_or_default();
        let attributes: Vec<String> = self.templates.attributes().into_iter().collect();
        let base = self.base().to_owned();
        let entries = self
            .search(&base, Scope::Subtree, &filter, &attributes)
            .await?;
        for (dn, entry) in entries {
            self.templates.push_entry(
                &mut self.rows,
                &mut self.skipped,
                &dn,
                &entry,
                &self.source.name,
            )?;
        }
        Ok(())
    }

    /// `groups_filter`: one list per group entry, members from its `member` DNs.
    async fn read_groups(&mut self) -> Result<(), SourceError> {
        let filter = self.source.groups_filter.clone().unwrap_or_default();
        let mut attributes: Vec<String> = [&self.templates.list]
            .into_iter()
            .chain(&self.templates.display_name)
            .flat_map(|t| t.attributes().map(str::to_owned))
            .collect();
        attributes.push(MEMBER.to_owned());
        let base = self.base().to_owned();
        let groups = self
            .search(&base, Scope::Subtree, &filter, &attributes)
            .await?;
        for (dn, group) in groups {
            let side = match self.templates.list_side(&group) {
                Ok(side) => side,
                Err((what, fault)) => {
                    self.skipped.note(&dn, what, &fault);
                    continue;
                }
            };
            for member_dn in group.get(MEMBER) {
                self.push_member(&side, member_dn).await?;
            }
        }
        Ok(())
    }

    /// Reads a member DN (once per run) and pushes it onto the group's lists.
    async fn push_member(&mut self, side: &ListSide, dn: &str) -> Result<(), SourceError> {
        let key = dn.to_ascii_lowercase();
        if !self.members.contains_key(&key) {
            let attributes: Vec<String> = self
                .templates
                .member
                .attributes()
                .map(str::to_owned)
                .collect();
            let found = self
                .search(dn, Scope::Base, "(objectClass=*)", &attributes)
                .await;
            let rendered = match found {
                Ok(mut entries) => match entries.pop() {
                    Some((_, entry)) => self
                        .templates
                        .member(&entry)
                        .map_err(|(what, fault)| format!("{what}: {fault}")),
                    None => Err("no such entry".to_owned()),
                },
                // A member DN that is gone is a stale reference, not a cut-short read.
                Err(other) => return Err(other),
            };
            self.members.insert(key.clone(), rendered);
        }
        match &self.members[&key] {
            Ok(member) => {
                let member = member.clone();
                push(&mut self.rows, side, &member, dn, &self.source.name)
            }
            Err(why) => {
                self.skipped.note_text(dn, why);
                Ok(())
            }
        }
    }

    /// One paged search, every entry with its ranged values followed to the end. A size or
    /// time limit, a referral, or any other result but success is a fault.
    async fn search(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attributes: &[String],
    ) -> Result<Vec<(String, Entry)>, SourceError> {
        let source = self.source;
        let fault = |e: LdapError| directory_fault(source, base, filter, &e);
        let adapters: Vec<Box<dyn Adapter<'_, String, Vec<String>>>> =
            vec![Box::new(PagedResults::new(PAGE_SIZE))];
        let mut stream = self
            .ldap
            .streaming_search_with(adapters, base, scope, filter, attributes.to_vec())
            .await
            .map_err(fault)?;
        let mut found = Vec::new();
        while let Some(result) = stream.next().await.map_err(fault)? {
            if result.is_intermediate() {
                continue;
            }
            if result.is_ref() {
                let refs = ldap3::parse_refs(result.0);
                return Err(SourceError::CutShort {
                    source_name: source.name.clone(),
                    message: format!(
                        "the search under `{base}` returned a referral ({}) that rollcall does not follow; search a base that one server holds (with Active Directory, the global catalog on port 3269)",
                        refs.join(", ")
                    ),
                });
            }
            found.push(SearchEntry::construct(result));
        }
        let outcome = stream.finish().await;
        match outcome.rc {
            0 => {}
            // A base read of a DN that is gone (a stale `member` value): no entry, no fault.
            32 if scope == Scope::Base => return Ok(Vec::new()),
            3 | 4 | 11 => {
                let which = match outcome.rc {
                    3 => "the server's time limit",
                    4 => "the server's size limit",
                    _ => "the server's administrative limit",
                };
                return Err(SourceError::CutShort {
                    source_name: source.name.clone(),
                    message: format!(
                        "the search `{filter}` under `{base}` hit {which} after {} entries (rc={}: {})",
                        found.len(),
                        outcome.rc,
                        outcome.text
                    ),
                });
            }
            10 => {
                return Err(SourceError::CutShort {
                    source_name: source.name.clone(),
                    message: format!(
                        "the search under `{base}` was referred elsewhere ({}); rollcall does not follow referrals",
                        outcome.refs.join(", ")
                    ),
                });
            }
            _ => return Err(fault(LdapError::from(outcome))),
        }
        let mut entries = Vec::with_capacity(found.len());
        for mut entry in found {
            self.follow_ranges(&mut entry).await?;
            let mut attributes = Entry::new();
            for (name, values) in entry.attrs {
                attributes.add(&name, values);
            }
            entries.push((entry.dn, attributes));
        }
        Ok(entries)
    }

    /// Reads the rest of every ranged attribute (`member;range=0-1499`) and files the values
    /// under the plain name.
    async fn follow_ranges(&mut self, entry: &mut SearchEntry) -> Result<(), SourceError> {
        let ranged: Vec<String> = entry
            .attrs
            .keys()
            .filter(|name| parse_range(name).is_some())
            .cloned()
            .collect();
        for name in ranged {
            let Some(values) = entry.attrs.remove(&name) else {
                continue;
            };
            let Some((attribute, mut range)) = parse_range(&name) else {
                continue;
            };
            let attribute = attribute.to_owned();
            let mut all = values;
            while let Range::Until(end) = range {
                let next = format!("{attribute};range={}-*", end + 1);
                let more = self.ranged_read(&entry.dn, &attribute, &next).await?;
                let Some((more_range, values)) = more else {
                    return Err(SourceError::CutShort {
                        source_name: self.source.name.clone(),
                        message: format!(
                            "`{}`: the server stopped giving `{attribute}` values after {} (asked for `{next}`)",
                            entry.dn,
                            all.len()
                        ),
                    });
                };
                all.extend(values);
                range = more_range;
            }
            entry.attrs.entry(attribute).or_default().extend(all);
        }
        Ok(())
    }

    /// One base read of a ranged attribute: its next slice and where that slice ends.
    async fn ranged_read(
        &mut self,
        dn: &str,
        attribute: &str,
        asked: &str,
    ) -> Result<Option<(Range, Vec<String>)>, SourceError> {
        let source = self.source;
        let fault = |e: LdapError| directory_fault(source, dn, "(objectClass=*)", &e);
        let (entries, _) = self
            .ldap
            .search(dn, Scope::Base, "(objectClass=*)", vec![asked])
            .await
            .map_err(fault)?
            .success()
            .map_err(fault)?;
        for entry in entries {
            let entry = SearchEntry::construct(entry);
            for (name, values) in entry.attrs {
                if let Some((base, range)) = parse_range(&name)
                    && base.eq_ignore_ascii_case(attribute)
                {
                    return Ok(Some((range, values)));
                }
            }
        }
        Ok(None)
    }
}

/// Where a slice of a ranged attribute ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Range {
    /// More values follow after this (inclusive) index.
    Until(u64),
    /// This slice is the last (`-*`).
    Last,
}

/// Parses Active Directory's ranged attribute names: `member;range=0-1499` →
/// `("member", Until(1499))`, `member;range=1500-*` → `("member", Last)`.
pub(crate) fn parse_range(name: &str) -> Option<(&str, Range)> {
    let (attribute, options) = name.split_once(';')?;
    let range = options.split(';').find_map(|o| {
        o.strip_prefix("range=")
            .or_else(|| o.strip_prefix("Range="))
    })?;
    let (start, end) = range.split_once('-')?;
    start.parse::<u64>().ok()?;
    let end = match end {
        "*" => Range::Last,
        n => Range::Until(n.parse().ok()?),
    };
    Some((attribute, end))
}

fn describe(error: &LdapError) -> String {
    match error {
        LdapError::LdapResult { result } => format!(
            "rc={} {}{}",
            result.rc,
            result.text,
            if result.matched.is_empty() {
                String::new()
            } else {
                format!(" (matched `{}`)", result.matched)
            }
        ),
        other => other.to_string(),
    }
}

fn directory_fault(
    source: &SourceConfig,
    base: &str,
    filter: &str,
    error: &LdapError,
) -> SourceError {
    SourceError::Directory {
        source_name: source.name.clone(),
        message: format!(
            "the search `{filter}` under `{base}` failed: {}",
            describe(error)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("member;range=0-1499", Some(("member", Range::Until(1499))))]
    #[case("member;range=1500-2999", Some(("member", Range::Until(2999))))]
    #[case("member;range=1500-*", Some(("member", Range::Last)))]
    #[case("member;Range=3000-*", Some(("member", Range::Last)))]
    #[case("member", None)]
    #[case("member;binary", None)]
    #[case("member;range=a-b", None)]
    #[case("member;range=0", None)]
    fn ranged_attribute_names_parse_as_active_directory_writes_them(
        #[case] name: &str,
        #[case] expected: Option<(&str, Range)>,
    ) {
        assert_eq!(parse_range(name), expected);
    }
}
