//! An in-memory spatial index of each specialty's available talents: the
//! members of a specialty grouped in small lat/lon cells, so the nearest
//! ones are found by visiting the cells closest to the farmer first, not by
//! scanning every specialist of a large roster.

use std::{cmp::Ordering, collections::BinaryHeap, sync::Arc};

use rustc_hash::FxHashMap as HashMap;

use crate::{
    model::divisions::DivisionCode,
    model::geo::GeoPoint,
    model::{Corps, Talent},
    reading::lexicon::Lexicon,
};

/// Cell edge in degrees (about 5 km over Weinan).
const CELL_DEG: f64 = 0.05;
/// Mean Earth radius, as `geo` uses it.
const EARTH_RADIUS_KM: f64 = 6371.0088;
/// A cell is skipped only when its lower bound passes the k-th distance by
/// this much: rounding never drops a talent that ties.
const SLACK_KM: f64 = 1e-6;

/// An available talent of a list, where it is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Member {
    pub(crate) point: GeoPoint,
    pub(crate) division: DivisionCode,
    pub(crate) ord: u32,
    /// Its document, numbered across the searcher's segments.
    pub(crate) doc: u32,
}

/// The bounding box of a cell's members and where they sit in `members`.
#[derive(Debug, Clone, Copy)]
struct Cell {
    lat_lo: f64,
    lat_hi: f64,
    lon_lo: f64,
    lon_hi: f64,
    /// The smallest cosine of a latitude in the box.
    min_cos: f64,
    start: u32,
    end: u32,
}

#[derive(Debug, Default)]
struct CellList {
    cells: Vec<Cell>,
    members: Vec<Member>,
}

impl CellList {
    /// The list of `entries`, grouped by cell, each cell with its bounds.
    fn new(mut entries: Vec<Placed>) -> CellList {
        // A talent is once in a list: the order is total.
        entries.sort_unstable_by_key(|(key, m)| (*key, m.ord));
        let mut list = CellList {
            cells: Vec::new(),
            members: Vec::with_capacity(entries.len()),
        };
        let mut i = 0;
        while i < entries.len() {
            let key = entries[i].0;
            let start = i;
            while i < entries.len() && entries[i].0 == key {
                i += 1;
            }
            let group = &entries[start..i];
            let lat =
                |f: fn(f64, f64) -> f64, init| group.iter().map(|(_, m)| m.point.lat).fold(init, f);
            let lon =
                |f: fn(f64, f64) -> f64, init| group.iter().map(|(_, m)| m.point.lon).fold(init, f);
            let (lat_lo, lat_hi) = (lat(f64::min, f64::MAX), lat(f64::max, f64::MIN));
            list.cells.push(Cell {
                lat_lo,
                lat_hi,
                lon_lo: lon(f64::min, f64::MAX),
                lon_hi: lon(f64::max, f64::MIN),
                min_cos: lat_lo.to_radians().cos().min(lat_hi.to_radians().cos()),
                start: start as u32,
                end: i as u32,
            });
        }
        list.members.extend(entries.into_iter().map(|(_, m)| m));
        list
    }
}

/// A talent that may rank: its distance, administrative closeness and ord.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Near {
    pub(crate) distance_km: f64,
    pub(crate) closeness: u8,
    pub(crate) ord: u32,
}

/// What qualifies a talent for a list: a specialty, or a specialty in a corps.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Specialty(String),
    Corps(Corps),
}

/// Per specialty (canonical name) and per corps of a specialty, the
/// available talents by cell.
#[derive(Debug, Default)]
pub(crate) struct SpatialIndex {
    lists: HashMap<Key, CellList>,
}

/// A member with its cell (row, column).
type Placed = ((i64, i64), Member);

fn cell_key(p: GeoPoint) -> (i64, i64) {
    (
        (p.lat / CELL_DEG).floor() as i64,
        (p.lon / CELL_DEG).floor() as i64,
    )
}

/// `sin x` from below for `0 <= x <= π/2`: `x - x³/6`.
fn sin_below(x: f64) -> f64 {
    (x - x * x * x / 6.0).max(0.0)
}

