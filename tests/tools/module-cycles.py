#!/usr/bin/env python3
"""No module imports another in a cycle (issue #17), checked in `make test`.

For every crate root of the workspace members (src/lib.rs, src/main.rs,
src/bin/*.rs), this maps each module to its file(s) by following `mod`
declarations, collects every path a module refers to (`use crate::a::b`,
`use crate::{a, b::c}`, `crate::a::f()` in code, `super::x`, `self::x`), and,
at every level of the module tree, builds the graph between SIBLING modules:
a reference from anywhere inside `a` to anything inside `b`, where `a` and `b`
share a parent, is an edge a -> b. A strongly connected component of more than
one sibling is a cycle: each is reported with one example reference per edge,
and the exit status is 1.

Why siblings only: a child may always use its ancestors (`super::`), and a
parent its children; what makes layers is that siblings do not lean on each
other both ways, at every level.

Not counted: `#[cfg(test)]` modules and `#[cfg(test)] use` items (tests may
reach anywhere), comments and string literals, and a binary's `use
<its_own_lib>::...` (another crate, so another graph).

Usage: module-cycles.py [--known-cycles CRATE_DIR]... [CRATE_DIR...]
           (default: the workspace members; a --known-cycles crate's cycles are
           printed but not counted, and it fails once it has none left)
       module-cycles.py --self-test
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from dataclasses import dataclass, field

ModPath = tuple[str, ...]


class UnsupportedSource(Exception):
    """Source this checker cannot map to modules (it would rather fail than guess)."""


# --- lexing -----------------------------------------------------------------


def strip_comments_and_strings(text: str) -> str:
    """Blanks comments and string/char literals, keeping every newline (so
    line numbers stay right) and the code around them."""
    out: list[str] = []
    i, n = 0, len(text)

    def blank(s: str) -> str:
        return "".join("\n" if c == "\n" else " " for c in s)

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(blank(text[i:j]))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(text[i:j]))
            i = j
        elif (m := re.compile(r'(?:b|c)?r(#*)"').match(text, i)) and (
            i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")
        ):
            end = '"' + m.group(1)
            j = text.find(end, m.end())
            j = n if j < 0 else j + len(end)
            out.append(blank(text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(blank(text[i : j + 1]))
            i = j + 1
        elif c == "'":
            # A char literal ('x', '\n', '\u{1F600}') or a lifetime ('a).
            m = re.compile(r"'(?:\\(?:u\{[0-9a-fA-F]*\}|x..|.)|[^\\'\n])'").match(text, i)
            if m:
                out.append(blank(m.group(0)))
                i = m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


TOKEN = re.compile(r"\$?(?:r#)?[A-Za-z_][A-Za-z0-9_]*|::|\S")


@dataclass
class Tok:
    text: str
    line: int


def tokenize(text: str) -> list[Tok]:
    code = strip_comments_and_strings(text)
    toks: list[Tok] = []
    line, last = 1, 0
    for m in TOKEN.finditer(code):
        line += code.count("\n", last, m.start())
        last = m.start()
        toks.append(Tok(m.group(0), line))
    return toks


# --- parsing one file ---------------------------------------------------------


@dataclass
class Reference:
    """`path` as written (e.g. ("super", "status", "Ready")), from module `at`."""

    at: ModPath
    path: tuple[str, ...]
    file: str
    line: int


@dataclass
class ParsedFile:
    references: list[Reference] = field(default_factory=list)
    # (module path of the declared child, inline-module dir parts, line)
    file_modules: list[tuple[ModPath, tuple[str, ...], int]] = field(default_factory=list)


def attributes_before(toks: list[Tok], i: int) -> list[str]:
    """The outer attributes (`#[...]`) right before token i, skipping a
    visibility (`pub`, `pub(crate)`, `pub(in a::b)`)."""
    j = i - 1
    if j >= 0 and toks[j].text == ")":
        k = j
        while k >= 0 and toks[k].text != "(":
            k -= 1
        if k >= 1 and toks[k - 1].text == "pub":
            j = k - 2
    elif j >= 0 and toks[j].text == "pub":
        j -= 1
    attrs = []
    while j >= 1 and toks[j].text == "]":
        depth, k = 0, j
        while k >= 0:
            if toks[k].text == "]":
                depth += 1
            elif toks[k].text == "[":
                depth -= 1
                if depth == 0:
                    break
            k -= 1
        if k < 1 or toks[k - 1].text != "#":
            break
        attrs.append("".join(t.text for t in toks[k + 1 : j]))
        j = k - 2
    return attrs


def is_test_only(attrs: list[str]) -> bool:
    return "cfg(test)" in attrs


def skip_block(toks: list[Tok], i: int) -> int:
    """From the `{` at i, the index after its matching `}`."""
    depth = 0
    while i < len(toks):
        if toks[i].text == "{":
            depth += 1
        elif toks[i].text == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return i


def parse_use_tree(toks: list[Tok], i: int, prefix: tuple[str, ...], out: list[tuple[tuple[str, ...], int]]) -> int:
    """Parses one use tree at i (after `use` or a `,` in a group), appending
    every full path with its line; returns the index after the tree."""
    path = list(prefix)
    line = toks[i].line if i < len(toks) else 0
    if i < len(toks) and toks[i].text == "::":  # `use ::std::x`
        i += 1
    while i < len(toks):
        t = toks[i].text
        if t == "{":
            i += 1
            while i < len(toks) and toks[i].text != "}":
                if toks[i].text == ",":
                    i += 1
                    continue
                i = parse_use_tree(toks, i, tuple(path), out)
            return i + 1
        if t == "*":
            out.append((tuple(path), line))
            return i + 1
        if re.fullmatch(r"\$?(?:r#)?\w+", t):
            line = toks[i].line
            if t == "self" and prefix and path == list(prefix):
                pass  # `a::{self, b}`: the prefix itself
            else:
                path.append(t)
            i += 1
            if i < len(toks) and toks[i].text == "as":
                i += 2
            if i < len(toks) and toks[i].text == "::":
                i += 1
                continue
            out.append((tuple(path), line))
            return i
        return i + 1  # unexpected token: stop this tree
    return i


def parse_file(text: str, file: str, module: ModPath) -> ParsedFile:
    toks = tokenize(text)
    if any(
        toks[k].text == "path" and toks[k - 1].text == "[" and toks[k - 2].text == "#" for k in range(2, len(toks))
    ):
        raise UnsupportedSource(f"{file}: #[path] on a module is not supported by this checker")
    parsed = ParsedFile()
    # Each `{` pushes the module it opens (inline `mod x {`) or None.
    stack: list[ModPath | None] = []
    inline_dirs: list[str] = []

    def current() -> ModPath:
        for m in reversed(stack):
            if m is not None:
                return m
        return module

    i = 0
    while i < len(toks):
        t = toks[i].text
        if t == "mod" and i + 1 < len(toks) and re.fullmatch(r"(?:r#)?\w+", toks[i + 1].text):
            name = toks[i + 1].text.removeprefix("r#")
            after = toks[i + 2].text if i + 2 < len(toks) else ""
            test_only = is_test_only(attributes_before(toks, i))
            if after == ";":
                if not test_only:
                    parsed.file_modules.append((current() + (name,), tuple(inline_dirs), toks[i].line))
                i += 3
                continue
            if after == "{":
                if test_only:
                    i = skip_block(toks, i + 2)
                    continue
                stack.append(current() + (name,))
                inline_dirs.append(name)
                i += 3
                continue
        if t == "use" and i + 1 < len(toks) and toks[i + 1].text != "<":
            paths: list[tuple[tuple[str, ...], int]] = []
            j = parse_use_tree(toks, i + 1, (), paths)
            while j < len(toks) and toks[j].text != ";":
                j += 1
            if not is_test_only(attributes_before(toks, i)):
                for path, line in paths:
                    parsed.references.append(Reference(current(), path, file, line))
            i = j + 1
            continue
        if t in ("crate", "$crate", "super", "self") and i + 1 < len(toks) and toks[i + 1].text == "::":
            # `pub(in crate::a)` is a visibility, not a reference.
            if i >= 3 and toks[i - 1].text == "in" and toks[i - 2].text == "(" and toks[i - 3].text == "pub":
                i += 1
                continue
            path = [t]
            j = i + 1
            while j + 1 < len(toks) and toks[j].text == "::" and re.fullmatch(r"(?:r#)?\w+", toks[j + 1].text):
                path.append(toks[j + 1].text)
                j += 2
            parsed.references.append(Reference(current(), tuple(path), file, toks[i].line))
            i = j
            continue
        if t == "{":
            stack.append(None)
        elif t == "}" and stack:
            if stack.pop() is not None:
                inline_dirs.pop()
        i += 1
    return parsed


# --- a crate's module tree ------------------------------------------------------


@dataclass
class CrateTree:
    name: str
    modules: set[ModPath] = field(default_factory=lambda: {()})
    references: list[Reference] = field(default_factory=list)


def module_dir(file: str, is_root: bool) -> str:
    """Where `mod x;` in `file` looks for x.rs and x/mod.rs."""
    base = os.path.basename(file)
    if is_root or base == "mod.rs":
        return os.path.dirname(file)
    return os.path.splitext(file)[0]


def load_crate(root_file: str, name: str, read=lambda p: open(p, encoding="utf-8").read(), exists=os.path.exists) -> CrateTree:
    tree = CrateTree(name)
    todo: list[tuple[str, ModPath, bool]] = [(root_file, (), True)]
    while todo:
        file, module, is_root = todo.pop()
        parsed = parse_file(read(file), file, module)
        tree.references += parsed.references
        for child, inline_dirs, line in parsed.file_modules:
            tree.modules.add(child)
            base = os.path.join(module_dir(file, is_root), *inline_dirs)
            candidates = [os.path.join(base, child[-1] + ".rs"), os.path.join(base, child[-1], "mod.rs")]
            found = [c for c in candidates if exists(c)]
            if len(found) != 1:
                raise UnsupportedSource(f"{file}:{line}: mod {child[-1]}: expected one of {candidates}, found {found}")
            todo.append((found[0], child, False))
        for ref in parsed.references:
            tree.modules.add(ref.at)
    return tree


def resolve(tree: CrateTree, ref: Reference) -> ModPath | None:
    """The module a reference lands in (the longest known module prefix of
    its path), or None for another crate's path."""
    path = list(ref.path)
    if not path:
        return None
    head = path[0]
    if head in ("crate", "$crate"):
        base: list[str] = []
        rest = path[1:]
    elif head in ("self", "super"):
        base = list(ref.at)
        rest = path
        while rest and rest[0] in ("self", "super"):
            if rest[0] == "super":
                if not base:
                    return None
                base.pop()
            rest = rest[1:]
    elif tuple(ref.at) + (head,) in tree.modules:
        # 2018 uniform paths: `use child::x` names a child of this module.
        base = list(ref.at)
        rest = path
    else:
        return None  # an external crate, a prelude item or a local name
    target = list(base)
    for seg in rest:
        if tuple(target + [seg]) in tree.modules:
            target.append(seg)
        else:
            break
    return tuple(target)


