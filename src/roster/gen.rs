//! The deterministic demo-roster generator: Weinan's talent pool at its real
//! scale, placed on real divisions, with specialties that follow what each
//! county grows or raises (`index/county_profiles.csv`). Names and phone
//! numbers are synthetic.

use std::collections::BTreeMap;

use crate::{
    model::divisions::{Division, Divisions, Level},
    model::{Corps, Tier},
    reading::lexicon::{Lexicon, TermKind},
    roster::COLUMNS,
};

const COUNTY_PROFILES: &str = include_str!("../../index/county_profiles.csv");

/// City-level experts in the real pool.
pub const CITY_EXPERTS: usize = 56;
/// County/town backbone staff in the real pool.
pub const COUNTY_TOWN_STAFF: usize = 553;
/// Village practitioners in the demo roster (the real pool has 5,300+).
pub const VILLAGE_PRACTITIONERS: usize = 5_400;
/// Members of the rural-revitalisation expert corps, all from the top two tiers.
pub const CORPS_MEMBERS: usize = 603;
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
    let skills = skill_terms(lexicon);
    let mut rng = Rng(seed);
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(COLUMNS).expect("writing to memory");

    let counties: Vec<&Division> = divisions.counties().collect();
    let towns_of = |county: &Division| -> Vec<&Division> {
        divisions
            .children(county.code)
            .into_iter()
            .filter(|d| d.level == Level::Town)
            .collect()
    };
    let county_towns: Vec<Vec<&Division>> = counties.iter().map(|c| towns_of(c)).collect();
    let county_villages: Vec<Vec<&Division>> = county_towns
        .iter()
        .map(|towns| {
            towns
                .iter()
                .flat_map(|t| divisions.children(t.code))
                .filter(|d| d.level == Level::Village)
                .collect()
        })
        .collect();

    // Which of the 609 top-tier people are corps members: all but a few.
    let top = CITY_EXPERTS + COUNTY_TOWN_STAFF;
    let mut non_members = std::collections::BTreeSet::new();
    while non_members.len() < top - CORPS_MEMBERS {
        non_members.insert(rng.below(top));
    }

    let person = |rng: &mut Rng,
                  out: &mut csv::Writer<Vec<u8>>,
                  n: usize,
                  tier: Tier,
                  division: &Division,
                  specialties: Vec<String>| {
        let id = match tier {
            Tier::City => format!("city-{n:03}"),
            Tier::CountyTown => format!("town-{n:04}"),
            Tier::Village => format!("vill-{n:05}"),
        };
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
        let corps = match tier {
            Tier::Village => String::new(),
            _ => {
                let index = if tier == Tier::City {
                    n - 1
                } else {
                    CITY_EXPERTS + n - 1
                };
                if non_members.contains(&index) {
                    String::new()
                } else {
                    let first = lexicon.subject_id(&specialties[0]).expect("canonical");
                    lexicon.subject(first).corps.chinese().to_string()
                }
            }
        };
        let skill_text = specialties
            .iter()
            .map(|s| {
                let known = skills.get(s.as_str()).map(Vec::as_slice).unwrap_or(&[]);
                let mut picked: Vec<&str> = Vec::new();
                for _ in 0..2.min(known.len()) {
                    let term = rng.pick(known).as_str();
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
            .join("；");
        let capacity = match tier {
            Tier::City => 6 + rng.below(5),
            Tier::CountyTown => 4 + rng.below(5),
            Tier::Village => 2 + rng.below(4),
        };
        let active = if rng.chance(0.97) { "true" } else { "false" };
        out.write_record([
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
    };

    // City experts: every corps, every subject covered in turn.
    let by_corps: Vec<Vec<String>> = Corps::ALL
        .iter()
        .map(|&c| {
            lexicon
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
        let count = 2 + rng.below(2);
        let specialties: Vec<String> = (0..count)
            .map(|_| {
                cursor[c] += 1;
                subjects[(cursor[c] - 1) % subjects.len()].clone()
            })
            .collect();
        person(
            &mut rng,
            &mut out,
            n,
            Tier::City,
            divisions.city(),
            dedup(specialties),
        );
    }

    // County/town staff: spread over counties by their number of towns.
    let total_towns: usize = county_towns.iter().map(Vec::len).sum();
    let shares = apportion(
        COUNTY_TOWN_STAFF,
        &county_towns.iter().map(Vec::len).collect::<Vec<_>>(),
        total_towns,
    );
    let mut n = 0;
    for (ci, share) in shares.iter().enumerate() {
        let profile = &profiles[&counties[ci].name];
        for _ in 0..*share {
            n += 1;
            let town = *rng.pick(&county_towns[ci]);
            let count = 1 + rng.below(3);
            let specialties = dedup(
                (0..count)
                    .map(|_| rng.weighted(profile).to_string())
                    .collect(),
            );
            person(&mut rng, &mut out, n, Tier::CountyTown, town, specialties);
        }
    }

    // Village practitioners: spread over counties by their number of villages.
    let total_villages: usize = county_villages.iter().map(Vec::len).sum();
    let shares = apportion(
        villagers,
        &county_villages.iter().map(Vec::len).collect::<Vec<_>>(),
        total_villages,
    );
    let mut n = 0;
    for (ci, share) in shares.iter().enumerate() {
        let profile = &profiles[&counties[ci].name];
        for _ in 0..*share {
            n += 1;
            let village = *rng.pick(&county_villages[ci]);
            let count = 1 + rng.below(2);
            let specialties = dedup(
                (0..count)
                    .map(|_| rng.weighted(profile).to_string())
                    .collect(),
            );
            person(&mut rng, &mut out, n, Tier::Village, village, specialties);
        }
    }
    String::from_utf8(out.into_inner().expect("writing to memory")).expect("CSV of strings")
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
