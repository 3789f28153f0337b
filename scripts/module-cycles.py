#!/usr/bin/env python3
"""Lists pairs of files of one crate that name each other (`crate::a` in b.rs and
`crate::b` in a.rs, or `super::` between a file and its child): the import circles the
library-shape rule forbids. Exit 1 if any. Usage: module-cycles.py CRATE_SRC_DIR..."""
import os, re, sys

def modules(src):
    files = {}
    for root, _, names in os.walk(src):
        for n in names:
            if n.endswith('.rs'):
                path = os.path.join(root, n)
                rel = os.path.relpath(path, src)[:-3]
                mod = rel.replace(os.sep, '::')
                if mod.endswith('::mod'):
                    mod = mod[:-5]
                files[mod] = path
    return files

def refs(path, mod, known):
    text = open(path).read()
    # drop comments so doc links do not count
    text = re.sub(r'//[^\n]*', '', text)
    # drop #[cfg(test)] mod tests { ... } at the end of a file (tests may use anything)
    cut = text.find('#[cfg(test)]\nmod tests {')
    if cut >= 0:
        text = text[:cut]
    out = set()
    for m in re.finditer(r'\bcrate::([a-z_][a-z0-9_]*)', text):
        out.add(m.group(1))
    parent = mod.rsplit('::', 1)[0] if '::' in mod else None
    if parent and re.search(r'\bsuper::', text):
        out.add(parent)
    return {r for r in out if r in known and r != mod}

failed = False
count = 0
for src in sys.argv[1:]:
    files = modules(src)
    top = {m.split('::')[0] for m in files}
    graph = {}
    count += len(files)
    for mod, path in files.items():
        graph[mod] = refs(path, mod, set(files) | top)
    for a in sorted(graph):
        for b in sorted(graph[a]):
            if a < b and a in graph.get(b, set()):
                print(f"{src}: {a}.rs <-> {b}.rs")
                failed = True
if not failed:
    print(f"import circles: none among {count} files")
sys.exit(1 if failed else 0)
