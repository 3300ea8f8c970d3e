//! `xwn eval` end to end: the binary reads a small labelled file and prints
//! figures that follow from it.

use std::process::Command;

#[test]
fn eval_prints_the_figures_of_a_small_file() {
    let dir = std::env::temp_dir().join(format!("xwn-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("small.jsonl");
    // Three plain reports, one deliberately mislabelled (a pig report
    // labelled 苹果), one non-agricultural report.
    let lines = [
        r#"{"id":"a","text":"苹果树叶子发黄有斑点","subject":"苹果","corps":"果树","division_code":"610527106202"}"#,
        r#"{"id":"b","text":"小麦条锈病咋防","subject":"小麦","corps":"粮油"}"#,
        r#"{"id":"c","text":"鱼塘早上鱼浮头","subject":"水产","corps":"林水"}"#,
        r#"{"id":"d","text":"猪不吃食还发烧","subject":"苹果","corps":"果树"}"#,
        r#"{"id":"e","text":"大棚补贴咋申请 找谁办","subject":"","corps":""}"#,
    ];
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xwn"))
        .arg("eval")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("reports            5"), "{text}");
    assert!(text.contains("subject accuracy   75.0% (3/4)"), "{text}");
    assert!(text.contains("corps accuracy     75.0% (3/4)"), "{text}");
    assert!(text.contains("abstained          0.0% (0/4)"), "{text}");
    assert!(text.contains("non-agri recognised 100.0% (1/1)"), "{text}");
    assert!(text.contains("d expected 苹果 got 猪"), "{text}");
    // The confusion row of 果树 has the mislabelled pig report under 畜牧.
    let row = text.lines().find(|l| l.starts_with("果树")).unwrap();
    let counts: Vec<&str> = row.split_whitespace().skip(1).collect();
    assert_eq!(counts, ["0", "0", "1", "1", "0", "0"], "{row}");

    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, "{\"text\": 1}\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xwn"))
        .arg("eval")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1"));
    std::fs::remove_dir_all(dir).unwrap();
}
