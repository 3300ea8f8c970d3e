//! Whether a report that names no crop, animal or topic still asks about a
//! plant or animal problem (a photo's "看下这是缺啥肥", "浇完水第二天就黄
//! 了"): the general signs a farmer gives when the crop is in the picture or
//! taken for granted.
//!
//! A report asks about a problem when it names a part of a plant or animal
//! (叶子, 根, 苗, 身上) with a symptom (黄, 斑, 蔫, 虫) or a question (咋,
//! 啥, a closing 不); when it points at a photo (图, 这是, 看看) or names a
//! pesticide, fertiliser or medicine (药, 除草剂, 肥, 针) or a pest (虫,
//! 蛾, 螨) and asks a question (咋, 多少, 是A还是B); or when it says what was done (浇, 栽, 打了, 上了) and a
//! symptom followed. It is read on the whole text, so jieba's cuts do not
//! matter, and only once nothing was named, so it never changes a routing.

/// Parts of a plant or an animal's body.
const PARTS: [&str; 20] = [
    "叶", "根", "茎", "枝", "芽", "苗", "秧", "蔓", "秆", "果实", "果面", "果皮", "花", "树干",
    "树皮", "身上", "皮上", "蹄", "粪", "毛",
];
/// What farmers see go wrong (colours, spots, rot, wilting, pests).
const SYMPTOMS: [&str; 35] = [
    "黄",
    "白",
    "黑",
    "褐",
    "红",
    "紫",
    "斑",
    "焦",
    "枯",
    "干",
    "烂",
    "蔫",
    "卷",
    "皱",
    "扭曲",
    "裂",
    "虫",
    "霉",
    "网",
    "疙瘩",
    "壳",
    "细",
    "倒",
    "死",
    "烧",
    "臭",
    "痂",
    "肿",
    "掉",
    "不长",
    "不见效",
    "不管用",
    "洞",
    "眼眼",
    "窟窿",
];
/// Question words and the closing particles of a yes-no question.
const QUESTIONS: [&str; 14] = [
    "咋",
    "啥",
    "什么",
    "怎么",
    "吗",
    "是不是",
    "能不能",
    "要不要",
    "有没有",
    "缺",
    "多少",
    "哪",
    "管用",
    "还是",
];
/// Pests and small creatures a farmer finds (甲虫, 蛾子, 螨).
const CREATURES: [&str; 5] = ["虫", "蛾", "螨", "蚜", "蝇"];
const CLOSING: [char; 5] = ['不', '没', '吗', '么', '呢'];
/// Pointing at a photo or at the thing in front of the farmer.
const PHOTO: [&str; 8] = [
    "图",
    "照片",
    "这是",
    "这个",
    "看看",
    "看下",
    "帮看",
    "看一下",
];
/// Pesticides, fertilisers and medicines.
const INPUTS: [&str; 8] = [
    "药",
    "杀菌剂",
    "杀虫剂",
    "除草剂",
    "肥",
    "针",
    "疫苗",
    "青霉素",
];
/// What was done before the trouble showed.
const PRACTICES: [&str; 8] = ["浇", "栽", "种下", "打了", "上了", "施了", "喷了", "撒了"];

/// True when `word` names a part of a plant or an animal (叶片, 根系).
pub(super) fn names_a_part(word: &str) -> bool {
    // `word.contains(p)` for each part, but a part is only compared where
    // the word has its first character (characters compared as such, not
    // as bytes): this runs for every word the lexicon does not know.
    word.char_indices().any(|(i, c)| {
        PARTS
            .iter()
            .any(|p| super::scan::first_char(p) == Some(c) && word[i..].starts_with(p))
    })
}

/// True when `text` asks something: a question word (咋, 啥, 多少, 哪) or
/// the closing particle of a yes-no question (…不, …吗).
pub(super) fn asks_a_question(text: &str) -> bool {
    let trimmed = text.trim_end_matches(|c: char| !c.is_alphanumeric());
    QUESTIONS.iter().any(|w| text.contains(w)) || trimmed.ends_with(CLOSING)
}

/// True when `text` asks about a plant or animal problem by the signs
/// above.
pub(super) fn asks_about_a_problem(text: &str) -> bool {
    let has = |words: &[&str]| words.iter().any(|w| text.contains(w));
    let question = asks_a_question(text);
    let symptom = has(&SYMPTOMS);
    (has(&PARTS) && (symptom || question))
        || ((has(&PHOTO) || has(&INPUTS) || has(&CREATURES)) && question)
        || ((has(&PRACTICES) || has(&INPUTS)) && symptom)
}

#[cfg(test)]
mod tests {
    use super::asks_about_a_problem as asks;

    #[test]
    fn a_part_with_a_symptom_or_a_question_asks() {
        assert!(asks("新长出来的叶子是花的 黄绿相间"));
        assert!(asks("专家帮看看这叶子是啥情况"));
        assert!(asks("幼苗茎基部细了 倒下了"));
        assert!(!asks("叶子"), "a part alone asks nothing");
    }

    #[test]
    fn a_photo_or_an_input_with_a_question_asks() {
        assert!(asks("看下这是缺啥肥"));
        assert!(asks("这个药和那个药能混着打不"));
        assert!(!asks("这个周末有空"), "pointing alone asks nothing");
    }

    #[test]
    fn a_pest_with_a_question_asks() {
        assert!(asks("这黑色的小甲虫是益虫还是害虫"));
        assert!(!asks("甲虫"), "a pest alone asks nothing");
    }

    #[test]
    fn a_practice_followed_by_a_symptom_asks() {
        assert!(asks("浇完水第二天就黄了"));
        assert!(!asks("浇完水了"));
    }

    #[test]
    fn requests_about_money_or_the_platform_do_not_ask() {
        for text in [
            "密码忘了咋登录",
            "种粮补贴啥时候发",
            "你好 在吗",
            "今天天气咋样",
        ] {
            assert!(!asks(text), "{text}");
        }
    }
}
