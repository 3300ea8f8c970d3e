//! Weinan's administrative divisions (2023 statistical codes) and where they are.
//!
//! The table is `index/weinan/divisions.csv`, compiled into the binary so the
//! service needs no data files at run time.

use std::{fmt, sync::OnceLock};

use rustc_hash::FxHashMap as HashMap;

use crate::model::geo::GeoPoint;

const DIVISIONS_CSV: &str = include_str!("../../index/weinan/divisions.csv");

/// A 12-digit statistical division code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DivisionCode(u64);

impl DivisionCode {
    /// Parses exactly twelve ASCII digits.
    pub fn parse(text: &str) -> Option<DivisionCode> {
        let text = text.trim();
        if text.len() != 12 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse().ok().map(DivisionCode)
    }

    pub(crate) fn as_u64(self) -> u64 {
        self.0
    }

    pub(crate) fn from_u64(code: u64) -> DivisionCode {
        DivisionCode(code)
    }

    /// The county-level code this code lies in (`610527xxxxxx` → `610527000000`).
    pub(crate) fn county(self) -> DivisionCode {
        DivisionCode(self.0 / 1_000_000 * 1_000_000)
    }

    /// The town-level code this code lies in.
    pub(crate) fn town(self) -> DivisionCode {
        DivisionCode(self.0 / 1_000 * 1_000)
    }

    fn county_part(self) -> u64 {
        self.0 / 1_000_000 % 100
    }

    fn town_part(self) -> u64 {
        self.0 / 1_000 % 1_000
    }

    /// How close two codes are administratively: 3 for the same unit, 2 for
    /// the same town, 1 for the same county, 0 otherwise.
    pub fn closeness(self, other: DivisionCode) -> u8 {
        if self == other {
            3
        } else if self.town() == other.town() && self.town_part() != 0 && self.county_part() != 0 {
            2
        } else if self.county() == other.county() && self.county_part() != 0 {
            1
        } else {
            0
        }
    }
}

impl fmt::Display for DivisionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:012}", self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Level {
    City,
    County,
    Town,
    Village,
}

#[derive(Debug, Clone)]
pub struct Division {
    pub code: DivisionCode,
    pub name: String,
    pub(crate) level: Level,
    pub(crate) parent: DivisionCode,
    /// The own point, or the nearest ancestor's (village → town → county → city).
    pub point: GeoPoint,
}

/// The division table.
#[derive(Debug)]
pub struct Divisions {
    by_code: HashMap<DivisionCode, Division>,
    counties: Vec<DivisionCode>,
    city: DivisionCode,
}

