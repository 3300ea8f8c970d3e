#!/usr/bin/env python3
"""Writes index/lexicon/crops.csv from scripts/crops_src.txt.

Drops (and lists on stderr) single characters (but those in SINGLE), repeats, and words that
terms.csv, subjects.csv, corps_terms.csv, cues.csv or nonagri.csv already
hold: the open vocabulary adds names, it never redefines one.
Run from the repository root: python3 scripts/gen_crops.py
"""
import csv, sys

GROUPS = set("中药材 中草药 药材 野菜 杂豆 苗圃 绿化苗 绿化树 行道树 防护林 经济林 生态林 花卉 花苗 饲草 牧草 青贮 果树苗 芽苗菜".split())
SINGLE = set("马 蚕 鸽 鹿 棉".split())  # one-character names kept on purpose
FORAGE = set("苜蓿 紫花苜蓿 黑麦草 燕麦草 皇竹草 鲁梅克斯 黄花苜蓿 饲用燕麦 甜象草 象草 苏丹草 高丹草 红豆草 草木樨 沙打旺 墨西哥玉米".split())

def first_col(path):
    with open(path, encoding="utf-8") as f:
        return {r[0].strip() for r in list(csv.reader(f))[1:] if r}

subj_corps, known = {}, set()
with open("index/subjects.csv", encoding="utf-8") as f:
    for r in list(csv.reader(f))[1:]:
        subj_corps[r[0]] = r[1]
        known.add(r[0])
        known.update(a.strip() for a in r[3].replace("；", ";").split(";") if a.strip())
for name in ["terms", "corps_terms", "cues", "nonagri"]:
    known |= first_col(f"index/lexicon/{name}.csv")

rows, seen, dropped = [], set(), []
corps = source = None
for line in open("scripts/crops_src.txt", encoding="utf-8"):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    if line.startswith("@"):
        _, corps, source = line.split()
        continue
    for tok in line.split():
        term, subject, kind = (tok.split("/") + ["", ""])[:3]
        if (len(term) < 2 and term not in SINGLE) or term in seen or term in known:
            dropped.append(term)
            continue
        seen.add(term)
        if not kind:
            kind = ("group" if term in GROUPS else "crop" if term in FORAGE
                    else "animal" if corps == "畜牧" else "crop")
        c = subj_corps[subject] if subject else corps
        rows.append((term, c, subject, kind, source))

with open("index/lexicon/crops.csv", "w", encoding="utf-8", newline="") as f:
    f.write("term,corps,subject,kind,source\n")
    for r in rows:
        f.write(",".join(r) + "\n")
print(f"{len(rows)} rows; dropped {len(dropped)}: {' '.join(dropped)}", file=sys.stderr)
