//! Reads a farmer's report: which subject (crop, animal or topic) and corps it
//! is about, how sure that is, the runner-up, and the evidence, weighed the
//! way an extension agent would read it.
//!
//! Every word jieba finds is looked up in the lexicon. A term names or hints
//! at subjects with a weight; a subject named just beside a neighbour cue
//! (边上, 隔壁) is read as a place, not the patient, and counts for little; a
//! subject in the same clause as a problem cue (发黄, 咋办) counts for more,
//! and so does one after a contrast cue (但是); hints add up; a specific
//! subject (奶山羊) takes its parent's (羊) evidence. A report whose words are
//! mostly about subsidies, prices or greetings and name no technical problem
//! is not agricultural.

mod asking;
mod scan;
mod score;
mod verdict;
mod weigh;

use crate::{
    model::Corps,
    reading::lexicon::{Lexicon, SubjectId},
};

use scan::Scan;
use score::Setting;
use verdict::Findings;

/// How a piece of evidence was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Counts for the subject the report is about.
    Main,
    /// Mentioned as a place or a neighbour: counts for little.
    Neighbour,
    /// Names a place of the subject (苹果园): counts a little less.
    Place,
    /// Said to be fine (X没事): not the patient.
    Unaffected,
    /// A word that marks a technical problem.
    Problem,
    /// A word that marks a non-agricultural request.
    NonAgri,
    /// A word that points to a corps, not a subject.
    CorpsHint,
}

impl Role {
    pub fn key(self) -> &'static str {
        match self {
            Role::Main => "main",
            Role::Neighbour => "neighbour",
            Role::Place => "place",
            Role::Unaffected => "unaffected",
            Role::Problem => "problem",
            Role::NonAgri => "non_agricultural",
            Role::CorpsHint => "corps_hint",
        }
    }
}

/// One term of the report and what it contributed.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    pub term: String,
    pub subject: Option<SubjectId>,
    pub(crate) corps: Option<Corps>,
    pub kind: &'static str,
    pub role: Role,
    pub weight: f32,
}

/// The reading of a report.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// False for reports that are not agricultural technical problems, and
    /// for reports where nothing points to a subject or corps.
    pub agricultural: bool,
    pub subject: Option<SubjectId>,
    /// The subject's corps, or the corps alone when only it is clear.
    pub corps: Option<Corps>,
    /// 0..=1.
    pub confidence: f32,
    pub runner_up: Option<SubjectId>,
    pub evidence: Vec<Evidence>,
    /// Content words of the report, for text scoring.
    pub(crate) words: Vec<String>,
    /// Why nothing can be routed, in Chinese; empty when something can.
    pub(crate) note: String,
    /// For a plant or animal problem that names no crop, animal or generic
    /// word: what the farmer should add, with a short prompt a front end
    /// can show ([`Missing::prompt`]). Such a report is agricultural, routed
    /// to no subject or corps, and its ticket goes to triage (README
    /// "Tickets") instead of being unroutable.
    pub missing: Option<Missing>,
    /// For such a report, the corps its symptom words point to (拉稀,
    /// 不吃不喝 → 畜牧): not a routing, only a hint triage uses to choose
    /// whose backbone staff see it first.
    pub hint: Option<Corps>,
    /// For such a report, the subject its symptoms add up to (拉稀 and
    /// 不吃食 → 猪), when they do: a guess shown to triage, never a
    /// routing, since nothing names it.
    pub guess: Option<SubjectId>,
}

/// What a report that names nothing lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Nothing says whether it is a plant or an animal.
    CropOrAnimal,
    /// The symptoms are a plant's.
    Crop,
    /// The symptoms are an animal's.
    Animal,
}

impl Missing {
    /// What is missing when the symptoms point to `hint`: an animal for
    /// 畜牧, a crop for the plant corps, else either.
    pub fn for_hint(hint: Option<Corps>) -> Missing {
        match hint {
            Some(Corps::Livestock) => Missing::Animal,
            Some(Corps::GrainOil | Corps::Vegetable | Corps::Fruit) => Missing::Crop,
            Some(Corps::ForestryWater) | None => Missing::CropOrAnimal,
        }
    }

