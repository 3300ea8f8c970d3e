//! Parses roster files (CSV with a header row, or JSONL) and validates every
//! row before anything is accepted. The reader of such tabular files, with
//! its line numbers and row errors, also reads the liaison lists.

use std::collections::{BTreeMap, HashSet};

use crate::{
    model::divisions::{Division, DivisionCode, Divisions},
    model::geo::{GeoPoint, PointError},
    model::{Corps, Talent, Tier},
    reading::lexicon::Lexicon,
};

/// The columns a roster may have, in file order.
pub const COLUMNS: [&str; 12] = [
    "id",
    "name",
    "phone",
    "tier",
    "corps",
    "specialties",
    "skills",
    "division_code",
    "lat",
    "lon",
    "capacity",
    "active",
];
const REQUIRED: [&str; 5] = ["id", "name", "tier", "specialties", "division_code"];
/// How a roster file is read: only its own columns, checked strictly.
const ROSTER_LAYOUT: Layout = Layout {
    known_columns: Some(&COLUMNS),
    required: &REQUIRED,
    checking: Checking::Strict,
};
const DEFAULT_CAPACITY: u32 = 5;
const MAX_CAPACITY: u32 = 1_000;
const MAX_ID_CHARS: usize = 64;
const MAX_NAME_CHARS: usize = 64;
const MAX_SKILLS_CHARS: usize = 2_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RosterFormat {
    Csv,
    Jsonl,
}

impl RosterFormat {
    pub fn key(self) -> &'static str {
        match self {
            RosterFormat::Csv => "csv",
            RosterFormat::Jsonl => "jsonl",
        }
    }

    pub fn parse(key: &str) -> Option<RosterFormat> {
        [RosterFormat::Csv, RosterFormat::Jsonl]
            .into_iter()
            .find(|f| f.key() == key)
    }
}

/// What is wrong with one row (or, at line 0, with the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line in the file; the CSV header is line 1.
    pub line: u64,
    pub field: String,
    pub message: String,
}

impl RowError {
    fn new(line: u64, field: &str, message: impl Into<String>) -> RowError {
        RowError {
            line,
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// One row as text, keyed by column name, before validation.
#[derive(Debug, Clone, Default)]
pub struct RawRow {
    pub line: u64,
    pub fields: BTreeMap<String, String>,
}

impl RawRow {
    fn get(&self, column: &str) -> &str {
        self.fields.get(column).map(|s| s.trim()).unwrap_or("")
    }
}

/// Parses and validates a whole roster file. Either every row is good and
/// the talents come back in file order, or every problem found is reported.
pub fn parse_roster(
    format: RosterFormat,
    data: &[u8],
    lexicon: &Lexicon,
    divisions: &Divisions,
) -> Result<Vec<Talent>, Vec<RowError>> {
    // Each row is validated as soon as it is read and then dropped: a large
    // roster is never held as text rows and talents at once.
    let mut talents = Vec::new();
    let mut seen = HashSet::new();
    let mut errors = Vec::new();
    let mut rows = 0usize;
    let mut accept = |row: RawRow| {
        rows += 1;
        match validate_row(&row, lexicon, divisions) {
            Ok(talent) => {
                if !seen.insert(talent.id.clone()) {
                    errors.push(RowError::new(
                        row.line,
                        "id",
                        format!(
                            "duplicate id {:?}: ids must be unique in a roster",
                            talent.id
                        ),
                    ));
                }
                talents.push(talent);
            }
            Err(mut row_errors) => errors.append(&mut row_errors),
        }
    };
    let mut read_errors = read_rows(&ROSTER_LAYOUT, format, data, &mut accept)?;
    if rows == 0 && read_errors.is_empty() {
        return Err(vec![RowError::new(
            0,
            "",
            "the roster has no rows; an import never empties the roster",
        )]);
    }
    errors.append(&mut read_errors);
    if errors.is_empty() {
        Ok(talents)
    } else {
        errors.sort_by_key(|e| e.line);
        Err(errors)
    }
}

/// What a tabular file (CSV with a header row, or JSONL) must hold, and how
/// closely it is checked while it is read.
pub(crate) struct Layout<'a> {
    /// The columns a file may have; `None` lets it have any.
    pub known_columns: Option<&'a [&'a str]>,
    /// The columns a CSV header must have; a JSON line may leave them out,
    /// to be told so when its row is validated.
    pub required: &'a [&'a str],
    pub checking: Checking,
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
                        "unknown column {column:?}; the columns are {}",
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

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" | "是" | "在岗" => Some(true),
        "false" | "0" | "no" | "n" | "否" | "停用" => Some(false),
        _ => None,
    }
}

