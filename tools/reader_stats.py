"""What a reader of the HTML book sees of each chapter's code (issue: the reader's pass).

Per chapter: code lines the HTML shows (cells not tagged ``remove-cell``, ``remove-input``,
``hide-input`` or ``hide-cell``), ``assert`` lines among them (target 0: checks belong in
hidden cells), lines wider than the page's code column in every cell a reader can see or open
(shown or collapsed: all but ``remove-cell`` and ``remove-input``; target 0, each one named by
chapter, cell index and line), and the functions the
chapter defines that another chapter defines too (target 0: such a helper belongs in the
package). Then the course pass's targets (issue 29): code lines the HTML removes (cells
tagged ``remove-cell`` or ``remove-input``, which a reader cannot open; at most the visible
ones; collapsed cells count in neither), the longest hidden cell (at most ``LONGEST_HIDDEN`` lines) and the ``glue``
calls whose value is text (target 0: glue the numbers, write the sentence). Text is read off
the code: a string, an f-string, a name bound to one in the cell, ``.format(...)`` or
``.join(...)``, or a call of a function that returns text: ``str``, ``format``, ``repr``...,
the package's functions annotated ``-> str`` (``median_range``, ``mean_std``, ...) and the
chapter's own helpers that return text. A table or figure object (``markdown_table``'s
``MarkdownTable``, a figure) may be glued.

    python tools/reader_stats.py              # a Markdown table
    python tools/reader_stats.py --column 88  # the code column's width in characters
    python tools/reader_stats.py --check      # exit 1 unless every target is met (make lint)
    python tools/reader_stats.py --book ../other/book  # the chapters of another checkout
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Set

ROOT = Path(__file__).resolve().parent.parent
HIDDEN = {"remove-cell", "remove-input", "hide-input", "hide-cell"}
REMOVED = {"remove-cell", "remove-input"}  # code the reader cannot open at all
LONGEST_HIDDEN = 30


# builtins that always return text
TEXT_BUILTINS = {"str", "format", "repr", "ascii", "chr", "hex", "oct", "bin"}
# str methods that return text when called on text (``.format`` and ``.join`` always do)
STR_METHODS = {
    "capitalize", "casefold", "center", "expandtabs", "ljust", "lower", "lstrip",
    "removeprefix", "removesuffix", "replace", "rjust", "rstrip", "strip", "swapcase",
    "title", "upper", "zfill",
}  # fmt: skip


def _strip_magics(source: str) -> str:
    return "\n".join(
        "" if line.lstrip().startswith(("%", "!")) else line
        for line in source.splitlines()
    )


def _annotated_str(node: ast.AST) -> bool:
    """Whether a function's return annotation says it returns ``str`` (or ``Optional[str]``)."""
    returns = getattr(node, "returns", None)
    if (
        isinstance(returns, ast.Subscript)
        and getattr(returns.value, "id", "") == "Optional"
    ):
        returns = returns.slice
    if isinstance(returns, ast.Constant):  # a string annotation, "str"
        return returns.value == "str"
    return isinstance(returns, ast.Name) and returns.id == "str"


