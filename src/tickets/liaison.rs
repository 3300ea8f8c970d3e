//! Party-member liaisons (党员联户): who links which villages' households.
//! Parsed from CSV (`id,name,phone,villages`, villages separated by `;`) or
//! JSONL with the same keys (villages may be an array).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::{
    model::divisions::{DivisionCode, Divisions, Level},
    roster::{RosterFormat, RowError},
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
    pub fn villages_json(&self) -> String {
        serde_json::to_string(&self.villages).expect("strings serialize")
    }

    /// Villages read back from [`Liaison::villages_json`]; `None` when the
    /// text is not such an array.
    pub fn villages_from_json(json: &str) -> Option<Vec<String>> {
        serde_json::from_str(json).ok()
    }
}

fn field(row: &serde_json::Map<String, serde_json::Value>, key: &str) -> String {
    match row.get(key) {
        Some(serde_json::Value::String(s)) => s.trim().to_string(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(";"),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Parses and validates a whole liaison list; every bad row is reported.
pub fn parse_liaisons(
    format: RosterFormat,
    data: &[u8],
    divisions: &Divisions,
) -> Result<Vec<Liaison>, Vec<RowError>> {
    let data = data.strip_prefix("\u{feff}".as_bytes()).unwrap_or(data);
    let text = std::str::from_utf8(data).map_err(|_| {
        vec![RowError {
            line: 0,
            field: String::new(),
            message: "the file is not valid UTF-8".into(),
        }]
    })?;
    let mut rows: Vec<(u64, serde_json::Map<String, serde_json::Value>)> = Vec::new();
    let mut errors = Vec::new();
    let err = |line: u64, field: &str, message: String| RowError {
        line,
        field: field.into(),
        message,
    };
    match format {
        RosterFormat::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .flexible(true)
                .from_reader(text.as_bytes());
            let header: Vec<String> = match reader.headers() {
                Ok(h) => h.iter().map(|c| c.trim().to_ascii_lowercase()).collect(),
                Err(e) => return Err(vec![err(1, "", format!("unreadable header: {e}"))]),
            };
            for required in ["id", "name", "villages"] {
                if !header.iter().any(|h| h == required) {
                    errors.push(err(1, required, "required column is missing".into()));
                }
            }
            if !errors.is_empty() {
                return Err(errors);
            }
            for record in reader.records() {
                match record {
                    Ok(r) => {
                        let line = r.position().map_or(0, |p| p.line());
                        let map = header
                            .iter()
                            .zip(r.iter())
                            .map(|(h, v)| (h.clone(), serde_json::Value::String(v.to_string())))
                            .collect();
                        rows.push((line, map));
                    }
                    Err(e) => errors.push(err(
                        e.position().map_or(0, |p| p.line()),
                        "",
                        format!("unreadable row: {e}"),
                    )),
                }
            }
        }
        RosterFormat::Jsonl => {
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<serde_json::Value>(line) {
                    Ok(serde_json::Value::Object(map)) => rows.push((i as u64 + 1, map)),
                    _ => errors.push(err(
                        i as u64 + 1,
                        "",
                        "a line must be one JSON object".into(),
                    )),
                }
            }
        }
    }
    let mut liaisons = Vec::new();
    let mut seen = HashSet::new();
    for (line, row) in rows {
        let (id, name, phone) = (field(&row, "id"), field(&row, "name"), field(&row, "phone"));
        if id.is_empty() || id.chars().any(char::is_whitespace) || id.chars().count() > 64 {
            errors.push(err(
                line,
                "id",
                "id must be 1 to 64 characters without spaces".into(),
            ));
        } else if !seen.insert(id.clone()) {
            errors.push(err(line, "id", format!("duplicate id {id:?}")));
        }
        if name.is_empty() {
            errors.push(err(line, "name", "name is empty".into()));
        }
        let mut villages = Vec::new();
        for v in field(&row, "villages")
            .split([';', '；', '、', ','])
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            match DivisionCode::parse(v).and_then(|c| divisions.get(c)) {
                Some(d) if d.level == Level::Village => villages.push(d.code.to_string()),
                Some(_) => errors.push(err(line, "villages", format!("{v} is not a village code"))),
                None => errors.push(err(line, "villages", format!("unknown village code {v:?}"))),
            }
        }
        if villages.is_empty() {
            errors.push(err(
                line,
                "villages",
                "no villages: give the 12-digit codes of the villages linked".into(),
            ));
        }
        liaisons.push(Liaison {
            id,
            name,
            phone,
            villages,
        });
    }
    if liaisons.is_empty() && errors.is_empty() {
        errors.push(err(0, "", "the list has no rows".into()));
    }
    if errors.is_empty() {
        Ok(liaisons)
    } else {
        Err(errors)
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
