//! Templates over directory entries (`ldap`, `entra`): `{attribute}` and `{attribute|slug}`.
//!
//! A template turns one entry (an LDAP entry's attributes, an Entra user's properties) into
//! a list key, a member key or a display name. A row that renders empty or ambiguous is
//! skipped and named in the report, never planned with a blank key.

use std::collections::HashMap;
use std::fmt;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Text kept as written.
    Literal(String),
    /// An attribute's value, optionally slugged.
    Attribute { name: String, slug: bool },
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    pieces: Vec<Piece>,
}

/// An entry's attributes by lower-cased name; a multi-valued attribute holds several values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    values: HashMap<String, Vec<String>>,
}

impl Entry {
    /// An entry without attributes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds values to an attribute (names compare case-insensitively, as LDAP's do).
    pub fn add(&mut self, name: &str, values: impl IntoIterator<Item = String>) {
        self.values
            .entry(name.to_ascii_lowercase())
            .or_default()
            .extend(values);
    }

    /// The entry once per value of `name`, that attribute holding only that value.
    pub fn each_value(&self, name: &str) -> impl Iterator<Item = Entry> + '_ {
        let key = name.to_ascii_lowercase();
        self.get(name).iter().map(move |value| {
            let mut pinned = self.clone();
            pinned.values.insert(key.clone(), vec![value.clone()]);
            pinned
        })
    }

    /// The stored (lower-case) name of an attribute.
    fn key(&self, name: &str) -> &str {
        self.values
            .get_key_value(&name.to_ascii_lowercase())
            .map_or("", |(k, _)| k.as_str())
    }

    /// The attribute's values; none when it is absent.
    pub fn get(&self, name: &str) -> &[String] {
        self.values
            .get(&name.to_ascii_lowercase())
            .map_or(&[], Vec::as_slice)
    }
}

/// Why an entry gives no value for a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// An attribute the template uses is absent, blank, or slugs to nothing.
    Empty(String),
    /// An attribute holds several values where one is needed.
    MultiValued(String),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Empty(name) => write!(f, "`{name}` is empty"),
            Fault::MultiValued(name) => write!(f, "`{name}` has several values"),
        }
    }
}

impl Template {
    /// Parses `{attr}` and `{attr|slug}` placeholders; anything else in braces is an error.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find(['{', '}']) {
            if rest.as_bytes()[open] == b'}' {
                return Err(format!("`{text}` has a `}}` without an opening `{{`"));
            }
            if open > 0 {
                pieces.push(Piece::Literal(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("`{text}` has a `{{` without a closing `}}`"))?;
            let inside = &after[..close];
            let (name, slug) = match inside.split_once('|') {
                None => (inside.trim(), false),
                Some((name, "slug")) => (name.trim(), true),
                Some((_, filter)) => {
                    return Err(format!(
                        "`{text}` uses the filter `{filter}`; the only filter is `slug`, as in `{{{}|slug}}`",
                        inside.split('|').next().unwrap_or_default()
                    ));
                }
            };
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ';' | '.'));
            if !valid {
                return Err(format!(
                    "`{text}` has `{{{inside}}}`; a placeholder names one attribute, e.g. `{{department}}` or `{{department|slug}}`"
                ));
            }
            pieces.push(Piece::Attribute {
                name: name.to_owned(),
                slug,
            });
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Literal(rest.to_owned()));
        }
        Ok(Template {
            text: text.to_owned(),
            pieces,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The attributes the template reads, in order of first use.
    pub fn attributes(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Attribute { name, .. } => Some(name.as_str()),
            Piece::Literal(_) => None,
        })
    }

    /// Renders to exactly one value: a multi-valued attribute is a fault.
    pub fn render_one(&self, entry: &Entry) -> Result<String, Fault> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Attribute { name, slug } => match entry.get(name) {
                    [value] => push_value(&mut out, name, value, *slug)?,
                    [] => return Err(Fault::Empty(name.clone())),
                    _ => return Err(Fault::MultiValued(name.clone())),
                },
            }
        }
        Ok(out.trim().to_owned())
    }

    /// The one multi-valued attribute the template reads, if any; two different ones would
    /// multiply into lists nobody asked for, so that is a fault.
    pub fn spread<'e>(&self, entry: &'e Entry) -> Result<Option<&'e str>, Fault> {
        let mut spread: Option<&'e str> = None;
        for name in self.attributes() {
            if entry.get(name).len() > 1 {
                let key = entry.key(name);
                match spread {
                    Some(other) if other != key => {
                        return Err(Fault::MultiValued(name.to_owned()));
                    }
                    _ => spread = Some(key),
                }
            }
        }
        Ok(spread)
    }

    /// Renders to one value per value of a multi-valued attribute (a list key: a person in
    /// two departments is on two lists); a blank value among several is passed over.
    pub fn render_each(&self, entry: &Entry) -> Result<Vec<String>, Fault> {
        let Some(spread) = self.spread(entry)? else {
            return self.render_one(entry).map(|one| vec![one]);
        };
        let mut rendered = Vec::new();
        for pinned in entry.each_value(spread) {
            match self.render_one(&pinned) {
                Ok(one) => rendered.push(one),
                Err(Fault::Empty(name)) if name.eq_ignore_ascii_case(spread) => {}
                Err(other) => return Err(other),
            }
        }
        if rendered.is_empty() {
            return Err(Fault::Empty(spread.to_owned()));
        }
        Ok(rendered)
    }
}