fn parse_coordinate(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Validates one row, reporting every problem it has.
pub fn validate_row(
    row: &RawRow,
    lexicon: &Lexicon,
    divisions: &Divisions,
) -> Result<Talent, Vec<RowError>> {
    let mut check = RowCheck {
        row,
        errors: Vec::new(),
    };
    let id = check.id();
    let name = check.name();
    let phone = check.phone();
    let tier = check.tier();
    let corps = check.corps();
    let specialties = check.specialties(lexicon);
    let skills = check.skills();
    let division = check.division(divisions);
    let given_point = check.point();
    let capacity = check.capacity();
    let active = check.active();
    match (check.errors.is_empty(), tier, division) {
        (true, Some(tier), Some(division)) => Ok(Talent {
            id,
            name,
            phone,
            tier,
            corps,
            specialties,
            skills,
            division_code: division.code,
            given_point,
            point: given_point.unwrap_or(division.point),
            capacity,
            active,
        }),
        _ => Err(check.errors),
    }
}

/// One row being validated, field by field, with the problems found so far
/// in field order.
struct RowCheck<'r> {
    row: &'r RawRow,
    errors: Vec<RowError>,
}

impl<'r> RowCheck<'r> {
    fn err(&mut self, field: &str, message: String) {
        self.errors
            .push(RowError::new(self.row.line, field, message));
    }

