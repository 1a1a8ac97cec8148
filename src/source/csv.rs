//! CSV sources: a header with `list` and `member`, UTF-8 rows, a trailing line break, and an
//! optional control file the exporter writes beside the data.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::rows::{Accumulator, Columns, RawRow};
use super::{SourceError, SourceRead, Witness};
use crate::config::SourceConfig;

/// Reads a whole CSV source, checking it against its control file when one is configured.
/// Blocking: call it from a blocking task.
pub(crate) fn read(
    source: &SourceConfig,
    path: &Path,
    witness: Option<Witness>,
) -> Result<SourceRead, SourceError> {
    let name = source.name.as_str();
    // The control file is read first: it is tiny, and a broken one should not cost a
    // full pass over a large export.
    let control = source
        .control
        .as_deref()
        .map(|control| Control::load(name, control))
        .transpose()?;

    // Validation has refused a bad delimiter already; a comma is what an unset one means.
    let delimiter = source.csv_delimiter().unwrap_or(b',');
    let file = File::open(path).map_err(|error| unreadable(name, path, error))?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(false)
        .buffer_capacity(64 * 1024)
        .from_reader(HashingReader::new(file));

    let headers = reader
        .headers()
        .map_err(|e| csv_error(name, path, e, 1, delimiter))?;
    let columns = Columns::locate(headers.iter())
        .map_err(|fault| fault.into_error(name, format!("{}:1", path.display())))?;

    let mut rows = Accumulator::new(source.member_key)
        .with_role(source.role, columns.role.is_some())
        .watching(witness);
    let mut record = csv::StringRecord::new();
    let mut last_line = 1;
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(line, csv::Position::line);
                let error = csv_error(name, path, e, line, delimiter);
                return Err(truncation_or(&mut reader, name, path, line, error));
            }
        }
        last_line = record.position().map_or(line, csv::Position::line);
        let field = |index: Option<usize>| index.and_then(|i| record.get(i));
        let row = RawRow {
            list: record.get(columns.list).unwrap_or_default(),
            member: record.get(columns.member).unwrap_or_default(),
            display_name: field(columns.display_name),
            description: field(columns.description),
            role: field(columns.role),
        };
        if let Err(fault) = rows.push_at(row, || format!("{}:{last_line}", path.display())) {
            let error = fault.into_error(name, format!("{}:{last_line}", path.display()));
            return Err(truncation_or(&mut reader, name, path, last_line, error));
        }
    }

    let bytes = reader.into_inner();
    if bytes.last != Some(b'\n') {
        return Err(SourceError::Truncated {
            source_name: name.to_owned(),
            path: path.to_owned(),
            last_line,
        });
    }
    let sha256 = hex::encode(bytes.hasher.finalize());
    if let Some(control) = control {
        control.check(name, path, rows.rows(), &sha256)?;
    }
    Ok(SourceRead::new(source, rows.finish()))
}

/// A bad last row is most often a file cut off mid-write; say so rather than blame the row.
/// `line` is where the bad row starts.
fn truncation_or(
    reader: &mut csv::Reader<HashingReader>,
    name: &str,
    path: &Path,
    line: u64,
    error: SourceError,
) -> SourceError {
    let mut rest = csv::ByteRecord::new();
    match reader.read_byte_record(&mut rest) {
        Ok(false) if reader.get_ref().last != Some(b'\n') => SourceError::Truncated {
            source_name: name.to_owned(),
            path: path.to_owned(),
            last_line: line,
        },
        _ => error,
    }
}

fn unreadable(name: &str, path: &Path, error: io::Error) -> SourceError {
    SourceError::Unreadable {
        source_name: name.to_owned(),
        path: path.to_owned(),
        error,
    }
}

fn csv_error(name: &str, path: &Path, error: csv::Error, line: u64, delimiter: u8) -> SourceError {
    let line = error.position().map_or(line, csv::Position::line);
    let message = match error.kind() {
        csv::ErrorKind::Utf8 { .. } => {
            return SourceError::CsvEncoding {
                source_name: name.to_owned(),
                path: path.to_owned(),
                line,
            };
        }
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!(
            "the row has {len} fields but the header has {expected_len}; quote fields that contain `{}` (the source's delimiter)",
            (delimiter as char).escape_default()
        ),
        _ => error.to_string(),
    };
    if let csv::ErrorKind::Io(_) = error.kind()
        && let csv::ErrorKind::Io(io) = error.into_kind()
    {
        return unreadable(name, path, io);
    }
    SourceError::CsvSyntax {
        source_name: name.to_owned(),
        path: path.to_owned(),
        line,
        message,
    }
}

/// Hashes every byte as the CSV parser reads it and remembers the last one, so the file is
/// read once for rows, digest and the trailing line break.
#[derive(Debug)]
struct HashingReader {
    file: File,
    hasher: Sha256,
    last: Option<u8>,
}

impl HashingReader {
    fn new(file: File) -> Self {
        Self {
            file,
            hasher: Sha256::new(),
            last: None,
        }
    }
}

