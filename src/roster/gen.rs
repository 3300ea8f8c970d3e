//! The deterministic demo-roster generator: Weinan's talent pool at its real
//! scale, placed on real divisions, with specialties that follow what each
//! county grows or raises (`index/county_profiles.csv`). Names and phone
//! numbers are synthetic.

use std::collections::{BTreeMap, BTreeSet};

use crate::{
    model::divisions::{Division, Divisions, Level},
    model::{Corps, Tier},
    reading::lexicon::{Lexicon, TermKind},
    roster::COLUMNS,
};

const COUNTY_PROFILES: &str = include_str!("../../index/county_profiles.csv");

/// City-level experts in the real pool.
pub(crate) const CITY_EXPERTS: usize = 56;
/// County/town backbone staff in the real pool.
pub(crate) const COUNTY_TOWN_STAFF: usize = 553;
/// Village practitioners in the demo roster (the real pool has 5,300+).
pub const VILLAGE_PRACTITIONERS: usize = 5_400;
/// Members of the rural-revitalisation expert corps, all from the top two tiers.
pub(crate) const CORPS_MEMBERS: usize = 603;
/// The seed `xwn serve` uses for the embedded demo roster.
pub const DEMO_SEED: u64 = 2023;

/// SplitMix64: tiny, fast and fixed forever, so a seed always gives the same
/// roster whatever crate versions are in use.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn weighted<'a>(&mut self, items: &'a [(String, f64)]) -> &'a str {
        let total: f64 = items.iter().map(|(_, w)| w).sum();
        let mut x = (self.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
        for (item, w) in items {
            if x < *w {
                return item;
            }
            x -= w;
        }
        &items[items.len() - 1].0
    }
}

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "田",
    "董", "袁", "潘", "杜", "程", "苏", "魏", "吕", "丁", "任", "姚", "姜", "崔", "雷", "侯", "史",
    "贺", "薛", "闫", "党", "屈", "惠", "同", "拓", "寇", "南",
];
const GIVEN: &[&str] = &[
    "建", "国", "军", "红", "丽", "华", "明", "强", "伟", "芳", "秀", "英", "志", "勇", "平", "林",
    "峰", "涛", "刚", "亮", "霞", "燕", "梅", "兰", "文", "杰", "斌", "波", "鹏", "辉", "磊", "超",
    "宏", "民", "安", "利", "春", "秋", "生", "荣", "福", "海", "娟", "敏", "静", "宁", "军", "忠",
    "学", "德",
];

/// Village practitioners in a synthetic roster of `size` talents in all;
/// the demo roster's number when `size` leaves none beside the top tiers.
pub fn villagers_for(size: usize) -> usize {
    let top = CITY_EXPERTS + COUNTY_TOWN_STAFF;
    if size > top {
        size - top
    } else {
        VILLAGE_PRACTITIONERS
    }
}

/// Builds the demo roster as CSV: exactly 56 city experts at the city seat,
/// 553 county/town staff in their counties' towns, `villagers` practitioners
/// in villages, and exactly 603 sub-corps members from the top two tiers.
pub fn generate_csv(
    seed: u64,
    villagers: usize,
    lexicon: &Lexicon,
    divisions: &Divisions,
) -> String {
    let profiles = county_profiles(lexicon);
    let places = Places::of(divisions);
    let mut rng = Rng(seed);
    let non_members = non_members(&mut rng);
    let mut roster = Roster {
        rng,
        out: csv::Writer::from_writer(Vec::new()),
        lexicon,
        skills: skill_terms(lexicon),
        non_members,
    };
    roster.out.write_record(COLUMNS).expect("writing to memory");
    roster.city_experts(divisions.city());
    let staff = Spread {
        tier: Tier::CountyTown,
        people: COUNTY_TOWN_STAFF,
        places: &places.county_towns,
        most_specialties: 3,
    };
    roster.spread(&staff, &places.counties, &profiles);
    let practitioners = Spread {
        tier: Tier::Village,
        people: villagers,
        places: &places.county_villages,
        most_specialties: 2,
    };
    roster.spread(&practitioners, &places.counties, &profiles);
    let bytes = roster.out.into_inner().expect("writing to memory");
    String::from_utf8(bytes).expect("CSV of strings")
}

/// The counties, and the towns and villages of each, in division order.
struct Places<'d> {
    counties: Vec<&'d Division>,
    county_towns: Vec<Vec<&'d Division>>,
    county_villages: Vec<Vec<&'d Division>>,
}

