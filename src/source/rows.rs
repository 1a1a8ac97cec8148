//! Rows from any source: trimmed, normalized, collapsed, and checksummed.
//!
//! Both readers push borrowed rows into one [`Accumulator`]; it owns a string only when it
//! meets a list, member or metadata value it has not seen in that source (metadata: in that
//! list) yet, and otherwise keeps a 4-byte id per row, so a large export costs one
//! allocation per person and per list, not per row.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sha2::{Digest, Sha256};

use super::witness::{Sighting, Witness};
use crate::config::{MemberKey, Role};

/// One source's rows for one list, after collapsing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceList {
    /// Distinct members, normalized by the source's member key.
    pub members: BTreeSet<String>,
    /// Distinct owners (rows whose role is `owner`), normalized likewise.
    pub owners: BTreeSet<String>,
    /// The first non-empty display name in canonical (byte) order.
    pub display_name: Option<String>,
    /// The first non-empty description in canonical (byte) order.
    pub description: Option<String>,
    /// The data row (1-based, header excluded) where the source first named this list.
    pub first_row: u64,
}

/// A row as a reader found it, before trimming.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawRow<'a> {
    pub(crate) list: &'a str,
    pub(crate) member: &'a str,
    pub(crate) display_name: Option<&'a str>,
    pub(crate) description: Option<&'a str>,
    /// The row's `role` cell, where the source has the column.
    pub(crate) role: Option<&'a str>,
}

#[cfg(test)]
impl<'a> RawRow<'a> {
    /// A row naming `member` on `list`, with nothing else.
    pub(crate) fn new(list: &'a str, member: &'a str) -> Self {
        RawRow {
            list,
            member,
            display_name: None,
            description: None,
            role: None,
        }
    }
}

/// Why a row cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RowFault {
    /// `list` or `member` is empty after trimming.
    Empty(&'static str),
    /// The `role` cell says neither `member` nor `owner`.
    Role(String),
}

impl RowFault {
    /// The source fault this is, for source `source_name` at `place`.
    pub(crate) fn into_error(self, source_name: &str, place: String) -> super::SourceError {
        let source_name = source_name.to_owned();
        match self {
            RowFault::Empty(column) => super::SourceError::EmptyValue {
                source_name,
                place,
                column,
            },
            RowFault::Role(message) => super::SourceError::BadRole {
                source_name,
                place,
                message,
            },
        }
    }
}

/// Where each column rollcall reads sits in a CSV header or a query result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Columns {
    pub(crate) list: usize,
    pub(crate) member: usize,
    pub(crate) display_name: Option<usize>,
    pub(crate) description: Option<usize>,
    pub(crate) role: Option<usize>,
}

/// Why a header or result cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ColumnFault {
    /// A required column is absent; `found` lists what is there.
    Missing { column: &'static str, found: String },
    /// A column rollcall reads appears more than once.
    Duplicate(&'static str),
}

impl ColumnFault {
    /// The source fault this is, for source `source_name` at `place` (`file:1`, `query`).
    pub(crate) fn into_error(self, source_name: &str, place: String) -> super::SourceError {
        let source_name = source_name.to_owned();
        match self {
            ColumnFault::Missing { column, found } => super::SourceError::MissingColumn {
                source_name,
                place,
                column,
                found,
            },
            ColumnFault::Duplicate(column) => super::SourceError::DuplicateColumn {
                source_name,
                place,
                column,
            },
        }
    }
}

impl Columns {
    /// Finds the columns by name, trimmed and case-insensitively; other columns are ignored.
    pub(crate) fn locate<'a>(
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, ColumnFault> {
        let mut slots: [Option<usize>; 5] = [None; 5];
        const NAMES: [&str; 5] = ["list", "member", "display_name", "description", "role"];
        let mut found = Vec::new();
        for (index, name) in names.into_iter().enumerate() {
            // Spreadsheet exports often start with a byte-order mark, which is not whitespace.
            let name = name.trim_start_matches('\u{feff}').trim();
            found.push(name.to_owned());
            if let Some(slot) = NAMES.iter().position(|n| n.eq_ignore_ascii_case(name)) {
                if slots[slot].is_some() {
                    return Err(ColumnFault::Duplicate(NAMES[slot]));
                }
                slots[slot] = Some(index);
            }
        }
        let missing = |column: &'static str| ColumnFault::Missing {
            column,
            found: if found.is_empty() {
                "no columns".to_owned()
            } else {
                found.join(", ")
            },
        };
        Ok(Columns {
            list: slots[0].ok_or_else(|| missing("list"))?,
            member: slots[1].ok_or_else(|| missing("member"))?,
            display_name: slots[2],
            description: slots[3],
            role: slots[4],
        })
    }
}