@dataclass
class Cycle:
    crate: str
    parent: ModPath
    members: list[str]
    edges: list[tuple[str, str, Reference]]


def sibling_edge(at: ModPath, target: ModPath) -> tuple[ModPath, str, str] | None:
    """(parent, from-child, to-child) when `at` and `target` lie under two
    different children of their common parent; None when one contains the other."""
    k = 0
    while k < len(at) and k < len(target) and at[k] == target[k]:
        k += 1
    if k == len(at) or k == len(target):
        return None
    return at[:k], at[k], target[k]


def strongly_connected(nodes: list[str], edges: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        # Module trees are shallow and small: recursion depth is bounded by the
        # number of siblings.
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def find_cycles(tree: CrateTree) -> list[Cycle]:
    # parent -> (from, to) -> first example reference
    graphs: dict[ModPath, dict[tuple[str, str], Reference]] = {}
    for ref in sorted(tree.references, key=lambda r: (r.file, r.line)):
        target = resolve(tree, ref)
        if target is None:
            continue
        edge = sibling_edge(ref.at, target)
        if edge is None:
            continue
        parent, a, b = edge
        graphs.setdefault(parent, {}).setdefault((a, b), ref)
    cycles = []
    for parent, examples in sorted(graphs.items()):
        adjacency: dict[str, set[str]] = {}
        for a, b in examples:
            adjacency.setdefault(a, set()).add(b)
        nodes = sorted({x for e in examples for x in e})
        for comp in strongly_connected(nodes, adjacency):
            if len(comp) > 1:
                edges = [(a, b, ref) for (a, b), ref in sorted(examples.items()) if a in comp and b in comp]
                cycles.append(Cycle(tree.name, parent, comp, edges))
    return cycles


def show(parent: ModPath, child: str) -> str:
    return "::".join(("crate",) + parent + (child,))


def report(cycle: Cycle) -> str:
    lines = [f"{cycle.crate}: cycle between {', '.join(show(cycle.parent, m) for m in cycle.members)}"]
    for a, b, ref in cycle.edges:
        lines.append(
            f"  {show(cycle.parent, a)} -> {show(cycle.parent, b)}: {ref.file}:{ref.line} {'::'.join(ref.path)}"
        )
    return "\n".join(lines)


# --- the workspace ------------------------------------------------------------


def crate_roots(crate_dir: str) -> list[tuple[str, str]]:
    """(root file, display name) of each target under crate_dir/src."""
    src = os.path.join(crate_dir, "src")
    roots = []
    for name in ("lib.rs", "main.rs"):
        if os.path.exists(os.path.join(src, name)):
            roots.append((os.path.join(src, name), f"{crate_dir} ({name})"))
    bin_dir = os.path.join(src, "bin")
    if os.path.isdir(bin_dir):
        for entry in sorted(os.listdir(bin_dir)):
            p = os.path.join(bin_dir, entry)
            if entry.endswith(".rs"):
                roots.append((p, f"{crate_dir} (bin/{entry})"))
            elif os.path.exists(os.path.join(p, "main.rs")):
                roots.append((os.path.join(p, "main.rs"), f"{crate_dir} (bin/{entry})"))
    return roots


def workspace_members() -> list[str]:
    with open("Cargo.toml", "rb") as f:
        return tomllib.load(f)["workspace"]["members"]


def check(crate_dirs: list[str], known: frozenset[str] = frozenset()) -> int:
    """Reports the cycles of `crate_dirs`; 1 if any outside the `known` crates.

    A known crate's cycles are printed but do not fail the check (a ratchet:
    the crates still being untangled); a known crate without any cycle left
    fails it, so its name is taken off the list as soon as it is clean.
    """
    found = 0
    for crate_dir in crate_dirs:
        in_crate = 0
        for root, name in crate_roots(crate_dir):
            for cycle in find_cycles(load_crate(root, name)):
                prefix = "known, not yet fixed: " if crate_dir in known else ""
                print(prefix + report(cycle))
                in_crate += 1
        if crate_dir in known:
            if not in_crate:
                print(
                    f"module-cycles: {crate_dir} has no cycle left: take it off --known-cycles",
                    file=sys.stderr,
                )
                return 1
            print(
                f"module-cycles: {in_crate} known cycle(s) in {crate_dir}, not counted",
                file=sys.stderr,
            )
        else:
            found += in_crate
    if found:
        print(
            f"module-cycles: {found} cycle(s) between sibling modules; move what both sides "
            "need into a module below them (docs/development.md)",
            file=sys.stderr,
        )
        return 1
    print(f"module-cycles: no new cycle in {', '.join(crate_dirs)}", file=sys.stderr)
    return 0


# --- self-test ------------------------------------------------------------------


def self_test() -> int:
    import unittest

    def refs(src: str, module: ModPath = ()) -> list[tuple[ModPath, str, int]]:
        return [(r.at, "::".join(r.path), r.line) for r in parse_file(src, "t.rs", module).references]

    def crate(files: dict[str, str]) -> CrateTree:
        return load_crate("src/lib.rs", "t", read=lambda p: files[p], exists=lambda p: p in files)

    class Parser(unittest.TestCase):
        def test_use_groups_expand_to_full_paths(self) -> None:
            self.assertEqual(
                refs("use crate::{a, b::{c, d::E as F}, g::*};\nuse super::{self, h};"),
                [
                    ((), "crate::a", 1),
                    ((), "crate::b::c", 1),
                    ((), "crate::b::d::E", 1),
                    ((), "crate::g", 1),
                    ((), "super", 2),
                    ((), "super::h", 2),
                ],
            )

        def test_paths_in_code_and_lines(self) -> None:
            src = "fn f() {\n    let x = crate::a::b::f();\n    self::c::g::<u8>(super::d::H);\n}"
            self.assertEqual(
                refs(src),
                [((), "crate::a::b::f", 2), ((), "self::c::g", 3), ((), "super::d::H", 3)],
            )

        def test_comments_strings_and_chars_are_not_code(self) -> None:
            src = (
                '// use crate::a;\n/* crate::b /* nested */ crate::c */\nlet s = "crate::d";\n'
                "let r = r#\"crate::e\"#;\nlet c = '\"'; let l: &'static str = \"\";\nuse crate::f;"
            )
            self.assertEqual(refs(src), [((), "crate::f", 6)])

        def test_cfg_test_modules_and_uses_are_ignored(self) -> None:
            src = (
                "#[cfg(test)]\nmod tests {\n    use crate::a;\n    fn t() { crate::b::f(); }\n}\n"
                "#[cfg(test)]\nuse crate::c;\n#[cfg(test)]\n#[path_is_not_used]\nmod more;\nuse crate::d;"
            )
            parsed = parse_file(src, "t.rs", ())
            self.assertEqual([(r.at, "::".join(r.path)) for r in parsed.references], [((), "crate::d")])
            self.assertEqual(parsed.file_modules, [])

        def test_inline_modules_change_the_referring_module(self) -> None:
            src = "pub mod a {\n    pub(crate) mod b { use super::c::X; }\n    fn f() { super::d(); }\n}\nuse self::e::Y;"
            self.assertEqual(
                refs(src, ("top",)),
                [(("top", "a", "b"), "super::c::X", 2), (("top", "a"), "super::d", 3), (("top",), "self::e::Y", 5)],
            )

        def test_visibility_and_precise_capture_are_not_references(self) -> None:
            self.assertEqual(refs("pub(in crate::a) fn f() -> impl Sized + use<> {}"), [])

        def test_path_attribute_is_refused(self) -> None:
            with self.assertRaises(UnsupportedSource):
                parse_file('#[path = "x.rs"]\nmod y;', "t.rs", ())

    class Graph(unittest.TestCase):
        files = {
            "src/lib.rs": "mod a;\nmod b;\nmod c;\nuse a::A;",
            "src/a.rs": "use crate::b::B;\nmod inner;",
            "src/a/inner.rs": "use super::super::c::C;",
            "src/b/mod.rs": "pub struct B;\nfn f() { crate::a::g(); }\nmod x;\nmod y;",
            "src/b/x.rs": "use super::y::Y;\nuse super::B;",
            "src/b/y.rs": "use crate::b::x::X;\nuse crate::c::C;",
            "src/c.rs": "pub struct C;",
        }

        def test_reports_each_cycle_with_one_example_per_edge(self) -> None:
            cycles = find_cycles(crate(self.files))
            self.assertEqual(
                [(c.parent, c.members, [(a, b, f"{r.file}:{r.line}") for a, b, r in c.edges]) for c in cycles],
                [
                    ((), ["a", "b"], [("a", "b", "src/a.rs:1"), ("b", "a", "src/b/mod.rs:2")]),
                    (("b",), ["x", "y"], [("x", "y", "src/b/x.rs:1"), ("y", "x", "src/b/y.rs:1")]),
                ],
            )

        def test_children_using_ancestors_and_one_way_edges_are_fine(self) -> None:
            files = dict(self.files)
            files["src/b/mod.rs"] = "pub struct B;\nmod x;\nmod y;"
            files["src/b/y.rs"] = "use crate::c::C;\nuse super::super::b::B;"
            self.assertEqual(find_cycles(crate(files)), [])

        def test_a_missing_module_file_is_an_error(self) -> None:
            with self.assertRaises(UnsupportedSource):
                crate({"src/lib.rs": "mod gone;"})

    suite = unittest.TestSuite()
    for case in (Parser, Graph):
        suite.addTests(unittest.defaultTestLoader.loadTestsFromTestCase(case))
    return 0 if unittest.TextTestRunner(verbosity=1).run(suite).wasSuccessful() else 1


def main(argv: list[str]) -> int:
    if argv[1:] == ["--self-test"]:
        return self_test()
    args, known = [], set()
    rest = iter(argv[1:])
    for arg in rest:
        if arg == "--known-cycles":
            known.add(next(rest, "").rstrip("/"))
        else:
            args.append(arg.rstrip("/"))
    # Paths in reports are relative to the workspace root.
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    try:
        return check(args or workspace_members(), frozenset(known))
    except UnsupportedSource as e:
        print(f"module-cycles: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
