//! Dated exceptions kept by a helpdesk in `[[override_source]]` CSV files (DESIGN.md "The
//! academic year"): columns `list, member, action, from, until, reason`, `action` one of
//! `include`, `exclude`, `owner_include` or `owner_exclude`. A file is read whole or not at all, like a source: a bad row is a
//! fault naming `file:line` (exit 3), and nothing is planned.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::csv::Control;
use crate::config::{Config, Window};

use super::SourceError;

/// One exception, as a row of an override source says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    /// The list key.
    pub list: String,
    /// The member, as an override names one (`kind:value`, or a bare value).
    pub member: String,
    /// `include` (true) or `exclude`.
    pub include: bool,
    /// Whether it includes or excludes an owner (`owner_include`, `owner_exclude`) rather
    /// than a member.
    pub owner: bool,
    /// When it applies.
    pub window: Window,
    /// Why, as the helpdesk wrote it.
    pub reason: String,
    /// `file:line`, for messages.
    pub place: String,
}

/// Every exception of every `[[override_source]]`, in file and row order. Blocking.
pub(crate) fn read_all(config: &Config) -> Result<Vec<Exception>, SourceError> {
    let mut exceptions = Vec::new();
    for source in &config.override_sources {
        let read = read(&source.path, config)?;
        if let Some(control) = &source.control {
            let name = source.path.display().to_string();
            let bytes = std::fs::read(&source.path).map_err(|e| SourceError::OverrideRow {
                source_name: name.clone(),
                place: format!("{name}:0"),
                message: format!("cannot read the override source: {e}"),
            })?;
            let sha256 = hex::encode(Sha256::digest(&bytes));
            Control::load(&name, control)?.check(
                &name,
                &source.path,
                read.len() as u64,
                &sha256,
            )?;
        }
        exceptions.extend(read);
    }
    Ok(exceptions)
}

/// The exceptions of one file.
fn read(path: &Path, config: &Config) -> Result<Vec<Exception>, SourceError> {
    let name = path.display().to_string();
    let fault = |line: u64, message: String| SourceError::OverrideRow {
        source_name: name.clone(),
        place: format!("{name}:{line}"),
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_path(path)
        .map_err(|e| fault(0, format!("cannot read the override source: {e}")))?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| fault(1, e.to_string()))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim().to_ascii_lowercase())
        .collect();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let (Some(list), Some(member), Some(action)) =
        (column("list"), column("member"), column("action"))
    else {
        return Err(fault(
            1,
            format!(
                "the header needs `list`, `member` and `action` (and may have `from`, `until`, `reason`); it has: {}",
                headers.join(", ")
            ),
        ));
    };
    let (from, until, reason) = (column("from"), column("until"), column("reason"));
    let timezone = config.timezone();
    let mut exceptions = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(fault(line, e.to_string())),
        }
        let cell = |at: Option<usize>| at.and_then(|i| record.get(i)).unwrap_or_default().trim();
        let (include, owner) = match cell(Some(action)).to_ascii_lowercase().as_str() {
            "include" => (true, false),
            "exclude" => (false, false),
            "owner_include" => (true, true),
            "owner_exclude" => (false, true),
            other => {
                return Err(fault(
                    line,
                    format!(
                        "action `{other}` is none of include, exclude, owner_include, owner_exclude"
                    ),
                ));
            }
        };
        let window = Window::parse(Some(cell(from)), Some(cell(until)), timezone)
            .map_err(|m| fault(line, m))?;
        let (list, member) = (cell(Some(list)), cell(Some(member)));
        if list.is_empty() || member.is_empty() {
            return Err(fault(line, "`list` and `member` must not be empty".into()));
        }
        exceptions.push(Exception {
            list: list.to_owned(),
            member: member.to_owned(),
            include,
            owner,
            window,
            reason: cell(reason).to_owned(),
            place: format!("{name}:{line}"),
        });
    }
    Ok(exceptions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::parse(
            "[schedule]\ntimezone = \"Europe/London\"\n",
            Path::new("rollcall.toml"),
        )
        .unwrap()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn rows_become_dated_exceptions() {
        let csv = file(
            "list,member,action,from,until,reason\n\
             mod-a,examiner@x.org,include,2026-09-21,2027-01-31,external examiner\n\
             mod-b,upn:opted.out@x.org,exclude,,,asked to leave\n",
        );
        let exceptions = read(csv.path(), &config()).unwrap();
        assert_eq!(exceptions.len(), 2);
        assert!(exceptions[0].include && !exceptions[1].include);
        assert!(exceptions[0].window.from.is_some() && exceptions[1].window == Window::default());
        assert_eq!(exceptions[1].reason, "asked to leave");
        assert!(
            exceptions[1].place.ends_with(":3"),
            "{}",
            exceptions[1].place
        );
    }

    #[test]
    fn a_bad_row_names_file_and_line() {
        for (text, expected) in [
            ("list,member,action\nmod-a,x@x.org,add\n", "action `add`"),
            (
                "list,member,action,from\nmod-a,x@x.org,include,21/09/2026\n",
                "from: `21/09/2026`",
            ),
            ("list,member\nmod-a,x@x.org\n", "the header needs"),
            ("list,member,action\nmod-a,,include\n", "must not be empty"),
        ] {
            let csv = file(text);
            let error = read(csv.path(), &config()).unwrap_err();
            assert_eq!(error.check(), "override-row");
            let message = error.to_string();
            assert!(
                message.contains(expected) && message.contains(&csv.path().display().to_string()),
                "{message}"
            );
        }
    }

    #[test]
    fn a_control_file_vouches_for_the_whole_file() {
        let text = "list,member,action\nmod-a,x@x.org,include\nmod-b,y@x.org,exclude\n";
        let csv = file(text);
        let sha256 = hex::encode(Sha256::digest(text.as_bytes()));
        let control = file(&format!("rows=2\nsha256={sha256}\n"));
        let mut config = config();
        config
            .override_sources
            .push(crate::config::OverrideSourceConfig {
                path: csv.path().to_owned(),
                control: Some(control.path().to_owned()),
            });
        assert_eq!(read_all(&config).unwrap().len(), 2);
        std::fs::write(control.path(), format!("rows=3\nsha256={sha256}\n")).unwrap();
        let error = read_all(&config).unwrap_err();
        assert!(error.to_string().contains('3'), "{error}");
        std::fs::write(csv.path(), "list,member,action\nmod-a,x@x.org,include\n").unwrap();
        std::fs::write(control.path(), format!("rows=1\nsha256={sha256}\n")).unwrap();
        let error = read_all(&config).unwrap_err();
        assert!(error.to_string().contains("sha256"), "{error}");
    }
}