/// Per-list state while reading: every distinct value, so the result and its checksum do
/// not depend on the order rows arrive in.
#[derive(Debug)]
struct ListRows {
    key: Box<str>,
    first_row: u64,
    /// The members' ids in [`Accumulator::names`], duplicates included until `finish`.
    members: Vec<u32>,
    /// The owners' ids likewise.
    owners: Vec<u32>,
    display_names: BTreeSet<String>,
    descriptions: BTreeSet<String>,
}

/// Collects one source's rows.
///
/// A member is interned once per source (the same student sits on several lists) and a
/// list holds 4-byte ids, so reading costs one allocation per distinct person and per list,
/// not per row; sorting, collapsing and the owned strings of the result wait for `finish`.
#[derive(Debug)]
pub(crate) struct Accumulator {
    member_key: MemberKey,
    /// The role of a row that does not say (the source's `role`, `member` by default).
    role: Role,
    /// Whether the source says who owns its lists: it has a `role` column or a `role`.
    roles: bool,
    rows: u64,
    /// List key → index into `lists`.
    by_key: HashMap<Box<str>, usize>,
    lists: Vec<ListRows>,
    /// The previous row's list: exports usually keep a list's rows together.
    last: Option<usize>,
    /// Normalized member → id, ids counting up from 0.
    ids: HashMap<Box<str>, u32>,
    /// Scratch space for the normalized member, reused across rows.
    member: String,
    /// What `explain` looks for; `None` on a normal read.
    witness: Option<Witness>,
    /// The rows the witness saw.
    sightings: Vec<Sighting>,
}

/// What an accumulator ends with.
#[derive(Debug)]
pub(crate) struct Collected {
    pub(crate) rows: u64,
    pub(crate) distinct: u64,
    pub(crate) checksum: String,
    pub(crate) lists: BTreeMap<String, SourceList>,
    pub(crate) sightings: Vec<Sighting>,
    /// Whether the source says who owns its lists.
    pub(crate) roles: bool,
}

impl Accumulator {
    /// An empty accumulator for a source naming people by `member_key`.
    pub(crate) fn new(member_key: MemberKey) -> Self {
        Self {
            member_key,
            role: Role::Member,
            roles: false,
            rows: 0,
            by_key: HashMap::new(),
            lists: Vec::new(),
            last: None,
            ids: HashMap::new(),
            member: String::new(),
            witness: None,
            sightings: Vec::new(),
        }
    }

    /// The accumulator taking rows that do not say their role as `role`; `column`: the
    /// source has a `role` column.
    pub(crate) fn with_role(mut self, role: Option<Role>, column: bool) -> Self {
        self.role = role.unwrap_or_default();
        self.roles = role.is_some() || column;
        self
    }

    /// The accumulator keeping the rows `witness` wants, with their places.
    pub(crate) fn watching(mut self, witness: Option<Witness>) -> Self {
        self.witness = witness;
        self
    }

    /// [`Accumulator::push`], and the row kept with its `place` when a witness wants it
    /// (`place` is only called then, so a normal read formats nothing).
    pub(crate) fn push_at(
        &mut self,
        row: RawRow<'_>,
        place: impl FnOnce() -> String,
    ) -> Result<(), RowFault> {
        self.push(row)?;
        if let Some(witness) = &self.witness
            && witness.wants(row.list.trim(), &self.member)
        {
            let mut values = vec![
                ("list".to_owned(), row.list.to_owned()),
                ("member".to_owned(), row.member.to_owned()),
            ];
            for (name, value) in [
                ("display_name", row.display_name),
                ("description", row.description),
                ("role", row.role),
            ] {
                if let Some(value) = value.filter(|v| !v.trim().is_empty()) {
                    values.push((name.to_owned(), value.to_owned()));
                }
            }
            self.sightings.push(Sighting {
                list: row.list.trim().to_owned(),
                place: place(),
                values,
            });
        }
        Ok(())
    }