def package_text_functions(package: Path = ROOT / "vmonf_mini") -> Set[str]:
    """The package's functions annotated to return ``str``: ``mean_std`` and ``median_range``
    (table cells), ``vm.budget``, ``records.hardware``, ... (``markdown_table`` returns a
    ``MarkdownTable``, a table object, which glue may paste)."""
    names: Set[str] = set()
    for path in sorted(package.glob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(
                node, (ast.FunctionDef, ast.AsyncFunctionDef)
            ) and _annotated_str(node):
                names.add(node.name)
    return names


def _is_text(node: ast.AST, text_names: Set[str], text_functions: Set[str]) -> bool:
    """Whether an expression builds text: a string, an f-string, a name bound to one, or a call
    that returns one (``str``, ``format``, ``.format``, ``.join``, ``median_range``, ...)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.Name):
        return node.id in text_names
    if isinstance(node, ast.BinOp):
        return _is_text(node.left, text_names, text_functions) or _is_text(
            node.right, text_names, text_functions
        )
    if isinstance(node, ast.IfExp):
        return _is_text(node.body, text_names, text_functions) or _is_text(
            node.orelse, text_names, text_functions
        )
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name):  # median_range(...), str(...), a text helper
            return func.id in TEXT_BUILTINS or func.id in text_functions
        if isinstance(func, ast.Attribute):
            if func.attr in {"join", "format"}:  # whatever the receiver
                return True
            if func.attr in STR_METHODS:
                return _is_text(func.value, text_names, text_functions)
            # vm.presentation.median_range(...), vm.budget(...)
            return func.attr in text_functions
    return False


def _text_helpers(sources: List[str], known: Set[str]) -> Set[str]:
    """The functions a chapter defines that return text: annotated ``-> str``, or with a
    ``return`` of text (a string, an f-string, a call of a known text function...)."""
    defs = []
    for source in sources:
        try:
            tree = ast.parse(_strip_magics(source))
        except SyntaxError:
            continue
        defs += [
            node
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        ]
    found = set(known)
    changed = True
    # repeat: a helper that returns another text helper's result returns text too
    while changed:
        changed = False
        for node in defs:
            if node.name in found:
                continue
            names = _text_names(node, found)
            returns = [
                r.value
                for r in ast.walk(node)
                if isinstance(r, ast.Return) and r.value is not None
            ]
            if _annotated_str(node) or any(_is_text(r, names, found) for r in returns):
                found.add(node.name)
                changed = True
    return found


def _text_names(tree: ast.AST, text_functions: Set[str]) -> Set[str]:
    """The names that a tree binds to text (``label = f"..."``, ``cell = mean_std(...)``)."""
    names: Set[str] = set()
    for node in ast.walk(tree):  # breadth first: assignments before the calls in them
        if isinstance(node, ast.Assign) and _is_text(node.value, names, text_functions):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def _text_glues(source: str, text_functions: Set[str] = frozenset()) -> int:
    """How many ``glue(name, value)`` calls of a cell glue text rather than a number: a string,
    an f-string, a name bound to text in the cell, or a call of a function that returns text
    (``text_functions``: the package's and the chapter's, besides ``str``, ``format``, ...)."""
    try:
        tree = ast.parse(_strip_magics(source))
    except SyntaxError:
        return 0
    text_names = _text_names(tree, text_functions)
    count = 0
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and "glue"
            in (getattr(node.func, "id", None), getattr(node.func, "attr", None))
            and len(node.args) >= 2
            and _is_text(node.args[1], text_names, text_functions)
        ):
            count += 1
    return count


def _functions(source: str) -> Set[str]:
    """Names of the functions a cell defines at its top level (magics stripped)."""
    clean = _strip_magics(source)
    try:
        tree = ast.parse(clean)
    except SyntaxError:
        return set()
    return {
        node.name
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }


def chapter_stats(
    path: Path, column: int, text_functions: Set[str] = frozenset()
) -> Dict[str, object]:
    cells = json.loads(path.read_text())["cells"]
    text_functions = _text_helpers(
        ["".join(c["source"]) for c in cells if c["cell_type"] == "code"],
        TEXT_BUILTINS | set(text_functions),
    )
    visible, asserts, functions = 0, 0, set()
    hidden, longest_hidden, text_glues = 0, 0, 0
    # "cell I, line L (N characters)" for each code line wider than the column
    wide_at: List[str] = []
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        functions |= _functions(source)
        text_glues += _text_glues(source, text_functions)
        lines = [line for line in source.splitlines() if line.strip()]
        tags = set(cell.get("metadata", {}).get("tags", []))
        if REMOVED & tags:
            hidden += len(lines)
            longest_hidden = max(longest_hidden, len(lines))
        else:  # shown or collapsed: a reader can open it, so it must fit the column too
            wide_at += [
                f"cell {index}, line {number} ({len(line)} characters)"
                for number, line in enumerate(source.splitlines(), 1)
                if len(line) > column
            ]
        if HIDDEN & tags:
            continue
        visible += len(lines)
        asserts += sum(line.lstrip().startswith("assert ") for line in lines)
    return {
        "visible": visible,
        "asserts": asserts,
        "wide": len(wide_at),
        "wide_at": wide_at,
        "functions": functions,
        "hidden": hidden,
        "longest_hidden": longest_hidden,
        "text_glues": text_glues,
    }


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--column", type=int, default=88, help="characters that fit the code column"
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 unless every target (0) is met"
    )
    parser.add_argument(
        "--course",
        action="store_true",
        help="with --check, also the course pass's targets (hidden lines, text glue)",
    )
    parser.add_argument(
        "--book",
        help="the folder of the chapters to read (default: this checkout's book/)",
    )
    args = parser.parse_args(argv)
    chapters = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
    if args.book:
        chapters = sorted(Path(args.book).glob("[0-9][0-9]_*.ipynb"))
    text_functions = package_text_functions()
    stats = {p.stem: chapter_stats(p, args.column, text_functions) for p in chapters}
    where: Dict[str, List[str]] = defaultdict(list)
    for name, s in stats.items():
        for fn in s["functions"]:  # type: ignore[union-attr]
            where[fn].append(name[:2])
    shared = {fn: chs for fn, chs in where.items() if len(chs) > 1}
    print(
        f"| chapter | visible code lines | visible asserts | "
        f"shown or collapsed lines wider than {args.column} | "
        "helpers also defined in another chapter | removed code lines | longest removed cell | "
        "text glued |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, s in stats.items():
        dup = sorted(fn for fn in s["functions"] if fn in shared)  # type: ignore[union-attr]
        print(
            f"| {name} | {s['visible']} | {s['asserts']} | {s['wide']} | {len(dup)}"
            + (f" ({', '.join(dup)})" if dup else "")
            + f" | {s['hidden']} | {s['longest_hidden']} | {s['text_glues']} |"
        )
    keys = ("visible", "asserts", "wide", "hidden", "text_glues")
    total = {k: sum(s[k] for s in stats.values()) for k in keys}  # type: ignore[misc]
    longest = max(s["longest_hidden"] for s in stats.values())  # type: ignore[type-var]
    print(
        f"| **all** | {total['visible']} | {total['asserts']} | {total['wide']} | "
        f"{len(shared)} names | {total['hidden']} | {longest} | {total['text_glues']} |"
    )
    missed = []
    if total["asserts"] or total["wide"] or shared:
        missed.append(
            f"{total['asserts']} visible asserts, {total['wide']} shown or collapsed lines "
            f"wider than {args.column}, helpers in two chapters: {sorted(shared)}"
        )
    for name, s in stats.items():
        for where_wide in s["wide_at"]:  # type: ignore[union-attr]
            missed.append(f"{name}, {where_wide}: wider than {args.column}")
    if args.course:
        for name, s in stats.items():
            if s["hidden"] > s["visible"] or s["longest_hidden"] > LONGEST_HIDDEN:  # type: ignore[operator]
                missed.append(
                    f"{name}: {s['hidden']} hidden lines against {s['visible']} visible, "
                    f"longest hidden cell {s['longest_hidden']} (at most {LONGEST_HIDDEN})"
                )
            if s["text_glues"]:
                missed.append(f"{name}: {s['text_glues']} glue calls of text")
    if args.check and missed:
        print("reader_stats: targets missed: " + "; ".join(missed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