impl<'d> Places<'d> {
    fn of(divisions: &'d Divisions) -> Places<'d> {
        let counties: Vec<&Division> = divisions.counties().collect();
        let county_towns: Vec<Vec<&Division>> = counties
            .iter()
            .map(|county| {
                divisions
                    .children(county.code)
                    .into_iter()
                    .filter(|d| d.level == Level::Town)
                    .collect()
            })
            .collect();
        let county_villages = county_towns
            .iter()
            .map(|towns| {
                towns
                    .iter()
                    .flat_map(|t| divisions.children(t.code))
                    .filter(|d| d.level == Level::Village)
                    .collect()
            })
            .collect();
        Places {
            counties,
            county_towns,
            county_villages,
        }
    }
}

/// Which of the 609 top-tier people are not corps members: a few, drawn
/// first from the seed.
fn non_members(rng: &mut Rng) -> BTreeSet<usize> {
    let top = CITY_EXPERTS + COUNTY_TOWN_STAFF;
    let mut non_members = BTreeSet::new();
    while non_members.len() < top - CORPS_MEMBERS {
        non_members.insert(rng.below(top));
    }
    non_members
}

/// People of one tier spread over the counties by their number of places
/// (towns or villages).
struct Spread<'p, 'd> {
    tier: Tier,
    people: usize,
    /// Each county's places, in county order.
    places: &'p [Vec<&'d Division>],
    /// Each person has 1 to this many specialties.
    most_specialties: usize,
}

/// The roster being written: the random stream and what each row needs.
struct Roster<'a> {
    rng: Rng,
    out: csv::Writer<Vec<u8>>,
    lexicon: &'a Lexicon,
    /// Subject → the diseases and pests tied to it, for the skills column.
    skills: BTreeMap<&'a str, Vec<String>>,
    /// Indexes (city experts first) of the top-tier people outside the corps.
    non_members: BTreeSet<usize>,
}

impl Roster<'_> {
    /// City experts at the city seat: every corps in turn, every subject of
    /// a corps covered in turn.
    fn city_experts(&mut self, city: &Division) {
        let by_corps: Vec<Vec<String>> = Corps::ALL
            .iter()
            .map(|&c| {
                self.lexicon
                    .subjects()
                    .iter()
                    .filter(|s| s.corps == c)
                    .map(|s| s.name.clone())
                    .collect()
            })
            .collect();
        let mut cursor = [0usize; 5];
        for n in 1..=CITY_EXPERTS {
            let c = (n - 1) % Corps::ALL.len();
            let subjects = &by_corps[c];
            let count = 2 + self.rng.below(2);
            let specialties: Vec<String> = (0..count)
                .map(|_| {
                    cursor[c] += 1;
                    subjects[(cursor[c] - 1) % subjects.len()].clone()
                })
                .collect();
            self.person(n, Tier::City, city, dedup(specialties));
        }
    }

    /// People spread over the counties, each in one of their county's
    /// places, with specialties drawn from what the county grows or raises.
    fn spread(
        &mut self,
        spread: &Spread<'_, '_>,
        counties: &[&Division],
        profiles: &BTreeMap<String, Vec<(String, f64)>>,
    ) {
        let total: usize = spread.places.iter().map(Vec::len).sum();
        let shares = apportion(
            spread.people,
            &spread.places.iter().map(Vec::len).collect::<Vec<_>>(),
            total,
        );
        let mut n = 0;
        for (ci, share) in shares.iter().enumerate() {
            let profile = &profiles[&counties[ci].name];
            for _ in 0..*share {
                n += 1;
                let place = *self.rng.pick(&spread.places[ci]);
                let count = 1 + self.rng.below(spread.most_specialties);
                let specialties = dedup(
                    (0..count)
                        .map(|_| self.rng.weighted(profile).to_string())
                        .collect(),
                );
                self.person(n, spread.tier, place, specialties);
            }
        }
    }

    /// Writes the `n`th person of a tier.
    fn person(&mut self, n: usize, tier: Tier, division: &Division, specialties: Vec<String>) {
        let id = match tier {
            Tier::City => format!("city-{n:03}"),
            Tier::CountyTown => format!("town-{n:04}"),
            Tier::Village => format!("vill-{n:05}"),
        };
        let rng = &mut self.rng;
        let name = format!(
            "{}{}{}",
            rng.pick(SURNAMES),
            rng.pick(GIVEN),
            if rng.chance(0.7) {
                *rng.pick(GIVEN)
            } else {
                ""
            }
        );
        let phone = format!(
            "1{}{:08}",
            rng.pick(&["35", "37", "38", "39", "52", "59", "88"]),
            rng.below(100_000_000)
        );
        let corps = self.corps(n, tier, &specialties);
        let skill_text = self.skill_text(&specialties);
        let capacity = match tier {
            Tier::City => 6 + self.rng.below(5),
            Tier::CountyTown => 4 + self.rng.below(5),
            Tier::Village => 2 + self.rng.below(4),
        };
        let active = if self.rng.chance(0.97) {
            "true"
        } else {
            "false"
        };
        self.out
            .write_record([
                id.as_str(),
                &name,
                &phone,
                tier.key(),
                &corps,
                &specialties.join(";"),
                &skill_text,
                &division.code.to_string(),
                "",
                "",
                &capacity.to_string(),
                active,
            ])
            .expect("writing to memory");
    }

    /// The corps column: the first specialty's corps for a corps member,
    /// empty for everyone else.
    fn corps(&self, n: usize, tier: Tier, specialties: &[String]) -> String {
        let index = match tier {
            Tier::Village => return String::new(),
            Tier::City => n - 1,
            Tier::CountyTown => CITY_EXPERTS + n - 1,
        };
        if self.non_members.contains(&index) {
            String::new()
        } else {
            let first = self.lexicon.subject_id(&specialties[0]).expect("canonical");
            self.lexicon.subject(first).corps.chinese().to_string()
        }
    }

    /// The skills column: up to two diseases or pests of each specialty.
    fn skill_text(&mut self, specialties: &[String]) -> String {
        specialties
            .iter()
            .map(|s| {
                let known = self
                    .skills
                    .get(s.as_str())
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                let mut picked: Vec<&str> = Vec::new();
                for _ in 0..2.min(known.len()) {
                    let term = self.rng.pick(known).as_str();
                    if !picked.contains(&term) {
                        picked.push(term);
                    }
                }
                if picked.is_empty() {
                    format!("{s}生产技术指导")
                } else {
                    format!("{s}：{}防治", picked.join("、"))
                }
            })
            .collect::<Vec<_>>()
            .join("；")
    }
}