    /// Data rows pushed so far, before collapsing.
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    /// Adds a row; `Err` names the required column that is empty after trimming, or the
    /// role it cannot read.
    pub(crate) fn push(&mut self, row: RawRow<'_>) -> Result<(), RowFault> {
        let list = row.list.trim();
        if list.is_empty() {
            return Err(RowFault::Empty("list"));
        }
        let member = row.member.trim();
        if member.is_empty() {
            return Err(RowFault::Empty("member"));
        }
        let role = match row.role {
            Some(cell) => Role::parse_cell(cell, self.role).map_err(RowFault::Role)?,
            None => self.role,
        };
        self.rows += 1;
        normalize_into(self.member_key, member, &mut self.member);

        let index = match self.last {
            Some(last) if *self.lists[last].key == *list => last,
            _ => match self.by_key.get(list) {
                Some(&index) => index,
                None => {
                    let index = self.lists.len();
                    self.by_key.insert(list.into(), index);
                    self.lists.push(ListRows {
                        key: list.into(),
                        first_row: self.rows,
                        members: Vec::new(),
                        owners: Vec::new(),
                        display_names: BTreeSet::new(),
                        descriptions: BTreeSet::new(),
                    });
                    index
                }
            },
        };
        self.last = Some(index);
        let id = match self.ids.get(self.member.as_str()) {
            Some(&id) => id,
            None => {
                let id = u32::try_from(self.ids.len()).expect("fewer than 2^32 people");
                self.ids.insert(self.member.as_str().into(), id);
                id
            }
        };
        let entry = &mut self.lists[index];
        // A repeated row usually follows the one it repeats; the rest collapse in `finish`.
        let people = match role {
            Role::Member => &mut entry.members,
            Role::Owner => &mut entry.owners,
        };
        if people.last() != Some(&id) {
            people.push(id);
        }
        insert_metadata(&mut entry.display_names, row.display_name);
        insert_metadata(&mut entry.descriptions, row.description);
        Ok(())
    }

    /// The collapsed lists, their counts and the source's checksum.
    pub(crate) fn finish(self) -> Collected {
        let Self {
            rows,
            mut lists,
            ids,
            sightings,
            roles,
            ..
        } = self;
        let mut names: Vec<Box<str>> = vec![Box::from(""); ids.len()];
        for (name, id) in ids {
            names[id as usize] = name;
        }
        // Rank every member by byte order once; each list then sorts plain integers.
        let mut order: Vec<u32> = (0..names.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| names[a as usize].cmp(&names[b as usize]));
        let mut rank = vec![0_u32; names.len()];
        for (position, &id) in order.iter().enumerate() {
            rank[id as usize] = position as u32;
        }
        let sorted: Vec<&str> = order.iter().map(|&id| &*names[id as usize]).collect();
        for list in &mut lists {
            for people in [&mut list.members, &mut list.owners] {
                for id in people.iter_mut() {
                    *id = rank[*id as usize];
                }
                people.sort_unstable();
                people.dedup();
            }
        }
        lists.sort_unstable_by(|a, b| a.key.cmp(&b.key));

        let checksum = checksum(&lists, &sorted);
        let mut distinct = 0;
        let lists = lists
            .into_iter()
            .map(|rows| {
                distinct += (rows.members.len() + rows.owners.len()) as u64;
                let named = |people: &[u32]| -> BTreeSet<String> {
                    people
                        .iter()
                        .map(|&rank| sorted[rank as usize].to_owned())
                        .collect()
                };
                let list = SourceList {
                    members: named(&rows.members),
                    owners: named(&rows.owners),
                    display_name: rows.display_names.into_iter().next(),
                    description: rows.descriptions.into_iter().next(),
                    first_row: rows.first_row,
                };
                (String::from(rows.key), list)
            })
            .collect();
        Collected {
            rows,
            distinct,
            checksum,
            lists,
            sightings,
            roles,
        }
    }
}

