#!/usr/bin/env python3
"""Checks that every protocol rule name cited in the repository is defined in
docs/PROTOCOL.md (the lease) or docs/REPLICATION.md (the log's R1..R8). Run from anywhere; it works on the repository the script lives in.

Cited names, in the *.rs and *.md files (not under target/ or .git/, and not
docs/PROTOCOL.md itself):
- P1..P6, A1..A4, L1, T1..T4, F1..F3, B1, B2, R1..R8: a capital P, A, L, T, F, B or R and a number
  standing alone (not part of a word, a path, a version or a hex string such as 0xA1 or
  A1:B2); ranges "P1–P6" / "F1-F3" cite every name in between;
- "rule N" / "rules N, M and K" / "rules N–M" (any case), and test functions named
  `ruleN_...`, for the nine known ways to get it wrong.
In Rust files only comments and string literals count as prose (so a generic parameter
`T1` is not a citation); in Markdown, fenced code blocks are skipped. A line containing
`rule-names: ignore` is skipped (for a genuine false positive).

Defined names, in docs/PROTOCOL.md: a list item or paragraph that starts with a bold name
(`- **P1 start.**`, `**Rule 3**`) or a heading that starts with one (`### Rule 6 — ...`,
`### F1 ...`). Citations inside docs/PROTOCOL.md are checked too but not counted.

Exit 0 with "rule names: N cited, all defined" (N distinct names), else exit 1 listing
file:line for every citation that does not resolve.
"""
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = Path('docs') / 'PROTOCOL.md'
# The replicated log's rules (R1..R8) are defined beside it.
DOCS = (DOC, Path('docs') / 'REPLICATION.md')
SKIP_DIRS = {'target', '.git'}
IGNORE_MARK = 'rule-names: ignore'

NUM = r'[1-9][0-9]?'
# Not preceded by a word character or by a character that makes the token part of a
# path, a version, a hex/MAC string or an identifier (x.A1, a-B1, $T1, #F2, :A1).
BEFORE = r'(?<![\w.:#$@\\-])'
# Not followed by a word character, nor by . : - joined to more letters or digits
# ("P6." ending a sentence is fine; "A1.b", "A1:B2", "B1-bound" are not citations).
AFTER = r'(?!\w)(?![.:\-][0-9A-Za-z])'
LETTER_RANGE = re.compile(
    BEFORE + r'([PALTFBR])(' + NUM + r')\s*[\u2013\u2014-]\s*\1(' + NUM + r')' + AFTER)
LETTER_NAME = re.compile(BEFORE + r'([PALTFBR])(' + NUM + r')' + AFTER)
RULES = re.compile(
    r'\brules?\s+(' + NUM + r'(?:\s*(?:,|/|&|\band\b|\bor\b|\bto\b|[\u2013\u2014-])\s*'
    + NUM + r')*)(?![\w.])', re.IGNORECASE)
RULE_FN = re.compile(r'\brule(' + NUM + r')_\w')

DEF_PREFIX = r'^[ \t]*(?:#{1,6}[ \t]+(?:\*\*)?|(?:[-*+][ \t]+|\d+\.[ \t]+)?\*\*)'
DEF_LETTER = re.compile(DEF_PREFIX + r'([PALTFBR]' + NUM + r')(?!\w)', re.MULTILINE)
DEF_RULE = re.compile(DEF_PREFIX + r'Rule[ \t]+(' + NUM + r')(?!\w)', re.MULTILINE)


def blank(text):
    """The text with everything but newlines replaced by spaces (offsets stay valid)."""
    return re.sub(r'[^\n]', ' ', text)


RUST_START = re.compile(r'//|/\*|b?r#*"|b?"|\'')


def rust_prose(src):
    """Comments and string literals of Rust source; code blanked, newlines kept."""
    out = []
    i, n = 0, len(src)
    while i < n:
        m = RUST_START.search(src, i)
        if not m:
            out.append(blank(src[i:]))
            break
        start = m.start()
        tok = m.group()
        # An `r"` or `b"` glued to an identifier (`expr"` is not Rust) is treated as code.
        if tok[0] in 'br' and start > 0 and (src[start - 1].isalnum() or src[start - 1] == '_'):
            out.append(blank(src[i:start + 1]))
            i = start + 1
            continue
        out.append(blank(src[i:start]))
        if tok == '//':
            end = src.find('\n', start)
            end = n if end < 0 else end
            out.append(src[start:end])
        elif tok == '/*':
            depth, j = 0, start
            while j < n:
                if src.startswith('/*', j):
                    depth += 1
                    j += 2
                elif src.startswith('*/', j):
                    depth -= 1
                    j += 2
                    if depth == 0:
                        break
                else:
                    j += 1
            end = j
            out.append(src[start:end])
        elif tok.endswith('"') and 'r' in tok:
            hashes = tok.count('#')
            close = src.find('"' + '#' * hashes, m.end())
            end = n if close < 0 else close + 1 + hashes
            out.append(src[start:end])
        elif tok.endswith('"'):
            j = m.end()
            while j < n and src[j] != '"':
                j += 2 if src[j] == '\\' else 1
            end = min(j + 1, n)
            out.append(src[start:end])
        else:  # a char literal, or a lifetime / label
            if start + 1 < n and src[start + 1] == '\\':
                close = src.find("'", start + 3)
                end = n if close < 0 else close + 1
            elif start + 2 < n and src[start + 2] == "'":
                end = start + 3
            else:
                end = start + 1
            out.append(blank(src[start:end]))
        i = end
    return ''.join(out)