impl SpatialIndex {
    /// The lists of the talents' specialties and of their corps (as the
    /// index's `specialty_corps` field has them under `lexicon`). `docs`
    /// are the talents' documents by ord.
    pub(crate) fn build(
        talents: &[Option<Arc<Talent>>],
        lexicon: &Lexicon,
        docs: &[u32],
    ) -> SpatialIndex {
        let mut by_specialty: HashMap<&str, Vec<Placed>> = HashMap::default();
        let mut by_corps: [Vec<Placed>; Corps::ALL.len()] = Default::default();
        for (ord, talent) in talents.iter().enumerate() {
            let Some(t) = talent.as_ref().filter(|t| t.is_available()) else {
                continue;
            };
            let entry = (
                cell_key(t.point),
                Member {
                    point: t.point,
                    division: t.division_code,
                    ord: ord as u32,
                    doc: docs.get(ord).copied().unwrap_or(u32::MAX),
                },
            );
            let mut in_corps = [false; Corps::ALL.len()];
            for s in &t.specialties {
                by_specialty.entry(s.as_str()).or_default().push(entry);
                if let Some(id) = lexicon.subject_id(s) {
                    let c = lexicon.subject(id).corps as usize;
                    if !in_corps[c] {
                        in_corps[c] = true;
                        by_corps[c].push(entry);
                    }
                }
            }
        }
        let mut gathered: Vec<(Key, Vec<Placed>)> = by_specialty
            .into_iter()
            .map(|(s, entries)| (Key::Specialty(s.to_string()), entries))
            .chain(
                Corps::ALL
                    .into_iter()
                    .zip(by_corps)
                    .filter(|(_, entries)| !entries.is_empty())
                    .map(|(c, entries)| (Key::Corps(c), entries)),
            )
            .collect();
        // The lists are sorted into cells on every core, largest first.
        gathered.sort_unstable_by_key(|(_, entries)| std::cmp::Reverse(entries.len()));
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut shares: Vec<Vec<(Key, Vec<Placed>)>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, list) in gathered.into_iter().enumerate() {
            shares[i % threads].push(list);
        }
        let lists = std::thread::scope(|scope| {
            let handles: Vec<_> = shares
                .into_iter()
                .map(|share| {
                    scope.spawn(|| {
                        share
                            .into_iter()
                            .map(|(key, entries)| (key, CellList::new(entries)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("a cell sorter panicked"))
                .collect()
        });
        SpatialIndex { lists }
    }

    /// Every member of the lists of `specialties` and of `corps`, in no
    /// particular order (a talent in several lists is met once per list).
    pub(crate) fn members<'a>(
        &'a self,
        specialties: &'a [String],
        corps: &'a [Corps],
    ) -> impl Iterator<Item = &'a Member> + 'a {
        specialties
            .iter()
            .map(|s| Key::Specialty(s.clone()))
            .chain(corps.iter().map(|&c| Key::Corps(c)))
            .filter_map(|key| self.lists.get(&key))
            .flat_map(|list| list.members.iter())
    }

    /// The cells of the lists of `specialties` and of `corps`, nearest to
    /// `origin` first. A talent in several of those lists is met once per list.
    pub(crate) fn walk(
        &self,
        specialties: &[String],
        corps: &[Corps],
        origin: GeoPoint,
    ) -> Walk<'_> {
        let lists: Vec<&CellList> = specialties
            .iter()
            .map(|s| Key::Specialty(s.clone()))
            .chain(corps.iter().map(|&c| Key::Corps(c)))
            .filter_map(|key| self.lists.get(&key))
            .collect();
        let cos0 = origin.lat.to_radians().cos();
        // Cells closest first, by a lower bound of the haversine term.
        let heap: BinaryHeap<Visit> = lists
            .iter()
            .enumerate()
            .flat_map(|(l, list)| {
                list.cells.iter().enumerate().map(move |(c, cell)| Visit {
                    a: lower_hav(origin, cos0, cell),
                    list: l as u32,
                    cell: c as u32,
                })
            })
            .collect();
        Walk { lists, heap }
    }

    /// The available talents with any of `specialties` or a specialty in
    /// any of `corps` that can be among
    /// the `k` nearest to `origin` by (distance, closeness to `division`):
    /// the k best and every talent tied with the k-th on both, each once,
    /// in no particular order.
    pub(crate) fn nearest(
        &self,
        specialties: &[String],
        corps: &[Corps],
        origin: GeoPoint,
        division: Option<DivisionCode>,
        k: usize,
    ) -> Vec<Near> {
        let walk = self.walk(specialties, corps, origin);
        if k == 0 || walk.lists() == 0 {
            return Vec::new();
        }
        let several = walk.lists() > 1;
        let mut found: Vec<Near> = Vec::new();
        let mut bound = f64::INFINITY;
        for (lower_km, members) in walk {
            if bound.is_finite() && lower_km > bound {
                break;
            }
            for m in members {
                let distance_km = origin.distance_km(m.point);
                if distance_km > bound {
                    continue;
                }
                found.push(Near {
                    distance_km,
                    closeness: division.map_or(0, |d| d.closeness(m.division)),
                    ord: m.ord,
                });
            }
            if found.len() >= k {
                let (_, kth, _) = found
                    .select_nth_unstable_by(k - 1, |a, b| a.distance_km.total_cmp(&b.distance_km));
                bound = kth.distance_km;
                found.retain(|n| n.distance_km <= bound);
            }
        }
        if several {
            found.sort_unstable_by_key(|n| n.ord);
            found.dedup_by_key(|n| n.ord);
        }
        // Keep the k best by (distance, closeness) and their ties.
        let key = |a: &Near, b: &Near| {
            a.distance_km
                .total_cmp(&b.distance_km)
                .then(b.closeness.cmp(&a.closeness))
        };
        found.sort_unstable_by(key);
        if found.len() > k {
            let kth = found[k - 1];
            let keep = found.partition_point(|n| key(n, &kth) != Ordering::Greater);
            found.truncate(keep);
        }
        found
    }
}

/// The cells of some lists, nearest first: each with a lower bound of the
/// distance in km from the origin to any of its members (less
/// [`SLACK_KM`], so that rounding never makes it pass a member's distance).
pub(crate) struct Walk<'a> {
    lists: Vec<&'a CellList>,
    heap: BinaryHeap<Visit>,
}

impl Walk<'_> {
    /// How many of the asked lists exist.
    pub(crate) fn lists(&self) -> usize {
        self.lists.len()
    }
}

