//! What never enters a knowledge entry: phone-number-like digit runs and the
//! farmer's contact, removed from the problem and the answer alike.

/// What a removed number or contact reads as.
pub(crate) const HIDDEN: &str = "[号码已隐去]";

/// Digits in a run that make it look like a phone number (a mobile has 11,
/// a landline 7 or 8 without its area code).
const PHONE_DIGITS: usize = 7;

fn digit(c: char) -> bool {
    c.is_ascii_digit() || ('０'..='９').contains(&c)
}

/// What may sit between the digits of one number: 138-1234-5678,
/// 0913 2345678, (0913)2345678, +86 138…
fn joiner(c: char) -> bool {
    matches!(
        c,
        ' ' | '-' | '—' | '－' | '(' | ')' | '（' | '）' | '+' | '＋' | '.' | '\u{3000}'
    )
}

/// `text` with every run of at least seven digits (separators allowed
/// between them) and every occurrence of `contact` replaced by [`HIDDEN`].
pub(crate) fn redact(text: &str, contact: &str) -> String {
    let text = hide_contact(text, contact);
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !digit(chars[i]) && !(matches!(chars[i], '+' | '＋' | '(' | '（')) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // The longest run of digits and joiners from here, ending on a digit.
        let (mut end, mut digits, mut j) = (i, 0, i);
        while j < chars.len() && (digit(chars[j]) || joiner(chars[j])) {
            if digit(chars[j]) {
                digits += 1;
                end = j + 1;
            }
            j += 1;
        }
        if digits >= PHONE_DIGITS {
            out.push_str(HIDDEN);
            i = end;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// The contact as given (a name with a number, a WeChat id…) removed
/// wherever it appears whole, and each of its words of three or more
/// characters.
fn hide_contact(text: &str, contact: &str) -> String {
    let contact = contact.trim();
    if contact.chars().count() < 2 {
        return text.to_string();
    }
    let mut out = text.replace(contact, HIDDEN);
    for part in contact
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '，' | '：' | ':' | '/' | '、'))
    {
        if part.chars().count() >= 2 && !part.chars().all(|c| digit(c) || joiner(c)) {
            out = out.replace(part, HIDDEN);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_phone_numbers_in_their_usual_spellings() {
        for (text, want) in [
            ("打13812345678找我", "打[号码已隐去]找我"),
            ("电话 138-1234-5678。", "电话 [号码已隐去]。"),
            ("座机(0913)2345678", "座机[号码已隐去]"),
            ("+86 138 1234 5678", "[号码已隐去]"),
            ("全角１３８１２３４５６７８", "全角[号码已隐去]"),
        ] {
            assert_eq!(redact(text, ""), want, "{text}");
        }
    }

    #[test]
    fn keeps_amounts_and_short_numbers() {
        for text in ["亩产1200斤", "用50%多菌灵800倍液，7天一次", "2至3次"] {
            assert_eq!(redact(text, ""), text);
        }
    }

    #[test]
    fn removes_the_contact_and_its_name() {
        let out = redact("我是王建国，微信wjg1988，苹果树烂皮", "王建国 wjg1988");
        assert!(!out.contains("王建国") && !out.contains("wjg1988"), "{out}");
        assert!(out.contains("苹果树烂皮"));
    }
}
