//! Reading tabular files, CSV with a header row or JSONL, into rows of text
//! with their line numbers, and the errors of the rows that cannot be read:
//! for rosters and liaison lists alike.

use std::collections::HashSet;

use super::{RawRow, RosterFormat, RowError};

/// What a tabular file (CSV with a header row, or JSONL) must hold, and how
/// closely it is checked while it is read.
pub(crate) struct Layout<'a> {
    /// The columns a file may have; `None` lets it have any.
    pub(crate) known_columns: Option<&'a [&'a str]>,
    /// The columns a CSV header must have; a JSON line may leave them out,
    /// to be told so when its row is validated.
    pub(crate) required: &'a [&'a str],
    pub(crate) checking: Checking,
}

/// How closely a tabular file is checked while it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Checking {
    /// Rosters: a file that is not UTF-8 is refused at the line where it
    /// stops being so; a blank header row and a column given twice are
    /// refused; CSV rows of blank fields are skipped, and the others must
    /// have the header's number of fields; unreadable JSON is told apart
    /// from JSON that is not an object.
    Strict,
    /// Liaison lists, read as they always have been: a file that is not
    /// UTF-8 is refused at line 0; a blank header only lacks its required
    /// columns; every CSV row is kept, a short one leaving its last columns
    /// empty; any line that is not a JSON object is told so.
    Lenient,
}

impl Layout<'_> {
    /// Checks the columns of a CSV header or the keys of a JSON line.
    fn check_columns<'c>(
        &self,
        line: u64,
        columns: impl IntoIterator<Item = &'c str>,
    ) -> Result<(), Vec<RowError>> {
        let mut errors = Vec::new();
        let mut seen = HashSet::new();
        for column in columns {
            match self.known_columns {
                Some(known) if !known.contains(&column) => errors.push(RowError::new(
                    line,
                    column,
                    format!(
                        "unknown column {}; the columns are {}",
                        crate::error::quote(column),
                        known.join(",")
                    ),
                )),
                _ => {
                    if !seen.insert(column.to_string()) && self.checking == Checking::Strict {
                        errors.push(RowError::new(line, column, "column given twice"));
                    }
                }
            }
        }
        for &required in self.required {
            if !seen.contains(required) {
                errors.push(RowError::new(line, required, "required column is missing"));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Reads a tabular file and hands each row to `accept`, with its line, its
/// columns (a CSV header's lowercased) and its values trimmed; a JSON array
/// becomes its items joined with `;`. Returns the rows that could not be
/// read; a file that is not UTF-8, or whose header is wrong, is refused
/// whole.
pub(crate) fn read_rows(
    layout: &Layout<'_>,
    format: RosterFormat,
    data: &[u8],
    accept: &mut impl FnMut(RawRow),
) -> Result<Vec<RowError>, Vec<RowError>> {
    let text = decode(data, layout.checking)?;
    match format {
        RosterFormat::Csv => csv_rows(layout, text, accept),
        RosterFormat::Jsonl => Ok(jsonl_rows(layout, text, accept)),
    }
}

/// The file as text, without its byte-order mark.
fn decode(data: &[u8], checking: Checking) -> Result<&str, Vec<RowError>> {
    let data = data.strip_prefix("\u{feff}".as_bytes()).unwrap_or(data);
    std::str::from_utf8(data).map_err(|e| {
        let line = match checking {
            Checking::Strict => {
                data[..e.valid_up_to()]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count() as u64
                    + 1
            }
            Checking::Lenient => 0,
        };
        vec![RowError::new(line, "", "the file is not valid UTF-8")]
    })
}

/// Hands each CSV row to `accept`; returns the rows that could not be read.
/// Header problems end it.
fn csv_rows(
    layout: &Layout<'_>,
    text: &str,
    accept: &mut impl FnMut(RawRow),
) -> Result<Vec<RowError>, Vec<RowError>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let header = csv_header(layout, &mut reader)?;
    let strict = layout.checking == Checking::Strict;
    let mut errors = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                errors.push(RowError::new(line, "", format!("unreadable row: {e}")));
                continue;
            }
        };
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        if strict && record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        if strict && record.len() != header.len() {
            errors.push(RowError::new(
                line,
                "",
                format!(
                    "{} fields where the header has {}",
                    record.len(),
                    header.len()
                ),
            ));
            continue;
        }
        let fields = header
            .iter()
            .cloned()
            .zip(record.iter().map(|f| f.trim().to_string()))
            .collect();
        accept(RawRow { line, fields });
    }
    Ok(errors)
}

/// The CSV header's columns, trimmed and lowercased, once they pass the
/// layout's checks.
fn csv_header(
    layout: &Layout<'_>,
    reader: &mut csv::Reader<&[u8]>,
) -> Result<Vec<String>, Vec<RowError>> {
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|c| c.trim().to_ascii_lowercase()).collect(),
        Err(e) => {
            return Err(vec![RowError::new(
                1,
                "",
                format!("unreadable header: {e}"),
            )])
        }
    };
    if layout.checking == Checking::Strict && header.iter().all(String::is_empty) {
        return Err(vec![RowError::new(1, "", "the file has no header row")]);
    }
    layout.check_columns(1, header.iter().map(String::as_str))?;
    Ok(header)
}

/// Hands each JSON line to `accept`; returns the lines that are not JSON
/// objects with known keys.
fn jsonl_rows(layout: &Layout<'_>, text: &str, accept: &mut impl FnMut(RawRow)) -> Vec<RowError> {
    let mut errors = Vec::new();
    for (i, line_text) in text.lines().enumerate() {
        let line = i as u64 + 1;
        if line_text.trim().is_empty() {
            continue;
        }
        let object = match serde_json::from_str::<serde_json::Value>(line_text) {
            Ok(serde_json::Value::Object(o)) => o,
            Ok(_) => {
                errors.push(RowError::new(line, "", "a line must be one JSON object"));
                continue;
            }
            Err(e) => {
                let message = match layout.checking {
                    Checking::Strict => format!("not valid JSON: {e}"),
                    Checking::Lenient => "a line must be one JSON object".to_string(),
                };
                errors.push(RowError::new(line, "", message));
                continue;
            }
        };
        if let Err(mut e) = layout.check_columns(line, object.keys().map(String::as_str)) {
            // A JSON line may leave out required keys only to be told so below.
            e.retain(|err| err.message != "required column is missing");
            if !e.is_empty() {
                errors.append(&mut e);
                continue;
            }
        }
        let fields = object
            .into_iter()
            .map(|(key, value)| (key, json_text(value)))
            .collect();
        accept(RawRow { line, fields });
    }
    errors
}

/// A JSON value as a row's text: a string trimmed, null empty, an array its
/// items joined with `;`, anything else as JSON.
fn json_text(value: serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.trim().to_string(),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(";"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_reading_keeps_the_rows_strict_reading_refuses() {
        let text = b"ID , name\n,\n x \n";
        for (checking, want_rows, want_errors) in
            [(Checking::Strict, 0, 1), (Checking::Lenient, 2, 0)]
        {
            let layout = Layout {
                known_columns: None,
                required: &["id"],
                checking,
            };
            let mut rows = Vec::new();
            let errors =
                read_rows(&layout, RosterFormat::Csv, text, &mut |row| rows.push(row)).unwrap();
            assert_eq!((rows.len(), errors.len()), (want_rows, want_errors));
            if let Some(short) = rows.get(1) {
                assert_eq!(short.line, 3);
                assert_eq!(short.fields.get("id").map(String::as_str), Some("x"));
                assert_eq!(short.fields.get("name"), None);
            }
        }
    }
}
