//! In-process benchmark of the knowledge search: 100,000 entries generated
//! from templates (`XWN_BENCH_SIZE` to change it) loaded into the index,
//! then the development queries (`tests/data/knowledge/dev-queries.jsonl`)
//! searched as `SearchKnowledge` searches them (the query's subject read by
//! the analyser, then the index) and as `MatchProblem` does (the subject
//! already read): p50/p99 per search.
//!
//! Run: `cargo bench --bench knowledge` (or `--profile dev` on a loaded
//! machine; tantivy and jieba are optimised even there).

use std::time::Instant;

use xingweinong::{
    cli::loadgen::quantile,
    knowledge::{eval, Entry, KnowledgeIndex, Publisher, Query},
    reading::lexicon::Lexicon,
};

const SUBJECTS: [(&str, &str); 16] = [
    ("苹果", "果树"),
    ("猕猴桃", "果树"),
    ("葡萄", "果树"),
    ("桃", "果树"),
    ("樱桃", "果树"),
    ("小麦", "粮油"),
    ("玉米", "粮油"),
    ("番茄", "蔬菜"),
    ("黄瓜", "蔬菜"),
    ("辣椒", "蔬菜"),
    ("大蒜", "蔬菜"),
    ("花椒", "林水"),
    ("核桃", "林水"),
    ("奶山羊", "畜牧"),
    ("猪", "畜牧"),
    ("鸡", "畜牧"),
];
const PARTS: [&str; 10] = [
    "叶子",
    "叶片背面",
    "果实",
    "树干",
    "新梢",
    "根部",
    "茎基部",
    "穗子",
    "耳朵",
    "粪便",
];
const SIGNS: [&str; 14] = [
    "发黄",
    "有褐色圆斑",
    "卷曲起泡",
    "腐烂发软",
    "流胶",
    "枯萎",
    "长白色霉层",
    "有黑色小点",
    "开裂",
    "被虫咬出孔",
    "发紫",
    "带血",
    "有酒糟味",
    "干枯",
];
const WHEN: [&str; 8] = [
    "最近几天",
    "下雨以后",
    "大棚里",
    "今年春天",
    "浇水后",
    "开花前后",
    "产后",
    "刚移栽",
];
const COUNTIES: [&str; 6] = [
    "610527000000",
    "610528000000",
    "610502000000",
    "610581000000",
    "610526000000",
    "610522000000",
];

/// A small deterministic generator (no crate needed for a bench).
struct Lcg(u64);

impl Lcg {
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        &items[((self.0 >> 33) % items.len() as u64) as usize]
    }
}

fn entries(n: usize) -> Vec<Entry> {
    let mut rng = Lcg(18);
    (0..n)
        .map(|i| {
            let (subject, corps) = *rng.pick(&SUBJECTS);
            let text = format!(
                "{}{}{}{}，还有{}{}，怎么办",
                rng.pick(&WHEN),
                subject,
                rng.pick(&PARTS),
                rng.pick(&SIGNS),
                rng.pick(&PARTS),
                rng.pick(&SIGNS)
            );
            Entry {
                id: format!("g{i}"),
                text,
                subject: subject.into(),
                corps: eval::corps(corps),
                county_code: (*rng.pick(&COUNTIES)).into(),
                county_name: String::new(),
                answer: "按农技人员的方案处理。".into(),
                tier: None,
                resolved_at_ms: 0,
                rating: None,
                published_by: Publisher::Admin,
            }
        })
        .collect()
}

fn percentiles(label: &str, mut ns: Vec<u64>) {
    ns.sort_unstable();
    println!(
        "{label:<34} n={:<6} p50 {:>8.1} µs  p99 {:>8.1} µs  max {:>8.1} µs",
        ns.len(),
        quantile(&ns, 0.5) as f64 / 1000.0,
        quantile(&ns, 0.99) as f64 / 1000.0,
        *ns.last().unwrap_or(&0) as f64 / 1000.0
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let size: usize = std::env::var("XWN_BENCH_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let rounds: usize = std::env::var("XWN_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let lexicon = Lexicon::embedded();
    let index = KnowledgeIndex::new(lexicon).unwrap();
    let started = Instant::now();
    index.apply(entries(size), &[]).unwrap();
    println!(
        "{size} entries indexed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let queries =
        eval::parse_queries(include_str!("../tests/data/knowledge/dev-queries.jsonl")).unwrap();
    let (mut find, mut similar, mut shown) = (Vec::new(), Vec::new(), 0usize);
    for _ in 0..rounds {
        for q in &queries {
            let query = Query {
                text: &q.text,
                limit: 3,
                ..Query::default()
            };
            let t = Instant::now();
            let hits = index.find(&query).unwrap();
            find.push(t.elapsed().as_nanos() as u64);
            shown += hits.len();
            let hinted = Query {
                hint_subject: Some("苹果"),
                ..query
            };
            let t = Instant::now();
            let _ = index.find(&hinted).unwrap();
            similar.push(t.elapsed().as_nanos() as u64);
        }
    }
    percentiles("SearchKnowledge (reads subject)", find);
    percentiles("MatchProblem similar (subject given)", similar);
    println!("hits shown: {shown}");
}