    fn id(&mut self) -> String {
        let id = self.row.get("id").to_string();
        if id.is_empty() {
            self.err("id", "id is empty".into());
        } else if id.chars().count() > MAX_ID_CHARS
            || id.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            self.err(
                "id",
                format!("id must be 1 to {MAX_ID_CHARS} characters without spaces"),
            );
        }
        id
    }

    fn name(&mut self) -> String {
        let name = self.row.get("name").to_string();
        if name.is_empty() {
            self.err("name", "name is empty".into());
        } else if name.chars().count() > MAX_NAME_CHARS {
            self.err(
                "name",
                format!("name is longer than {MAX_NAME_CHARS} characters"),
            );
        }
        name
    }

    fn phone(&mut self) -> String {
        let phone = self.row.get("phone").to_string();
        if !phone.is_empty()
            && (phone.len() > 20
                || !phone
                    .chars()
                    .all(|c| c.is_ascii_digit() || "+- ".contains(c)))
        {
            self.err(
                "phone",
                "phone may hold only digits, +, - and spaces (at most 20)".into(),
            );
        }
        phone
    }

    fn tier(&mut self) -> Option<Tier> {
        let tier = Tier::parse(self.row.get("tier"));
        if tier.is_none() {
            self.err(
                "tier",
                format!(
                    "unknown tier {:?}: use city, county_town or village (市级专家, 县镇级骨干, 村级实用人才)",
                    self.row.get("tier")
                ),
            );
        }
        tier
    }

    fn corps(&mut self) -> Option<Corps> {
        match self.row.get("corps") {
            "" => None,
            text => {
                let corps = Corps::parse(text);
                if corps.is_none() {
                    self.err("corps", format!("unknown corps {text:?}: use 粮油, 蔬菜, 果树, 畜牧, 林水 or leave it empty"));
                }
                corps
            }
        }
    }

    /// The canonical names of the specialties, each once, in order.
    fn specialties(&mut self, lexicon: &Lexicon) -> Vec<String> {
        let text: &'r str = self.row.get("specialties");
        let mut specialties = Vec::new();
        for name in text
            .split([';', '；', '、'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            match lexicon.resolve_specialty(name) {
                Some(id) => {
                    let canonical = lexicon.subject(id).name.clone();
                    if !specialties.contains(&canonical) {
                        specialties.push(canonical);
                    }
                }
                None => self.err(
                    "specialties",
                    format!("unknown specialty {name:?}: use a subject of index/subjects.csv or one of its aliases"),
                ),
            }
        }
        if text.is_empty() {
            self.err(
                "specialties",
                "no specialties: give at least one subject, separated by ;".into(),
            );
        }
        specialties
    }

    fn skills(&mut self) -> String {
        let skills = self.row.get("skills").to_string();
        if skills.chars().count() > MAX_SKILLS_CHARS {
            self.err(
                "skills",
                format!("skills is longer than {MAX_SKILLS_CHARS} characters"),
            );
        }
        skills
    }

    /// The row's division, which must be a Weinan division of 2023.
    fn division<'d>(&mut self, divisions: &'d Divisions) -> Option<&'d Division> {
        let Some(code) = DivisionCode::parse(self.row.get("division_code")) else {
            self.err(
                "division_code",
                format!(
                    "{:?} is not a 12-digit division code",
                    self.row.get("division_code")
                ),
            );
            return None;
        };
        let division = divisions.get(code);
        if division.is_none() {
            self.err(
                "division_code",
                format!("unknown division code {code}: not a Weinan division of 2023"),
            );
        }
        division
    }

    /// The point given by `lat` and `lon`, both or neither.
    fn point(&mut self) -> Option<GeoPoint> {
        let (lat, lon) = (self.row.get("lat"), self.row.get("lon"));
        match (lat, lon) {
            ("", "") => None,
            ("", _) => {
                self.err("lat", "lon is given without lat".into());
                None
            }
            (_, "") => {
                self.err("lon", "lat is given without lon".into());
                None
            }
            (lat, lon) => match (parse_coordinate(lat), parse_coordinate(lon)) {
                (Some(lat), Some(lon)) => match GeoPoint::new(lat, lon) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        let field = if matches!(e, PointError::Latitude(_)) {
                            "lat"
                        } else {
                            "lon"
                        };
                        self.err(field, format!("coordinates outside the WGS84 range: {e}"));
                        None
                    }
                },
                (lat_ok, _) => {
                    let field = if lat_ok.is_none() { "lat" } else { "lon" };
                    self.err(field, format!("{:?} is not a number", self.row.get(field)));
                    None
                }
            },
        }
    }

    fn capacity(&mut self) -> u32 {
        match self.row.get("capacity") {
            "" => DEFAULT_CAPACITY,
            text => match text.parse::<u32>() {
                Ok(c) if c <= MAX_CAPACITY => c,
                _ => {
                    self.err(
                        "capacity",
                        format!("capacity {text:?} is not a whole number from 0 to {MAX_CAPACITY}"),
                    );
                    0
                }
            },
        }
    }

    fn active(&mut self) -> bool {
        match self.row.get("active") {
            "" => true,
            text => parse_bool(text).unwrap_or_else(|| {
                self.err("active", format!("active {text:?} is not true or false"));
                false
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(format: RosterFormat, text: &str) -> Result<Vec<Talent>, Vec<RowError>> {
        parse_roster(
            format,
            text.as_bytes(),
            Lexicon::embedded(),
            Divisions::embedded(),
        )
    }

    const HEADER: &str =
        "id,name,phone,tier,corps,specialties,skills,division_code,lat,lon,capacity,active";

    #[test]
    fn parses_csv_with_bom_crlf_defaults_and_aliases() {
        let text = format!(
            "\u{feff}{HEADER}\r\nt1,王建国,13800000001,市级专家,果树,苹果；洋芋、苹果,腐烂病防治,610500000000,,,,\r\n"
        );
        let talents = parse(RosterFormat::Csv, &text).unwrap();
        let t = &talents[0];
        assert_eq!(t.tier, Tier::City);
        assert_eq!(t.corps, Some(Corps::Fruit));
        assert_eq!(t.specialties, ["苹果", "马铃薯"]);
        assert_eq!((t.capacity, t.active), (5, true));
        assert_eq!(t.point, Divisions::embedded().city().point);
    }

    #[test]
    fn reports_every_bad_row_with_line_and_field() {
        let text = format!(
            "{HEADER}\n\
             a,甲,,province,,苹果,,610527106202,,,,\n\
             b,乙,,village,水果,,,610527106202,,,,\n\
             c,丙,,village,,苹果,,999999999999,,,,\n\
             a,丁,,village,,苹果,,610527106202,91,109,x,maybe\n"
        );
        let errors = parse(RosterFormat::Csv, &text).unwrap_err();
        let got: Vec<(u64, &str)> = errors.iter().map(|e| (e.line, e.field.as_str())).collect();
        for want in [
            (2, "tier"),
            (3, "corps"),
            (3, "specialties"),
            (4, "division_code"),
            (5, "lat"),
            (5, "capacity"),
            (5, "active"),
        ] {
            assert!(got.contains(&want), "missing {want:?} in {got:?}");
        }
    }

    #[test]
    fn flags_duplicate_ids_and_unknown_columns() {
        let text = format!("{HEADER}\nx,甲,,village,,苹果,,610527106202,,,,\nx,乙,,village,,梨,,610527106202,,,,\n");
        let errors = parse(RosterFormat::Csv, &text).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].line, errors[0].field.as_str()), (3, "id"));
        let errors = parse(
            RosterFormat::Csv,
            "id,name,tier,specialties,division_code,age\n",
        )
        .unwrap_err();
        assert_eq!(errors[0].field, "age");
    }

    #[test]
    fn parses_jsonl_with_arrays_and_numbers() {
        let text = "{\"id\":\"j1\",\"name\":\"李\",\"tier\":\"village\",\"specialties\":[\"小麦\",\"玉米\"],\"division_code\":\"610527106202\",\"lat\":35.1,\"lon\":109.6,\"capacity\":3,\"active\":false}\n\n";
        let talents = parse(RosterFormat::Jsonl, text).unwrap();
        assert_eq!(talents[0].specialties, ["小麦", "玉米"]);
        assert_eq!(
            talents[0].point,
            GeoPoint {
                lat: 35.1,
                lon: 109.6
            }
        );
        assert!(!talents[0].active);
        let errors = parse(RosterFormat::Jsonl, "{\"id\":\"j1\"}\n[1]\n{oops\n").unwrap_err();
        let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
        assert!(
            lines.contains(&1) && lines.contains(&2) && lines.contains(&3),
            "{errors:?}"
        );
    }

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

    #[test]
    fn refuses_empty_and_non_utf8_files() {
        assert!(parse(RosterFormat::Csv, &format!("{HEADER}\n")).is_err());
        let errors = parse_roster(
            RosterFormat::Csv,
            b"id,name\n\xff\xfe",
            Lexicon::embedded(),
            Divisions::embedded(),
        )
        .unwrap_err();
        assert_eq!(errors[0].line, 2);
    }
}
