//! Parses roster files (CSV with a header row, or JSONL) and validates every
//! row before anything is accepted. The reader of such tabular files
//! (`read`), with its line numbers and row errors, also reads the liaison
//! lists.

mod read;

use std::collections::{BTreeMap, HashSet};

use crate::{
    model::divisions::{Division, DivisionCode, Divisions},
    model::geo::{GeoPoint, PointError},
    model::{Corps, Talent, Tier},
    reading::lexicon::Lexicon,
};

pub(crate) use read::{read_rows, Checking, Layout};

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
    pub(crate) fn key(self) -> &'static str {
        match self {
            RosterFormat::Csv => "csv",
            RosterFormat::Jsonl => "jsonl",
        }
    }

    pub(crate) fn parse(key: &str) -> Option<RosterFormat> {
        [RosterFormat::Csv, RosterFormat::Jsonl]
            .into_iter()
            .find(|f| f.key() == key)
    }
}

/// What is wrong with one row (or, at line 0, with the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line in the file; the CSV header is line 1.
    pub(crate) line: u64,
    pub(crate) field: String,
    pub(crate) message: String,
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
    pub(crate) line: u64,
    pub(crate) fields: BTreeMap<String, String>,
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
                            "duplicate id {}: ids must be unique in a roster",
                            crate::error::quote(&talent.id)
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
                    "unknown tier {}: use city, county_town or village (市级专家, 县镇级骨干, 村级实用人才)",
                    crate::error::quote(self.row.get("tier"))
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
                    self.err(
                        "corps",
                        format!(
                            "unknown corps {}: use 粮油, 蔬菜, 果树, 畜牧, 林水 or leave it empty",
                            crate::error::quote(text)
                        ),
                    );
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
                    format!("unknown specialty {}: use a subject of index/subjects.csv or one of its aliases", crate::error::quote(name)),
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
                    "{} is not a 12-digit division code",
                    crate::error::quote(self.row.get("division_code"))
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
                    self.err(
                        field,
                        format!(
                            "{} is not a number",
                            crate::error::quote(self.row.get(field))
                        ),
                    );
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
                        format!(
                            "capacity {} is not a whole number from 0 to {MAX_CAPACITY}",
                            crate::error::quote(text)
                        ),
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
                self.err(
                    "active",
                    format!("active {} is not true or false", crate::error::quote(text)),
                );
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