/// Appends one attribute value; a value that is blank (or slugs to nothing) is a fault, so
/// that `dept-{department}` never yields the key `dept-`.
fn push_value(out: &mut String, name: &str, value: &str, slugged: bool) -> Result<(), Fault> {
    let value = if slugged {
        slug(value)
    } else {
        value.trim().to_owned()
    };
    if value.is_empty() {
        return Err(Fault::Empty(name.to_owned()));
    }
    out.push_str(&value);
    Ok(())
}

/// Folds accents to their base letter (â → a, ŵ → w), lower-cases, turns every run of
/// characters other than `a-z 0-9 . _ -` into one `-`, and trims `-` at the ends: a value
/// Exchange accepts in a mailNickname.
pub fn slug(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut gap = false;
    // Canonical decomposition splits a letter from its accents, which are then dropped.
    for c in value.nfd().filter(|c| !is_combining_mark(*c)) {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-') {
            if gap && !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
            gap = false;
            out.push(c);
        } else {
            gap = true;
        }
    }
    out.trim_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn entry(pairs: &[(&str, &[&str])]) -> Entry {
        let mut entry = Entry::new();
        for (name, values) in pairs {
            entry.add(name, values.iter().map(|v| (*v).to_owned()));
        }
        entry
    }

    #[rstest]
    #[case("Ysgol Gymraeg", "ysgol-gymraeg")]
    #[case("Adran Ŵyr a Phlant Ŷd", "adran-wyr-a-phlant-yd")]
    #[case("Gŵyl Dewi Sant", "gwyl-dewi-sant")]
    #[case("Château-Neuf École", "chateau-neuf-ecole")]
    #[case("Ångström Labs / Sønderborg", "angstrom-labs-s-nderborg")]
    #[case("  --Computer  Science!! ", "computer-science")]
    #[case("R&D (Physics)", "r-d-physics")]
    #[case("a@b \"quoted\" <x>;y,z[1]", "a-b-quoted-x-y-z-1")]
    #[case("first.last_name-2", "first.last_name-2")]
    #[case("Œuvre ß", "uvre")]
    #[case("!!!", "")]
    fn slug_folds_accents_and_keeps_only_what_exchange_accepts(
        #[case] input: &str,
        #[case] expected: &str,
    ) {
        assert_eq!(slug(input), expected);
    }

    #[test]
    fn templates_fill_attributes_case_insensitively_and_slug_on_request() {
        let template = Template::parse("dept-{Department|slug}").unwrap();
        let person = entry(&[("department", &["Ysgol Cerddoriaeth â Drama"])]);
        assert_eq!(
            template.render_one(&person).unwrap(),
            "dept-ysgol-cerddoriaeth-a-drama"
        );
        let plain = Template::parse("{displayName}").unwrap();
        let named = entry(&[("displayname", &["  Siân Ŵen "])]);
        assert_eq!(plain.render_one(&named).unwrap(), "Siân Ŵen");
        assert_eq!(
            template.attributes().collect::<Vec<_>>(),
            vec!["Department"]
        );
    }

    #[test]
    fn empty_or_absent_attributes_render_as_a_fault_never_a_blank_key() {
        let empty = || Err(Fault::Empty("department".into()));
        // A prefix alone is not a key: `dept-` of nobody is nobody's list.
        let template = Template::parse("dept-{department|slug}").unwrap();
        assert_eq!(template.render_one(&entry(&[])), empty());
        assert_eq!(
            template.render_one(&entry(&[("department", &["   "])])),
            empty()
        );
        assert_eq!(
            template.render_one(&entry(&[("department", &["???"])])),
            empty()
        );
        assert_eq!(
            template.render_each(&entry(&[("department", &["", "!!"])])),
            empty().map(|one: String| vec![one])
        );
        assert_eq!(
            template
                .render_each(&entry(&[("department", &["", "Physics"])]))
                .unwrap(),
            vec!["dept-physics"]
        );
    }

    #[test]
    fn a_multi_valued_attribute_spreads_a_list_but_spoils_a_member() {
        let person = entry(&[
            ("memberOf", &["Physics", "Maths"]),
            ("mail", &["a@x.org", "b@x.org"]),
            ("uid", &["a"]),
        ]);
        let list = Template::parse("dept-{memberof|slug}-{uid}").unwrap();
        assert_eq!(
            list.render_each(&person).unwrap(),
            vec!["dept-physics-a", "dept-maths-a"]
        );
        let member = Template::parse("{mail}").unwrap();
        assert_eq!(
            member.render_one(&person),
            Err(Fault::MultiValued("mail".into()))
        );
        let both = Template::parse("{memberOf}-{mail}").unwrap();
        assert_eq!(
            both.render_each(&person),
            Err(Fault::MultiValued("mail".into()))
        );
    }

    #[rstest]
    #[case("{department", "without a closing")]
    #[case("dept}", "without an opening")]
    #[case("{}", "names one attribute")]
    #[case("{a b}", "names one attribute")]
    #[case("{department|upper}", "the only filter is `slug`")]
    fn malformed_templates_say_what_is_wrong(#[case] text: &str, #[case] expected: &str) {
        let error = Template::parse(text).unwrap_err();
        assert!(error.contains(expected), "{error}");
    }
}