fn dedup(mut items: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    items.retain(|s| seen.insert(s.clone()));
    items
}

/// Splits `total` in proportion to `weights` (largest remainder), exactly.
fn apportion(total: usize, weights: &[usize], weight_sum: usize) -> Vec<usize> {
    let mut shares: Vec<usize> = weights.iter().map(|w| total * w / weight_sum).collect();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse((total * weights[i]) % weight_sum));
    let missing = total - shares.iter().sum::<usize>();
    for &i in order.iter().take(missing) {
        shares[i] += 1;
    }
    shares
}

/// County name → (subject, weight), from `index/county_profiles.csv`.
fn county_profiles(lexicon: &Lexicon) -> BTreeMap<String, Vec<(String, f64)>> {
    let mut profiles: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    let mut reader = csv::Reader::from_reader(COUNTY_PROFILES.as_bytes());
    for record in reader.records().map_while(Result::ok) {
        let (county, subject) = (record[0].trim().to_string(), record[1].trim().to_string());
        let weight: f64 = record[2].trim().parse().unwrap_or(0.0);
        if lexicon.subject_id(&subject).is_some() && weight > 0.0 {
            profiles.entry(county).or_default().push((subject, weight));
        }
    }
    profiles
}

/// Subject → the diseases and pests the lexicon ties firmly to it, sorted,
/// for the skills column.
fn skill_terms(lexicon: &Lexicon) -> BTreeMap<&str, Vec<String>> {
    let mut out: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (term, senses) in lexicon.iter_terms() {
        for sense in senses {
            if matches!(sense.kind, TermKind::Disease | TermKind::Pest) && sense.weight >= 0.6 {
                out.entry(lexicon.subject(sense.subject).name.as_str())
                    .or_default()
                    .push(term.to_string());
            }
        }
    }
    for terms in out.values_mut() {
        terms.sort();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apportions_exactly() {
        assert_eq!(apportion(10, &[1, 1, 1], 3), vec![4, 3, 3]);
        let shares = apportion(553, &[27, 10, 5, 17], 59);
        assert_eq!(shares.iter().sum::<usize>(), 553);
    }

    #[test]
    fn same_seed_same_roster() {
        let (lex, div) = (Lexicon::embedded(), Divisions::embedded());
        assert_eq!(generate_csv(7, 50, lex, div), generate_csv(7, 50, lex, div));
        assert_ne!(generate_csv(7, 50, lex, div), generate_csv(8, 50, lex, div));
    }
}