FENCE = re.compile(r'^[ \t]*(```|~~~)')


def markdown_prose(src):
    """Markdown without its fenced code blocks (blanked, newlines kept)."""
    out, fence = [], None
    for line in src.splitlines(keepends=True):
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
            out.append(blank(line))
        elif fence is not None:
            if line.strip().startswith(fence):
                fence = None
            out.append(blank(line))
        else:
            out.append(line)
    return ''.join(out)


def numbers(spec):
    """'1, 5 and 6' -> [1, 5, 6]; '1–3' -> [1, 2, 3]."""
    result = []
    parts = re.split(r'\s*(,|/|&|\band\b|\bor\b|\bto\b|[\u2013\u2014-])\s*', spec,
                     flags=re.IGNORECASE)
    k = 0
    while k < len(parts):
        value = int(parts[k])
        if k + 2 < len(parts) and parts[k + 1].lower() in ('to', '-', '\u2013', '\u2014'):
            last = int(parts[k + 2])
            if value <= last <= value + 20:
                result.extend(range(value, last + 1))
            else:
                result.extend([value, last])
            k += 4
        else:
            result.append(value)
            k += 2
    return result


def citations(raw, prose, rust):
    """(line, name) for every citation in one file."""
    found = []
    line_starts = [0] + [m.end() for m in re.finditer('\n', raw)]
    ignored = {i + 1 for i, line in enumerate(raw.split('\n')) if IGNORE_MARK in line}

    def line_of(offset):
        lo, hi = 0, len(line_starts)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if line_starts[mid] <= offset:
                lo = mid
            else:
                hi = mid
        return lo + 1

    def add(offset, name):
        line = line_of(offset)
        if line not in ignored:
            found.append((line, name))

    text = prose
    for m in LETTER_RANGE.finditer(text):
        first, last = int(m.group(2)), int(m.group(3))
        names = range(first, last + 1) if first <= last <= first + 20 else (first, last)
        for k in names:
            add(m.start(), m.group(1) + str(k))
    text = LETTER_RANGE.sub(lambda m: blank(m.group()), text)
    for m in LETTER_NAME.finditer(text):
        add(m.start(), m.group(1) + m.group(2))
    for m in RULES.finditer(prose):
        for k in numbers(m.group(1)):
            add(m.start(), 'rule %d' % k)
    if rust:
        for m in RULE_FN.finditer(raw):
            add(m.start(), 'rule %d' % int(m.group(1)))
    return found


def definitions(text):
    """Names defined in docs/PROTOCOL.md, with the line of each definition."""
    defined = {}
    dups = []
    for pattern, fmt in ((DEF_LETTER, '{}'), (DEF_RULE, 'rule {}')):
        for m in pattern.finditer(text):
            name = fmt.format(m.group(1))
            line = text.count('\n', 0, m.start()) + 1
            if name in defined:
                dups.append((line, name, defined[name]))
            else:
                defined[name] = line
    return defined, dups


def source_files():
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for f in sorted(filenames):
            if f.endswith('.rs') or f.endswith('.md'):
                yield Path(dirpath, f).relative_to(ROOT)


def read(path):
    return (ROOT / path).read_text(encoding='utf-8', errors='replace')


def main():
    defined, problems = {}, []
    for doc_path in DOCS:
        if not (ROOT / doc_path).is_file():
            print('%s: missing' % doc_path)
            return 1
        found, dups = definitions(read(doc_path))
        for line, name, first in dups:
            problems.append('%s:%d: %s defined twice (first on line %d)'
                            % (doc_path, line, name, first))
        for name, line in found.items():
            if name in defined:
                problems.append('%s:%d: %s is also defined in %s'
                                % (doc_path, line, name, defined[name][0]))
            else:
                defined[name] = (doc_path, line)
        if not found:
            problems.append('%s: defines no rule names' % doc_path)

    cited = set()
    for path in source_files():
        raw = read(path)
        rust = path.suffix == '.rs'
        prose = rust_prose(raw) if rust else markdown_prose(raw)
        own = path in DOCS
        for line, name in citations(raw, prose, rust):
            if not own:
                cited.add(name)
            if name not in defined:
                where = ' (in the definitions document itself)' if own else ''
                problems.append('%s:%d: %s is cited but not defined in %s%s'
                                % (path, line, name, ' or '.join(map(str, DOCS)), where))

    if problems:
        for p in problems:
            print(p)
        print('rule names: %d cited, %d problem(s)' % (len(cited), len(problems)))
        return 1
    print('rule names: %d cited, all defined' % len(cited))
    return 0


if __name__ == '__main__':
    sys.exit(main())
