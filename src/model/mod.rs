//! Domain types of the talent pool: tiers, sub-corps and talents.

use std::fmt;

use serde::{Deserialize, Serialize};

pub mod divisions;
pub mod geo;
pub mod ids;

use divisions::DivisionCode;
use geo::GeoPoint;

/// Where the farmer says they are, as received.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Location {
    Division(String),
    Point { lat: f64, lon: f64 },
}

/// The talent pool's three tiers, from the top.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    City,
    CountyTown,
    Village,
}

impl Tier {
    /// The tier above, toward the city's experts; none above the city.
    pub(crate) fn above(self) -> Option<Tier> {
        match self {
            Tier::Village => Some(Tier::CountyTown),
            Tier::CountyTown => Some(Tier::City),
            Tier::City => None,
        }
    }

    /// Whether a responder of this tier may take work of `tier`: their own
    /// tier's and every tier below it.
    pub(crate) fn is_at_or_above(self, tier: Tier) -> bool {
        self <= tier
    }

    pub(crate) const ALL: [Tier; 3] = [Tier::City, Tier::CountyTown, Tier::Village];

    /// The roster-file spelling (`city`, `county_town`, `village`).
    pub fn key(self) -> &'static str {
        match self {
            Tier::City => "city",
            Tier::CountyTown => "county_town",
            Tier::Village => "village",
        }
    }

    pub(crate) fn chinese(self) -> &'static str {
        match self {
            Tier::City => "市级专家",
            Tier::CountyTown => "县镇级骨干",
            Tier::Village => "村级实用人才",
        }
    }

    /// Accepts the key or the Chinese name.
    pub(crate) fn parse(text: &str) -> Option<Tier> {
        let text = text.trim();
        Tier::ALL
            .into_iter()
            .find(|t| t.key().eq_ignore_ascii_case(text) || t.chinese() == text)
    }
}

/// The five sub-corps of the rural-revitalisation expert corps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Corps {
    GrainOil,
    Vegetable,
    Fruit,
    Livestock,
    ForestryWater,
}

impl Corps {
    pub(crate) const ALL: [Corps; 5] = [
        Corps::GrainOil,
        Corps::Vegetable,
        Corps::Fruit,
        Corps::Livestock,
        Corps::ForestryWater,
    ];

    /// 粮油, 蔬菜, 果树, 畜牧, 林水.
    pub fn chinese(self) -> &'static str {
        match self {
            Corps::GrainOil => "粮油",
            Corps::Vegetable => "蔬菜",
            Corps::Fruit => "果树",
            Corps::Livestock => "畜牧",
            Corps::ForestryWater => "林水",
        }
    }

    /// Accepts the Chinese name (with or without 组) or the snake_case key.
    pub(crate) fn parse(text: &str) -> Option<Corps> {
        let text = text.trim();
        let text = text.strip_suffix('组').unwrap_or(text);
        Corps::ALL.into_iter().find(|c| {
            c.chinese() == text || format!("{c:?}").eq_ignore_ascii_case(&text.replace('_', ""))
        })
    }
}

impl fmt::Display for Corps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.chinese())
    }
}

/// One person of the talent pool, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Talent {
    pub id: String,
    pub(crate) name: String,
    /// Personal data: only admin replies carry it.
    pub phone: String,
    pub tier: Tier,
    /// Sub-corps membership; `None` for non-members.
    pub(crate) corps: Option<Corps>,
    /// Canonical subject names, deduplicated, in roster order.
    pub specialties: Vec<String>,
    pub skills: String,
    pub division_code: DivisionCode,
    /// The point the roster gave, if any.
    pub(crate) given_point: Option<GeoPoint>,
    /// The given point or the division's point.
    pub point: GeoPoint,
    pub(crate) capacity: u32,
    pub(crate) active: bool,
}

impl Talent {
    /// Can take requests at all: active with capacity above zero.
    pub fn is_available(&self) -> bool {
        self.active && self.capacity > 0
    }
}

impl Serialize for DivisionCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DivisionCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        DivisionCode::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("bad division code {text}")))
    }
}

/// Unix milliseconds as the UTC date and the milliseconds into that day:
/// `(year, month, day, ms_of_day)` (Howard Hinnant's civil-from-days).
pub(crate) fn civil(ms: i64) -> (i64, i64, i64, i64) {
    let days = ms.div_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, ms.rem_euclid(86_400_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_order_from_the_city_down() {
        assert_eq!(Tier::Village.above(), Some(Tier::CountyTown));
        assert_eq!(Tier::CountyTown.above(), Some(Tier::City));
        assert_eq!(Tier::City.above(), None);
        assert!(Tier::City.is_at_or_above(Tier::Village));
        assert!(Tier::CountyTown.is_at_or_above(Tier::CountyTown));
        assert!(!Tier::Village.is_at_or_above(Tier::CountyTown));
    }

    #[test]
    fn tiers_and_corps_parse_both_spellings() {
        assert_eq!(Tier::parse("county_town"), Some(Tier::CountyTown));
        assert_eq!(Tier::parse("村级实用人才"), Some(Tier::Village));
        assert_eq!(Tier::parse("province"), None);
        assert_eq!(Corps::parse("林水"), Some(Corps::ForestryWater));
        assert_eq!(Corps::parse("果树组"), Some(Corps::Fruit));
        assert_eq!(Corps::parse("grain_oil"), Some(Corps::GrainOil));
        assert_eq!(Corps::parse("水果"), None);
    }
}