impl Read for HashingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        if n > 0 {
            self.hasher.update(&buf[..n]);
            self.last = Some(buf[n - 1]);
        }
        Ok(n)
    }
}

/// A parsed control file: `rows=N` and `sha256=HEX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Control {
    path: std::path::PathBuf,
    rows: u64,
    sha256: String,
}

impl Control {
    /// Reads and parses the control file at `path`, for the source `name`.
    pub(crate) fn load(name: &str, path: &Path) -> Result<Self, SourceError> {
        let text = std::fs::read_to_string(path).map_err(|error| unreadable(name, path, error))?;
        Self::parse(&text)
            .map_err(|(line, message)| SourceError::ControlSyntax {
                source_name: name.to_owned(),
                path: path.to_owned(),
                line,
                message,
            })
            .map(|(rows, sha256)| Control {
                path: path.to_owned(),
                rows,
                sha256,
            })
    }

    /// Exactly one `rows=N` and one `sha256=HEX` line, in any order; blank lines are fine.
    /// An error carries the line (0 when a required line is missing) and what is wrong.
    fn parse(text: &str) -> Result<(u64, String), (u64, String)> {
        let mut rows = None;
        let mut sha256 = None;
        for (index, raw) in text.lines().enumerate() {
            let line = index as u64 + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() {
                continue;
            }
            let fault = |message: String| Err((line, message));
            let Some((key, value)) = trimmed.split_once('=') else {
                return fault(format!("`{trimmed}` is not `rows=N` or `sha256=HEX`"));
            };
            match key.trim() {
                "rows" if rows.is_some() => return fault("`rows=` appears twice".into()),
                "sha256" if sha256.is_some() => return fault("`sha256=` appears twice".into()),
                "rows" => match value.trim().parse::<u64>() {
                    Ok(n) => rows = Some(n),
                    Err(_) => {
                        return fault(format!("`rows={}` is not a number of rows", value.trim()));
                    }
                },
                "sha256" => {
                    let hex = value.trim();
                    if hex.len() != 64
                        || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                    {
                        return fault(format!(
                            "`sha256={hex}` is not 64 lower-case hexadecimal digits"
                        ));
                    }
                    sha256 = Some(hex.to_owned());
                }
                other => {
                    return fault(format!(
                        "unknown key `{other}`; a control file holds only `rows=N` and `sha256=HEX`"
                    ));
                }
            }
        }
        match (rows, sha256) {
            (Some(rows), Some(sha256)) => Ok((rows, sha256)),
            (None, _) => Err((0, "no `rows=N` line".to_owned())),
            (_, None) => Err((0, "no `sha256=HEX` line".to_owned())),
        }
    }

    /// Whether the data file `path` (`rows` data rows, `sha256` of its bytes) is the one
    /// the control file describes.
    pub(crate) fn check(
        &self,
        name: &str,
        path: &Path,
        rows: u64,
        sha256: &str,
    ) -> Result<(), SourceError> {
        if self.rows != rows {
            return Err(SourceError::ControlRows {
                source_name: name.to_owned(),
                path: path.to_owned(),
                control: self.path.clone(),
                expected: self.rows,
                found: rows,
            });
        }
        if self.sha256 != sha256 {
            return Err(SourceError::ControlSha256 {
                source_name: name.to_owned(),
                path: path.to_owned(),
                control: self.path.clone(),
                expected: self.sha256.clone(),
                found: sha256.to_owned(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn control_lines_parse_in_any_order_with_blank_lines() {
        let text = format!("\nsha256={HEX}\n\n rows = 42 \n");
        assert_eq!(Control::parse(&text), Ok((42, HEX.to_owned())));
    }

    #[test]
    fn control_file_rejects_other_lines_naming_the_line() {
        let (line, message) =
            Control::parse(&format!("rows=1\nsha256={HEX}\nby=exporter\n")).unwrap_err();
        assert_eq!(line, 3);
        assert!(message.contains("unknown key `by`"), "{message}");

        let (line, _) = Control::parse("rows=1\nhello\n").unwrap_err();
        assert_eq!(line, 2);
    }

    #[test]
    fn control_file_rejects_bad_values_and_repeats() {
        assert_eq!(Control::parse("rows=ten\n").unwrap_err().0, 1);
        let upper = HEX.to_uppercase();
        assert_eq!(
            Control::parse(&format!("rows=1\nsha256={upper}\n"))
                .unwrap_err()
                .0,
            2
        );
        assert_eq!(Control::parse("rows=1\nrows=1\n").unwrap_err().0, 2);
    }

    #[test]
    fn control_file_needs_both_lines() {
        let (line, message) = Control::parse("rows=3\n").unwrap_err();
        assert_eq!(line, 0);
        assert!(message.contains("sha256"), "{message}");
        let (_, message) = Control::parse(&format!("sha256={HEX}")).unwrap_err();
        assert!(message.contains("rows"), "{message}");
    }
}