impl<'a> Iterator for Walk<'a> {
    type Item = (f64, &'a [Member]);

    fn next(&mut self) -> Option<Self::Item> {
        let visit = self.heap.pop()?;
        let list = self.lists[visit.list as usize];
        let cell = list.cells[visit.cell as usize];
        Some((
            hav_km(visit.a) - SLACK_KM,
            &list.members[cell.start as usize..cell.end as usize],
        ))
    }
}

/// A lower bound of the haversine term `a` between `origin` and any point
/// of `cell` (the distance is `2R·asin(√a)`, increasing in `a`).
fn lower_hav(origin: GeoPoint, cos0: f64, cell: &Cell) -> f64 {
    let gap = |x: f64, lo: f64, hi: f64| {
        if x < lo {
            lo - x
        } else if x > hi {
            x - hi
        } else {
            0.0
        }
    };
    let dlat = gap(origin.lat, cell.lat_lo, cell.lat_hi);
    let near = gap(origin.lon, cell.lon_lo, cell.lon_hi);
    let far = (cell.lon_lo - origin.lon)
        .abs()
        .max((cell.lon_hi - origin.lon).abs());
    let dlon = near.min(360.0 - far).max(0.0);
    let s1 = sin_below((dlat / 2.0).to_radians());
    let s2 = sin_below((dlon / 2.0).to_radians());
    s1 * s1 + cos0 * cell.min_cos.max(0.0) * s2 * s2
}

fn hav_km(a: f64) -> f64 {
    2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
}

/// A cell to visit, smallest lower bound first.
#[derive(Debug, Clone, Copy)]
struct Visit {
    a: f64,
    list: u32,
    cell: u32,
}

impl PartialEq for Visit {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Visit {}
impl PartialOrd for Visit {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Visit {
    fn cmp(&self, other: &Self) -> Ordering {
        other.a.total_cmp(&self.a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn talent(id: &str, lat: f64, lon: f64, specialty: &str) -> Option<Arc<Talent>> {
        Some(Arc::new(Talent {
            id: id.into(),
            name: id.into(),
            phone: String::new(),
            tier: crate::model::Tier::Village,
            corps: None,
            specialties: vec![specialty.into()],
            skills: String::new(),
            division_code: DivisionCode::parse("610527106202").unwrap(),
            given_point: None,
            point: GeoPoint { lat, lon },
            capacity: 1,
            active: true,
        }))
    }

    #[test]
    fn finds_the_same_nearest_as_a_scan_with_ties() {
        let mut table = Vec::new();
        let mut n = 0u32;
        for i in 0..40 {
            for j in 0..40 {
                n = n.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let lat = 34.2 + 0.043 * i as f64 + f64::from(n % 7) * 0.001;
                let lon = 108.9 + 0.047 * j as f64;
                let s = if (i + j) % 3 == 0 { "梨" } else { "苹果" };
                table.push(talent(&format!("t{i}-{j}"), lat, lon, s));
                // Talents sharing a point tie on distance.
                table.push(talent(&format!("u{i}-{j}"), lat, lon, "苹果"));
            }
        }
        table.push(None);
        let index = SpatialIndex::build(&table, Lexicon::embedded(), &[]);
        let specialties = vec!["苹果".to_string()];
        for (lat, lon) in [(34.5, 109.5), (35.9, 110.8), (30.0, 100.0), (34.2, 108.9)] {
            let origin = GeoPoint { lat, lon };
            for k in [1, 5, 37] {
                let mut got: Vec<f64> = index
                    .nearest(&specialties, &[], origin, None, k)
                    .iter()
                    .map(|n| n.distance_km)
                    .collect();
                got.sort_by(f64::total_cmp);
                let mut all: Vec<f64> = table
                    .iter()
                    .flatten()
                    .filter(|t| t.specialties[0] == "苹果")
                    .map(|t| origin.distance_km(t.point))
                    .collect();
                all.sort_by(f64::total_cmp);
                let kth = all[k - 1];
                let want: Vec<f64> = all.into_iter().filter(|d| *d <= kth).collect();
                assert_eq!(got, want, "at {lat},{lon} k={k}");
            }
        }
    }
}