fn insert_metadata(values: &mut BTreeSet<String>, value: Option<&str>) {
    if let Some(value) = value.map(str::trim).filter(|v| !v.is_empty())
        && !values.contains(value)
    {
        values.insert(value.to_owned());
    }
}

/// Writes `MemberKey::normalize(raw)` into `out` without allocating for the usual ASCII keys.
fn normalize_into(key: MemberKey, raw: &str, out: &mut String) {
    out.clear();
    match key {
        MemberKey::EmployeeId => out.push_str(raw.trim()),
        MemberKey::Upn | MemberKey::Mail | MemberKey::ObjectId if raw.is_ascii() => {
            out.push_str(raw.trim());
            out.make_ascii_lowercase();
        }
        // Unicode lower-casing has context rules (final sigma); leave them to one place.
        MemberKey::Upn | MemberKey::Mail | MemberKey::ObjectId => {
            out.push_str(&key.normalize(raw));
        }
    }
}

/// The sha256 of a source's canonical form, as lower-case hex.
///
/// The canonical form is the collapsed content, so neither row order nor duplicates change
/// it. For each list in byte order of its key: an `L` record with the key; an `N` record per
/// distinct non-empty display name and a `D` record per distinct non-empty description, each
/// in byte order; then an `M` record per distinct normalized member in byte order, then an
/// `O` record per distinct normalized owner (none for a source without owner rows, whose
/// checksum is as before owners existed). A record
/// is its tag byte followed by its value's UTF-8 length as a big-endian u64 and the bytes, so
/// no value can be mistaken for a separator. Changing this changes every stored checksum.
fn checksum(lists: &[ListRows], members: &[&str]) -> String {
    let mut hasher = Sha256::new();
    let mut record = |tag: u8, value: &str| {
        hasher.update([tag]);
        hasher.update((value.len() as u64).to_be_bytes());
        hasher.update(value.as_bytes());
    };
    for rows in lists {
        record(b'L', &rows.key);
        rows.display_names.iter().for_each(|v| record(b'N', v));
        rows.descriptions.iter().for_each(|v| record(b'D', v));
        rows.members
            .iter()
            .for_each(|&rank| record(b'M', members[rank as usize]));
        rows.owners
            .iter()
            .for_each(|&rank| record(b'O', members[rank as usize]));
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<'a>(list: &'a str, member: &'a str) -> RawRow<'a> {
        RawRow::new(list, member)
    }

    fn collect(key: MemberKey, rows: &[RawRow<'_>]) -> Collected {
        let mut acc = Accumulator::new(key);
        for r in rows {
            acc.push(*r).unwrap();
        }
        acc.finish()
    }

    #[test]
    fn keys_are_trimmed_and_upn_lower_cased() {
        let c = collect(MemberKey::Upn, &[row("  mod-a ", " Ada@Example.AC.uk\t")]);
        let list = &c.lists["mod-a"];
        assert_eq!(
            list.members.iter().collect::<Vec<_>>(),
            ["ada@example.ac.uk"]
        );
    }

    #[test]
    fn employee_ids_keep_their_case() {
        let c = collect(MemberKey::EmployeeId, &[row("dept", " E12ab ")]);
        assert!(c.lists["dept"].members.contains("E12ab"));
    }

    #[test]
    fn normalization_matches_member_key_normalize() {
        for key in [
            MemberKey::Upn,
            MemberKey::Mail,
            MemberKey::EmployeeId,
            MemberKey::ObjectId,
        ] {
            for raw in [" MiXeD@x.org ", "ΣΟΦΙΑΣ@x.gr", "Ünïcode@x.de", "1234"] {
                let mut out = String::new();
                normalize_into(key, raw, &mut out);
                assert_eq!(out, key.normalize(raw), "{key} {raw}");
            }
        }
    }

    #[test]
    fn duplicate_rows_collapse() {
        let c = collect(
            MemberKey::Mail,
            &[row("a", "x@y.z"), row("a", "X@Y.Z "), row("a", "w@y.z")],
        );
        assert_eq!(c.rows, 3);
        assert_eq!(c.distinct, 2);
        assert_eq!(c.lists["a"].members.len(), 2);
    }

    #[test]
    fn interleaved_lists_sharing_people_collapse_like_grouped_ones() {
        // The last-list shortcut and the interned ids must not depend on row grouping.
        let interleaved = collect(
            MemberKey::Upn,
            &[
                row("b", "Zed@x"),
                row("a", "amy@x"),
                row("b", "amy@x"),
                row("a", "zed@x"),
                row("b", "zed@x"),
                row("a", "AMY@x"),
                row("c", "bo@x"),
            ],
        );
        let grouped = collect(
            MemberKey::Upn,
            &[
                row("a", "amy@x"),
                row("a", "zed@x"),
                row("b", "amy@x"),
                row("b", "zed@x"),
                row("c", "bo@x"),
            ],
        );
        let members = |c: &Collected| -> Vec<(String, BTreeSet<String>)> {
            c.lists
                .iter()
                .map(|(k, l)| (k.clone(), l.members.clone()))
                .collect()
        };
        assert_eq!(members(&interleaved), members(&grouped));
        assert_eq!(interleaved.lists["b"].first_row, 1);
        assert_eq!(grouped.lists["b"].first_row, 3);
        assert_eq!(interleaved.checksum, grouped.checksum);
        assert_eq!((interleaved.rows, interleaved.distinct), (7, 5));
        let b: Vec<&String> = interleaved.lists["b"].members.iter().collect();
        assert_eq!(b, ["amy@x", "zed@x"]);
    }

    #[test]
    fn empty_list_or_member_is_refused() {
        let mut acc = Accumulator::new(MemberKey::Upn);
        assert_eq!(acc.push(row("  ", "a@b.c")), Err(RowFault::Empty("list")));
        assert_eq!(acc.push(row("l", " \t")), Err(RowFault::Empty("member")));
        assert_eq!(acc.rows(), 0);
    }

    #[test]
    fn checksum_ignores_row_order_and_duplicates() {
        let rows = [
            row("b", "p@x"),
            row("a", "q@x"),
            row("a", "p@x"),
            row("b", "q@x"),
        ];
        let forward = collect(MemberKey::Upn, &rows);
        let mut reversed: Vec<_> = rows.to_vec();
        reversed.reverse();
        reversed.push(row("a", "P@X"));
        let backward = collect(MemberKey::Upn, &reversed);
        assert_eq!(forward.checksum, backward.checksum);
        assert_eq!(forward.checksum.len(), 64);
    }

    #[test]
    fn checksum_changes_when_a_member_moves() {
        let before = collect(MemberKey::Upn, &[row("a", "p@x"), row("b", "q@x")]);
        let after = collect(MemberKey::Upn, &[row("a", "q@x"), row("b", "p@x")]);
        assert_ne!(before.checksum, after.checksum);
    }

    #[test]
    fn checksum_is_stable_across_releases() {
        // A changed canonical form would make every stored snapshot look changed.
        let c = collect(MemberKey::Upn, &[row("a", "p@x")]);
        let mut expected = Sha256::new();
        expected.update(b"L\0\0\0\0\0\0\0\x01a");
        expected.update(b"M\0\0\0\0\0\0\0\x03p@x");
        assert_eq!(c.checksum, hex::encode(expected.finalize()));
    }

    #[test]
    fn roles_split_owners_from_members_and_a_bad_role_names_itself() {
        let with = |member, role| RawRow {
            role,
            ..RawRow::new("l", member)
        };
        let mut acc = Accumulator::new(MemberKey::Upn).with_role(None, true);
        acc.push(with("a@x", Some("member"))).unwrap();
        acc.push(with("b@x", Some(" OWNER "))).unwrap();
        acc.push(with("c@x", Some(""))).unwrap();
        assert_eq!(
            acc.push(with("d@x", Some("leader"))),
            Err(RowFault::Role(
                "role `leader` is neither `member` nor `owner`".to_owned()
            ))
        );
        let owned = acc.finish();
        assert!(owned.roles);
        let list = &owned.lists["l"];
        assert_eq!(list.members.iter().collect::<Vec<_>>(), ["a@x", "c@x"]);
        assert_eq!(list.owners.iter().collect::<Vec<_>>(), ["b@x"]);
        assert_eq!(owned.distinct, 3);
        // A source of owners: rows that do not say are owner rows.
        let mut leaders = Accumulator::new(MemberKey::Upn).with_role(Some(Role::Owner), false);
        leaders.push(RawRow::new("l", "b@x")).unwrap();
        let leaders = leaders.finish();
        assert_eq!(leaders.lists["l"].owners.len(), 1);
        assert!(leaders.lists["l"].members.is_empty());
        // A source without owner rows keeps the checksum it had before roles existed; owner
        // rows change it.
        let plain = collect(MemberKey::Upn, &[row("l", "a@x"), row("l", "c@x")]);
        let mut members_only = Accumulator::new(MemberKey::Upn).with_role(None, true);
        members_only.push(with("a@x", None)).unwrap();
        members_only.push(with("c@x", Some("member"))).unwrap();
        assert_eq!(members_only.finish().checksum, plain.checksum);
        assert_ne!(owned.checksum, plain.checksum);
    }

    #[test]
    fn first_non_empty_metadata_in_canonical_order_wins() {
        let meta = |member, display_name, description| RawRow {
            list: "l",
            member,
            display_name,
            description,
            role: None,
        };
        let rows = [
            meta("a@x", Some("  "), None),
            meta("b@x", Some("Zoology 101"), Some("")),
            meta("c@x", Some(" Anatomy 101 "), None),
            meta("d@x", None, Some("Second year")),
        ];
        let forward = collect(MemberKey::Upn, &rows);
        let mut reversed = rows.to_vec();
        reversed.reverse();
        let backward = collect(MemberKey::Upn, &reversed);
        for c in [&forward, &backward] {
            assert_eq!(c.lists["l"].display_name.as_deref(), Some("Anatomy 101"));
            assert_eq!(c.lists["l"].description.as_deref(), Some("Second year"));
        }
        assert_eq!(forward.checksum, backward.checksum);
    }

    #[test]
    fn columns_match_trimmed_and_case_insensitively() {
        let columns = Columns::locate(["\u{feff}extra", " MEMBER ", "List", "Display_Name"]);
        assert_eq!(
            columns,
            Ok(Columns {
                list: 2,
                member: 1,
                display_name: Some(3),
                description: None,
                role: None,
            })
        );
    }

    #[test]
    fn missing_member_column_lists_what_is_there() {
        assert_eq!(
            Columns::locate(["list", "person"]),
            Err(ColumnFault::Missing {
                column: "member",
                found: "list, person".to_owned(),
            })
        );
        assert_eq!(
            Columns::locate(["list", "member", "LIST"]),
            Err(ColumnFault::Duplicate("list"))
        );
    }

    #[test]
    fn only_a_witness_keeps_rows_and_only_then_is_the_place_formatted() {
        let mut plain = Accumulator::new(MemberKey::Upn);
        plain
            .push_at(row("mod-a", "a@x.org"), || {
                unreachable!("no witness, no place")
            })
            .unwrap();
        assert!(plain.finish().sightings.is_empty());

        let witness = Witness::new(Some("MOD-A"), "A@X.org", MemberKey::Upn);
        let mut watched = Accumulator::new(MemberKey::Upn).watching(witness);
        for (line, (list, member)) in [
            ("mod-a", " A@x.org"),
            ("mod-b", "a@x.org"),
            ("mod-a", "b@x.org"),
        ]
        .into_iter()
        .enumerate()
        {
            watched
                .push_at(row(list, member), || format!("f.csv:{}", line + 2))
                .unwrap();
        }
        let collected = watched.finish();
        assert_eq!(collected.sightings.len(), 1);
        assert_eq!(collected.sightings[0].place, "f.csv:2");
        assert_eq!(
            collected.sightings[0].values,
            [
                ("list".to_owned(), "mod-a".to_owned()),
                ("member".to_owned(), " A@x.org".to_owned())
            ]
        );
        assert_eq!(collected.rows, 3, "the rows are read as ever");
    }
}