    /// The wire name (`Missing.what`).
    pub fn key(self) -> &'static str {
        match self {
            Missing::CropOrAnimal => "crop_or_animal",
            Missing::Crop => "crop",
            Missing::Animal => "animal",
        }
    }

    /// The prompt a farmer's front end shows.
    pub fn prompt(self) -> &'static str {
        match self {
            Missing::CropOrAnimal => "请说明是什么作物或牲畜",
            Missing::Crop => "请说明是什么作物",
            Missing::Animal => "请说明是什么牲畜或家禽",
        }
    }
}

impl Analysis {
    /// Terms that counted for the chosen subject.
    #[cfg(test)]
    pub(crate) fn subject_terms(&self) -> Vec<&str> {
        self.evidence
            .iter()
            .filter(|e| e.subject.is_some() && e.subject == self.subject)
            .map(|e| e.term.as_str())
            .collect()
    }
}

/// Analyses one report with no idea where it comes from.
pub fn analyze(lexicon: &Lexicon, text: &str) -> Analysis {
    analyze_in(lexicon, text, None)
}

/// Analyses one report from a county (白水县 …): what the county grows is a
/// weak prior, as it is for a local extension agent. A county named in the
/// text wins over the one given.
///
/// The reading goes in four phases: a scan of the words for mentions, cues
/// and markers; the weighing of each mention; the scoring and ranking of
/// the subjects; and the verdict.
pub fn analyze_in(lexicon: &Lexicon, text: &str, county: Option<&str>) -> Analysis {
    let Scan {
        words,
        mentions,
        cues,
        nonagri,
        corps_hints,
        mut evidence,
    } = Scan::read(lexicon, text);
    let weighed = weigh::weigh_mentions(lexicon, &mentions, &cues, &corps_hints, &mut evidence);
    // Generic words (菜, 牲口, 果园) say what it is as much as a name does.
    let identified = weighed.identified || !corps_hints.is_empty();
    let setting = Setting {
        text,
        county,
        corps_hints: &corps_hints,
        identified,
    };
    let ranked = score::rank_subjects(lexicon, &weighed, &setting);
    let crops = score::rank_crops(&weighed);
    let technical = cues.problem_total + weighed.technical;
    verdict::conclude(
        lexicon,
        Findings {
            ranked,
            crops,
            corps_hints,
            nonagri,
            technical,
            identified,
            problem_total: cues.problem_total,
            evidence,
            words,
            text,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Analysis {
        analyze(Lexicon::embedded(), text)
    }

    fn subject(text: &str) -> Option<String> {
        read(text)
            .subject
            .map(|s| Lexicon::embedded().subject(s).name.clone())
    }

    #[test]
    fn a_problem_that_names_nothing_asks_for_what_is_missing() {
        for text in ["这是什么病？叶子发黄是咋回事", "看看这是啥病 咋治"] {
            let a = read(text);
            assert!(a.subject.is_none() && a.corps.is_none(), "{text}");
            assert!(a.agricultural, "{text}: a problem is asked about");
            assert_eq!(a.missing, Some(Missing::CropOrAnimal), "{text}");
        }
        for text in ["种粮补贴啥时候发", "苹果树叶子发黄有斑点", "你好"] {
            assert_eq!(read(text).missing, None, "{text}");
        }
    }

    #[test]
    fn a_part_with_a_symptom_or_a_photo_with_a_question_asks_for_what_is_missing() {
        // No problem cue in these: the signs of [`asking`] make them
        // problems asked about.
        for text in [
            "浇完水第二天就黄了",
            "看下这是缺啥肥",
            "新长出来的叶子是花的 黄绿相间",
        ] {
            let a = read(text);
            assert!(a.subject.is_none() && a.corps.is_none(), "{text}: {a:?}");
            assert_eq!(a.missing, Some(Missing::CropOrAnimal), "{text}: {a:?}");
        }
        // A request about the platform is still not agricultural.
        let a = read("这个app咋上传照片");
        assert!(!a.agricultural && a.missing.is_none(), "{a:?}");
    }

    #[test]
    fn symptoms_that_name_nothing_ask_what_it_is_and_keep_the_corps_as_a_hint() {
        // Symptoms alone point to a corps but name no crop, animal or
        // generic word: the farmer is asked, routing waits for the answer.
        for (text, missing, hint) in [
            (
                "拉稀拉得厉害 屁股都糊了 喂啥药",
                Missing::Animal,
                Corps::Livestock,
            ),
            ("这是红蜘蛛还是蓟马 给看一下", Missing::Crop, Corps::Fruit),
            (
                "这是缺素还是病毒病 图片上传了",
                Missing::Crop,
                Corps::Vegetable,
            ),
        ] {
            let a = read(text);
            assert_eq!((a.subject, a.corps), (None, None), "{text}: {a:?}");
            assert!(a.agricultural, "{text}");
            assert_eq!((a.missing, a.hint), (Some(missing), Some(hint)), "{text}");
            assert!(!a.note.is_empty(), "{text}");
        }
        // Named, the same symptoms route: a subject, a word only one subject
        // has, or a generic word.
        let lex = Lexicon::embedded();
        for (text, subject) in [("猪拉稀 不吃不喝", "猪"), ("怀疑是蓝耳病 咳嗽喘", "猪")]
        {
            let a = read(text);
            assert_eq!(a.subject, lex.subject_id(subject), "{text}: {a:?}");
            assert_eq!((a.missing, a.hint), (None, None), "{text}");
        }
        let a = read("牲口拉稀 不吃不喝 咋治");
        assert_eq!(a.corps, Some(Corps::Livestock), "{a:?}");
        assert_eq!((a.missing, a.hint), (None, None));
    }

    #[test]
    fn what_is_missing_follows_the_hint() {
        assert_eq!(Missing::for_hint(Some(Corps::Livestock)), Missing::Animal);
        for corps in [Corps::GrainOil, Corps::Vegetable, Corps::Fruit] {
            assert_eq!(Missing::for_hint(Some(corps)), Missing::Crop);
        }
        for hint in [Some(Corps::ForestryWater), None] {
            assert_eq!(Missing::for_hint(hint), Missing::CropOrAnimal);
        }
        assert_eq!(
            (Missing::Animal.key(), Missing::Animal.prompt()),
            ("animal", "请说明是什么牲畜或家禽")
        );
        assert_eq!(Missing::CropOrAnimal.prompt(), "请说明是什么作物或牲畜");
    }

    #[test]
    fn a_county_does_not_name_what_symptoms_leave_open() {
        // 合阳 grows wheat: its prior once made this 小麦 (what the county
        // grows settles which crop, once something says it is one).
        let a = analyze_in(
            Lexicon::embedded(),
            "打了除草剂以后叶子都皱了 得是药害",
            Some("合阳县"),
        );
        assert_eq!((a.subject, a.corps), (None, None), "{a:?}");
        assert!(a.missing.is_some(), "{a:?}");
    }

    #[test]
    fn a_word_ending_in_a_generic_word_is_that_generic_word() {
        let a = read("冬菜叶子上有蚜虫");
        assert_eq!(
            (a.subject, a.corps),
            (None, Some(Corps::Vegetable)),
            "{a:?}"
        );
        assert!(a.missing.is_none());
        // With only a generic word named, a pest other corps' hosts share
        // does not pull the report there (地老虎 points to 玉米 first).
        let a = read("冬菜上地老虎多 咋治");
        assert_eq!(
            (a.subject, a.corps),
            (None, Some(Corps::Vegetable)),
            "{a:?}"
        );
    }

    #[test]
    fn a_tree_alone_is_forestrys() {
        let a = read("门前栽的树树干上有虫眼 往外流水");
        assert_eq!(a.corps, Some(Corps::ForestryWater), "{a:?}");
    }

    #[test]
    fn beside_a_part_is_the_parts_edge_not_a_neighbour() {
        let lex = Lexicon::embedded();
        for (text, subject) in [
            ("黄瓜叶子边上发黄 咋回事", "黄瓜"),
            ("草莓叶片边上发红干了 咋弄", "草莓"),
        ] {
            assert_eq!(read(text).subject, lex.subject_id(subject), "{text}");
        }
        // Beside the crop itself is still a neighbour.
        assert_eq!(subject("苹果园边上那块玉米全是虫").as_deref(), Some("玉米"));
    }

    #[test]
    fn selling_prices_and_procedures_are_not_technical_problems() {
        for text in [
            "想在网上卖猕猴桃 咋开网店",
            "猪价啥时候能涨",
            "麦子卖给粮站要啥手续",
            "养殖场环评要办啥证",
        ] {
            let a = read(text);
            assert!(
                !a.agricultural && a.subject.is_none() && a.corps.is_none(),
                "{text}: {a:?}"
            );
        }
    }

    #[test]
    fn other_trees_are_not_poplars() {
        let lex = Lexicon::embedded();
        for text in ["柳树叶子发黄咋办", "泡桐上有天牛咋治", "榆树叶子让虫吃光了"]
        {
            let a = read(text);
            assert_eq!(
                (a.subject, a.corps),
                (None, Some(Corps::ForestryWater)),
                "{text}: {a:?}"
            );
        }
        let a = read("香椿芽发黑咋回事");
        assert_eq!(
            (a.subject, a.corps),
            (None, Some(Corps::Vegetable)),
            "{a:?}"
        );
        let a = read("香椿叶子发黄咋办");
        assert_eq!(
            (a.subject, a.corps),
            (None, Some(Corps::Vegetable)),
            "{a:?}"
        );
        assert_eq!(read("杨树溃疡病咋治").subject, lex.subject_id("杨树"));
    }

    #[test]
    fn plain_subject_names_decide() {
        assert_eq!(subject("苹果树叶子发黄有斑点").as_deref(), Some("苹果"));
        assert_eq!(subject("猪不吃食还发烧").as_deref(), Some("猪"));
    }

    #[test]
    fn varieties_name_their_crop() {
        assert_eq!(
            subject("红富士套袋以后果面上有黑点").as_deref(),
            Some("苹果")
        );
        assert_eq!(subject("徐香今年个头小").as_deref(), Some("猕猴桃"));
    }

    #[test]
    fn dialect_and_aliases_resolve() {
        assert_eq!(subject("洋芋种下去不出苗").as_deref(), Some("马铃薯"));
        assert_eq!(subject("苞谷叶子卷了").as_deref(), Some("玉米"));
        assert_eq!(subject("猪娃拉稀不止").as_deref(), Some("猪"));
    }

    #[test]
    fn a_host_specific_disease_decides_the_subject() {
        assert_eq!(subject("怀疑是蓝耳病 咳嗽喘").as_deref(), Some("猪"));
        assert_eq!(subject("新城疫疫苗多长时间打一次").as_deref(), Some("鸡"));
    }

    #[test]
    fn a_neighbour_or_place_loses_to_the_patient() {
        assert_eq!(subject("苹果园边上那块玉米全是虫").as_deref(), Some("玉米"));
        assert_eq!(
            subject("隔壁的苹果园打药 把我的葡萄熏了").as_deref(),
            Some("葡萄")
        );
        let a = read("玉米地里种的绿豆 绿豆叶子上有蚜虫 玉米没事");
        assert_eq!(a.subject, Lexicon::embedded().subject_id("绿豆"));
        assert_eq!(a.runner_up, Lexicon::embedded().subject_id("玉米"));
    }

    #[test]
    fn child_subject_beats_its_parent_and_shared_terms_do_not_favour_it() {
        let lex = Lexicon::embedded();
        assert_eq!(
            read("奶山羊这几天羊不爱吃草").subject,
            lex.subject_id("奶山羊")
        );
        assert_eq!(read("奶羊配种啥时候好").subject, lex.subject_id("奶山羊"));
    }

    #[test]
    fn a_county_prior_settles_a_report_that_names_no_crop() {
        let lex = Lexicon::embedded();
        let at = |county| analyze_in(lex, "果园里的树今年长得不好 咋办", Some(county)).subject;
        assert_eq!(at("白水县"), lex.subject_id("苹果"));
        assert_eq!(at("韩城市"), lex.subject_id("花椒"));
        assert_eq!(at("大荔县"), lex.subject_id("冬枣"));
        // Without a county the same report names no crop, only the corps.
        let a = analyze(lex, "果园里的树今年长得不好 咋办");
        assert_eq!((a.subject, a.corps), (None, Some(Corps::Fruit)));
    }

    #[test]
    fn non_agricultural_reports_are_not_routed() {
        for text in [
            "你好在吗",
            "玉米现在啥价钱 收购点在哪",
            "大棚补贴咋申请 找谁办",
            "贷款利息多少",
        ] {
            let a = read(text);
            assert!(a.subject.is_none() && a.corps.is_none(), "{text}: {a:?}");
            assert!(!a.note.is_empty(), "{text}");
        }
        // A price question with a real problem in it is still agricultural.
        assert_eq!(
            subject("玉米价钱低 叶子上还全是锈病").as_deref(),
            Some("玉米")
        );
    }

    #[test]
    fn a_crop_no_subject_covers_decides_its_corps() {
        for (text, corps) in [
            ("生菜叶子发黄", Corps::Vegetable),
            ("丹参根腐病咋防治", Corps::Vegetable),
            ("上海青长了好多蚜虫", Corps::Vegetable),
            ("鹌鹑不下蛋了", Corps::Livestock),
            ("银杏叶子发黄咋办", Corps::ForestryWater),
            ("蓝莓叶片发红咋回事", Corps::Fruit),
        ] {
            let a = read(text);
            assert_eq!((a.subject, a.corps), (None, Some(corps)), "{text}: {a:?}");
            assert!(a.agricultural && a.note.is_empty(), "{text}");
            assert!(a
                .evidence
                .iter()
                .any(|e| e.kind == "crop" && e.role == Role::Main));
        }
        // A price question about such a crop is still no technical problem.
        let a = read("生菜多少钱一斤 哪里收");
        assert!(!a.agricultural && a.corps.is_none(), "{a:?}");
    }

    #[test]
    fn open_vocabulary_names_map_to_their_subject() {
        assert_eq!(subject("娃娃菜烂根").as_deref(), Some("白菜"));
        assert_eq!(subject("圣女果裂果严重").as_deref(), Some("番茄"));
        assert_eq!(subject("湖羊拉稀").as_deref(), Some("羊"));
        assert_eq!(subject("杏鲍菇出菇不齐").as_deref(), Some("食用菌"));
        assert_eq!(subject("鲢鱼浮头").as_deref(), Some("水产"));
    }

    #[test]
    fn a_subject_named_as_the_patient_beats_a_crop_beside_it() {
        let lex = Lexicon::embedded();
        let a = read("生菜边上的黄瓜叶子发黄");
        assert_eq!(a.subject, lex.subject_id("黄瓜"), "{a:?}");
        let a = read("黄瓜旁边的生菜叶子发黄");
        assert_eq!(
            (a.subject, a.corps),
            (None, Some(Corps::Vegetable)),
            "{a:?}"
        );
        assert_eq!(a.runner_up, lex.subject_id("黄瓜"));
    }

    #[test]
    fn a_named_host_beats_words_other_hosts_share() {
        let lex = Lexicon::embedded();
        // 白蜘蛛, 山楂叶螨, 二斑叶螨, 小叶病 and 不上色 each point to 苹果
        // first; together they outweighed the host named, 桃 or 枸杞 (a
        // crop only its corps takes), before the rule.
        let a = read("桃树上有白蜘蛛 山楂叶螨 二斑叶螨 还有小叶病 不上色");
        assert_eq!(a.subject, lex.subject_id("桃"), "{a:?}");
        let a = read("枸杞上有白蜘蛛 山楂叶螨 二斑叶螨 还有小叶病");
        assert_eq!((a.subject, a.corps), (None, Some(Corps::Fruit)), "{a:?}");
        for (text, host) in [
            ("芹菜得了菌核病 茎基部烂了", "芹菜"),
            ("茄子上红蜘蛛多得很 叶子发白", "茄子"),
        ] {
            assert_eq!(read(text).subject, lex.subject_id(host), "{text}");
        }
        for text in ["生菜菌核病咋防治", "油麦菜得了菌核病", "苋菜白锈病用啥药"]
        {
            let a = read(text);
            assert_eq!(
                (a.subject, a.corps),
                (None, Some(Corps::Vegetable)),
                "{text}: {a:?}"
            );
        }
        // With no host named, the shared words still point where they can.
        let a = read("白蜘蛛 山楂叶螨 二斑叶螨 还有小叶病");
        assert_eq!(a.subject, lex.subject_id("苹果"), "{a:?}");
    }

    #[test]
    fn a_crop_named_as_the_place_is_the_one_concerned() {
        let lex = Lexicon::embedded();
        assert_eq!(
            read("白菜地里好多虫子 咋办").subject,
            lex.subject_id("白菜")
        );
        assert_eq!(read("茄子棚里湿度大 咋办").subject, lex.subject_id("茄子"));
        let a = read("生菜地里全是蚜虫");
        assert_eq!(
            (a.subject, a.corps),
            (None, Some(Corps::Vegetable)),
            "{a:?}"
        );
        // Unless another crop is named as the one affected.
        let a = read("玉米地里种的绿豆 绿豆叶子上有蚜虫");
        assert_eq!(a.subject, lex.subject_id("绿豆"));
    }

    #[test]
    fn generic_words_decide_the_corps_when_nothing_more_is_named() {
        for (text, corps) in [
            ("庄稼叶子发黄咋办", Corps::GrainOil),
            ("菜叶子上有虫眼 咋办", Corps::Vegetable),
            ("牲口不吃草 咋办", Corps::Livestock),
        ] {
            let a = read(text);
            assert_eq!((a.subject, a.corps), (None, Some(corps)), "{text}: {a:?}");
        }
        // A generic word alone, with no problem asked about, decides nothing.
        assert_eq!(read("菜").corps, None);
    }

    #[test]
    fn evidence_names_the_terms_and_their_roles() {
        let a = read("苹果园边上那块玉米全是虫");
        let lex = Lexicon::embedded();
        let apple = a
            .evidence
            .iter()
            .find(|e| e.subject == lex.subject_id("苹果"))
            .unwrap();
        assert_ne!(apple.role, Role::Main);
        assert!(a.subject_terms().contains(&"玉米"));
    }

    #[test]
    fn symptoms_many_animals_share_name_nothing_and_their_subject_is_a_guess() {
        // 拉稀, 不吃食, 发烧 and 咳嗽 point to 猪 first (it is the most
        // common), so they once named it; nothing names it.
        let lex = Lexicon::embedded();
        for text in [
            "拉稀不吃食 打啥针",
            "这几天不吃食 发烧 咳嗽 打了青霉素不管用",
        ] {
            let a = read(text);
            assert_eq!((a.subject, a.corps), (None, None), "{text}: {a:?}");
            assert_eq!(a.missing, Some(Missing::Animal), "{text}");
            assert_eq!(a.hint, Some(Corps::Livestock), "{text}");
            assert_eq!(a.guess, lex.subject_id("猪"), "{text}");
        }
    }

    #[test]
    fn a_word_that_points_to_one_subject_far_more_than_others_names_it() {
        // 缩叶病 is 桃's (0.9, 杏 0.1), 角果 油菜's, 塘底 水产's: an expert
        // reads the subject from them, and so does the analyser.
        let lex = Lexicon::embedded();
        for (text, subject) in [
            ("缩叶病 春上叶子皱成一团 红红的", "桃"),
            ("茎秆上发白 里头有黑粒粒 角果也瘪", "油菜"),
            ("塘底发黑发臭 底泥多厚就该清了", "水产"),
        ] {
            let a = read(text);
            assert_eq!(a.subject, lex.subject_id(subject), "{text}: {a:?}");
            assert_eq!(a.missing, None, "{text}");
        }
        // 补铁 is for piglets and for yellow leaves alike: no name.
        let a = read("新叶子黄白黄白的 可筋还是绿的 要补铁不");
        assert_eq!((a.subject, a.corps), (None, None), "{a:?}");
        assert!(a.missing.is_some(), "{a:?}");
    }

    #[test]
    fn a_part_only_one_plant_corps_has_names_that_kind_of_crop() {
        let a = read("瓜秧子蔓上流胶 叶子也黄了 打啥药");
        assert_eq!(a.corps, Some(Corps::Vegetable), "{a:?}");
        assert_eq!(a.missing, None);
        // An animal's body part is any animal's: the farmer is asked.
        for text in ["蹄子裂了 走路一瘸一拐 咋弄", "下的崽后腿软 抢不上奶头"]
        {
            let a = read(text);
            assert_eq!(a.missing, Some(Missing::Animal), "{text}: {a:?}");
        }
    }

    #[test]
    fn a_generic_word_with_any_question_decides_the_corps() {
        // How-to questions name no symptom: 多少, 咋保活, 种啥.
        for (text, corps) in [
            ("种子发芽率只有七成 播量要加多少", Corps::GrainOil),
            ("山坡上栽的树旱得不行 咋保活", Corps::ForestryWater),
            ("立秋以后种啥菜合适 想再种一茬", Corps::Vegetable),
            ("圈里刚下的小崽子怕冷 咋保温", Corps::Livestock),
            ("园子里的菜叶子上有洞洞", Corps::Vegetable),
            // The shed and the pen say what it is, as 大棚 and 圈舍 do.
            ("大棚里的秧子都死了", Corps::Vegetable),
            ("圈里的都不爱吃 咋办", Corps::Livestock),
        ] {
            let a = read(text);
            assert_eq!((a.subject, a.corps), (None, Some(corps)), "{text}: {a:?}");
        }
    }

    #[test]
    fn a_variety_name_starting_with_a_verb_yields_to_the_symptom_after_it() {
        // 长白 (a pig breed) inside 长白粉 and 长白色 is 长 + 白粉.
        for text in [
            "南瓜叶子上长白粉 瓜也不长了",
            "果树根上长白色菌丝 树越来越弱",
        ] {
            let a = read(text);
            assert!(a.evidence.iter().all(|e| e.term != "长白"), "{text}: {a:?}");
            assert_ne!(a.corps, Some(Corps::Livestock), "{text}: {a:?}");
        }
        assert_eq!(subject("长白母猪不发情").as_deref(), Some("猪"));
        assert_eq!(subject("长白猪拉稀").as_deref(), Some("猪"));
        assert_eq!(
            subject("徐香果子还没到时候就软了").as_deref(),
            Some("猕猴桃")
        );
    }

    #[test]
    fn one_character_animals_are_read_alone_not_inside_words() {
        for text in ["马不吃草 咋回事", "养的马拉稀", "蚕不吃桑叶 身上发黑"] {
            let a = read(text);
            assert_eq!(a.corps, Some(Corps::Livestock), "{text}: {a:?}");
        }
        // 马上 is "at once".
        let a = read("条锈病出来了 叶子上一条一条黄粉 得是要马上打药");
        assert_eq!(a.subject, Lexicon::embedded().subject_id("小麦"), "{a:?}");
    }

    #[test]
    fn a_field_word_made_of_a_name_is_a_place() {
        // 苞谷地 is 玉米's field: the bean named in it is the patient.
        let a = read("苞谷地里套的绿豆 叶子上有蚜虫 咋治");
        assert_eq!(a.subject, Lexicon::embedded().subject_id("绿豆"), "{a:?}");
    }

    #[test]
    fn a_persons_health_money_or_outing_is_not_agricultural() {
        for text in [
            "叫狗咬了一口 狂犬疫苗要打几针",
            "老人血糖高 能不能吃蜂蜜 吃多少合适",
            "让蜜蜂蜇了 脸肿得眼睛都睁不开 咋办",
            "卖羊的时候收了张假钱 能不能报警",
            "草莓采摘园门票多少 能带娃去不",
        ] {
            let a = read(text);
            assert!(!a.agricultural && a.corps.is_none(), "{text}: {a:?}");
        }
    }

    #[test]
    fn a_symptom_right_after_a_person_is_the_persons() {
        for text in ["我发烧三天了 吃啥药", "娃拉肚子了咋办", "孩子咳嗽 吃啥药好"]
        {
            let a = read(text);
            assert!(
                !a.agricultural && a.missing.is_none() && a.corps.is_none(),
                "{text}: {a:?}"
            );
        }
        assert_eq!(subject("我家的猪发烧不吃食").as_deref(), Some("猪"));
    }

    #[test]
    fn a_pest_named_after_a_wasp_is_its_hosts() {
        let a = read("板栗芽子上长了小瘤子 是栗瘿蜂不");
        assert_eq!((a.subject, a.corps), (None, Some(Corps::Fruit)), "{a:?}");
    }
}