impl Divisions {
    /// The table compiled into the binary, parsed once.
    pub fn embedded() -> &'static Divisions {
        static TABLE: OnceLock<Divisions> = OnceLock::new();
        TABLE.get_or_init(|| {
            Divisions::parse(DIVISIONS_CSV).expect("the embedded division table is valid")
        })
    }

    /// Parses `code,name,level,parent_code,lat,lon` rows, parents before children.
    pub(crate) fn parse(csv_text: &str) -> Result<Divisions, String> {
        let mut by_code = HashMap::default();
        let mut counties = Vec::new();
        let mut city = None;
        let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
        for (i, record) in reader.records().enumerate() {
            let line = i + 2;
            let record = record.map_err(|e| format!("line {line}: {e}"))?;
            let field = |n: usize| record.get(n).unwrap_or("").trim();
            let code = DivisionCode::parse(field(0)).ok_or(format!("line {line}: bad code"))?;
            let level = match field(2) {
                "city" => Level::City,
                "county" => Level::County,
                "town" => Level::Town,
                "village" => Level::Village,
                other => return Err(format!("line {line}: unknown level {other}")),
            };
            let parent =
                DivisionCode::parse(field(3)).ok_or(format!("line {line}: bad parent code"))?;
            let own_point = match (field(4), field(5)) {
                ("", "") => None,
                (lat, lon) => {
                    let lat = lat.parse().map_err(|_| format!("line {line}: bad lat"))?;
                    let lon = lon.parse().map_err(|_| format!("line {line}: bad lon"))?;
                    Some(GeoPoint::new(lat, lon).map_err(|e| format!("line {line}: {e}"))?)
                }
            };
            let point = match own_point {
                Some(p) => p,
                None => by_code
                    .get(&parent)
                    .map(|p: &Division| p.point)
                    .ok_or(format!("line {line}: no point and no parent with one"))?,
            };
            match level {
                Level::City => city = Some(code),
                Level::County => counties.push(code),
                _ => {}
            }
            let name = field(1).to_string();
            by_code.insert(
                code,
                Division {
                    code,
                    name,
                    level,
                    parent,
                    point,
                },
            );
        }
        let city = city.ok_or("no city row")?;
        Ok(Divisions {
            by_code,
            counties,
            city,
        })
    }

    pub fn get(&self, code: DivisionCode) -> Option<&Division> {
        self.by_code.get(&code)
    }

    pub(crate) fn city(&self) -> &Division {
        &self.by_code[&self.city]
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_code.len()
    }

    /// County-level units in table order.
    pub fn counties(&self) -> impl Iterator<Item = &Division> {
        self.counties.iter().map(|c| &self.by_code[c])
    }

    /// The county a code lies in, if it is below one.
    pub(crate) fn county_of(&self, code: DivisionCode) -> Option<&Division> {
        self.get(code.county()).filter(|d| d.level == Level::County)
    }

    /// A county by its name (白水县, or 白水 without the suffix) or its code.
    pub(crate) fn find_county(&self, name_or_code: &str) -> Option<&Division> {
        let wanted = name_or_code.trim();
        if let Some(code) = DivisionCode::parse(wanted) {
            return self.county_of(code).filter(|d| d.code == code);
        }
        self.counties().find(|d| {
            d.name == wanted
                || d.name
                    .strip_suffix(['县', '区', '市'])
                    .is_some_and(|stem| stem == wanted)
        })
    }

    /// The county a place lies in: by code when it has one, else the county
    /// whose seat is nearest to the point.
    pub(crate) fn county_near(
        &self,
        code: Option<DivisionCode>,
        point: GeoPoint,
    ) -> Option<&Division> {
        match code {
            Some(code) => self.county_of(code),
            None => self.counties().min_by(|a, b| {
                point
                    .distance_km(a.point)
                    .total_cmp(&point.distance_km(b.point))
            }),
        }
    }

    /// Every division whose parent is `code`, in table order.
    pub fn children(&self, code: DivisionCode) -> Vec<&Division> {
        let mut out: Vec<&Division> = self.by_code.values().filter(|d| d.parent == code).collect();
        out.sort_by_key(|d| d.code);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_has_every_row() {
        let t = Divisions::embedded();
        assert_eq!(t.len(), 2491);
        assert_eq!(t.counties().count(), 11);
        assert_eq!(t.city().name, "渭南市");
    }

    #[test]
    fn points_fall_back_to_the_nearest_ancestor_with_one() {
        let t = Divisions::embedded();
        // 史官镇 has no point of its own: its villages sit at 白水县's point.
        let town = t.get(DivisionCode::parse("610527106000").unwrap()).unwrap();
        let county = t.get(town.parent).unwrap();
        assert_eq!(town.point, county.point);
        let village = t.children(town.code)[0];
        assert_eq!(village.point, county.point);
    }

    #[test]
    fn closeness_follows_the_hierarchy() {
        let c = |s: &str| DivisionCode::parse(s).unwrap();
        let v = c("610527106201");
        assert_eq!(v.closeness(v), 3);
        assert_eq!(v.closeness(c("610527106202")), 2);
        assert_eq!(v.closeness(c("610527106000")), 2);
        assert_eq!(v.closeness(c("610527107201")), 1);
        assert_eq!(v.closeness(c("610527000000")), 1);
        assert_eq!(v.closeness(c("610526106201")), 0);
        assert_eq!(v.closeness(c("610500000000")), 0);
    }

    #[test]
    fn finds_counties_by_name_stem_or_code() {
        let t = Divisions::embedded();
        assert_eq!(
            t.find_county("白水县").unwrap().code.to_string(),
            "610527000000"
        );
        assert_eq!(t.find_county("白水").unwrap().name, "白水县");
        assert_eq!(t.find_county("610581000000").unwrap().name, "韩城市");
        assert!(t.find_county("西安").is_none());
        assert!(DivisionCode::parse("61052700000").is_none());
        assert!(DivisionCode::parse("61052700000x").is_none());
    }
}
