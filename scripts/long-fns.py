#!/usr/bin/env python3
"""Lists Rust functions longer than LIMIT lines, counted from the `fn` line to
its closing brace, longest first (issue 12: about 80 unless earned).

Usage: scripts/long-fns.py LIMIT PATH...   e.g. scripts/long-fns.py 80 src tests benches

Braces are counted after string and char literals and `//` comments are
blanked out, which is enough for this code base (no raw strings holding
unbalanced braces).
"""
import pathlib
import re
import sys

FN = re.compile(r'^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)')


def code_of(line):
    """The line without string and char contents nor a trailing comment."""
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])'", "''", line)
    return line.split('//')[0]


def length(lines, start):
    """Lines from the `fn` at `start` to its closing brace; 0 without a body."""
    depth, opened = 0, False
    for end in range(start, len(lines)):
        code = code_of(lines[end])
        if not opened and ';' in code and '{' not in code:
            return 0
        for c in code:
            if c == '{':
                depth, opened = depth + 1, True
            elif c == '}':
                depth -= 1
        if opened and depth == 0:
            return end - start + 1
    return 0


def rust_files(path):
    path = pathlib.Path(path)
    return sorted(path.rglob('*.rs')) if path.is_dir() else [path]


def main():
    limit, paths = int(sys.argv[1]), sys.argv[2:]
    found = []
    for path in paths:
        for file in rust_files(path):
            lines = file.read_text().splitlines()
            for i, line in enumerate(lines):
                m = FN.match(line)
                if m and (n := length(lines, i)) > limit:
                    found.append((n, f'{file}:{i + 1}', m.group(6)))
    for n, at, name in sorted(found, reverse=True):
        print(f'{n:5d}  {at}  {name}')


if __name__ == '__main__':
    main()
