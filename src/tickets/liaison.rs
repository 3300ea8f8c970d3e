//! Party-member liaisons (党员联户): who links which villages' households.
//! Parsed from CSV (`id,name,phone,villages`, villages separated by `;`) or
//! JSONL with the same keys (villages may be an array).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::{
    model::divisions::{DivisionCode, Divisions, Level},
    roster::{read_rows, Checking, Layout, RawRow, RosterFormat, RowError},
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Liaison {
    pub id: String,
    pub name: String,
    pub phone: String,
    /// 12-digit village codes.
    pub villages: Vec<String>,
}

impl Liaison {
    /// The villages as the ticket stores keep them: a JSON array of codes.
    pub(crate) fn villages_json(&self) -> String {
        serde_json::to_string(&self.villages).expect("strings serialize")
    }

    /// Villages read back from [`Liaison::villages_json`]; `None` when the
    /// text is not such an array.
    pub(crate) fn villages_from_json(json: &str) -> Option<Vec<String>> {
        serde_json::from_str(json).ok()
    }
}

/// How a liaison list is read: any columns beside the three it needs, and
/// leniently, as it always has been.
const LIAISON_LAYOUT: Layout = Layout {
    known_columns: None,
    required: &["id", "name", "villages"],
    checking: Checking::Lenient,
};

/// Parses and validates a whole liaison list; every bad row is reported,
/// the rows that could not be read first.
pub fn parse_liaisons(
    format: RosterFormat,
    data: &[u8],
    divisions: &Divisions,
) -> Result<Vec<Liaison>, Vec<RowError>> {
    let mut rows = Vec::new();
    let mut errors = read_rows(&LIAISON_LAYOUT, format, data, &mut |row| rows.push(row))?;
    let mut seen = HashSet::new();
    let liaisons: Vec<Liaison> = rows
        .iter()
        .map(|row| validate_liaison(row, divisions, &mut seen, &mut errors))
        .collect();
    if liaisons.is_empty() && errors.is_empty() {
        errors.push(error(0, "", "the list has no rows".into()));
    }
    if errors.is_empty() {
        Ok(liaisons)
    } else {
        Err(errors)
    }
}

/// A column's value as read (trimmed; an array's items joined with `;`).
fn field(row: &RawRow, column: &str) -> String {
    row.fields.get(column).cloned().unwrap_or_default()
}

fn error(line: u64, field: &str, message: String) -> RowError {
    RowError {
        line,
        field: field.into(),
        message,
    }
}

/// Reads one liaison, reporting each problem of its row; `seen` holds the
/// ids of the rows before.
fn validate_liaison(
    row: &RawRow,
    divisions: &Divisions,
    seen: &mut HashSet<String>,
    errors: &mut Vec<RowError>,
) -> Liaison {
    let line = row.line;
    let (id, name, phone) = (field(row, "id"), field(row, "name"), field(row, "phone"));
    if id.is_empty() || id.chars().any(char::is_whitespace) || id.chars().count() > 64 {
        errors.push(error(
            line,
            "id",
            "id must be 1 to 64 characters without spaces".into(),
        ));
    } else if !seen.insert(id.clone()) {
        errors.push(error(
            line,
            "id",
            format!("duplicate id {}", crate::error::quote(&id)),
        ));
    }
    if name.is_empty() {
        errors.push(error(line, "name", "name is empty".into()));
    }
    let mut villages = Vec::new();
    for v in field(row, "villages")
        .split([';', '；', '、', ','])
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        match DivisionCode::parse(v).and_then(|c| divisions.get(c)) {
            Some(d) if d.level == Level::Village => villages.push(d.code.to_string()),
            Some(_) => errors.push(error(
                line,
                "villages",
                format!("{} is not a village code", crate::error::quote(v)),
            )),
            None => errors.push(error(
                line,
                "villages",
                format!("unknown village code {}", crate::error::quote(v)),
            )),
        }
    }
    if villages.is_empty() {
        errors.push(error(
            line,
            "villages",
            "no villages: give the 12-digit codes of the villages linked".into(),
        ));
    }
    Liaison {
        id,
        name,
        phone,
        villages,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_csv_and_reports_bad_villages() {
        let d = Divisions::embedded();
        let ok = "id,name,phone,villages\nl1,党员甲,139,610527106202;610527106203\n";
        let list = parse_liaisons(RosterFormat::Csv, ok.as_bytes(), d).unwrap();
        assert_eq!(list[0].villages, ["610527106202", "610527106203"]);
        let bad = "id,name,phone,villages\nl1,甲,,610527106000\nl1,乙,,999\n";
        let errors = parse_liaisons(RosterFormat::Csv, bad.as_bytes(), d).unwrap_err();
        let got: Vec<(u64, &str)> = errors.iter().map(|e| (e.line, e.field.as_str())).collect();
        assert!(
            got.contains(&(2, "villages"))
                && got.contains(&(3, "id"))
                && got.contains(&(3, "villages")),
            "{got:?}"
        );
    }

    #[test]
    fn parses_jsonl_with_village_arrays() {
        let text = r#"{"id":"l2","name":"乙","villages":["610527106202"]}"#;
        let list =
            parse_liaisons(RosterFormat::Jsonl, text.as_bytes(), Divisions::embedded()).unwrap();
        assert_eq!(list[0].id, "l2");
    }
}
