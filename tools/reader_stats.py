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
calls whose value is text (target 0: glue the numbers, write the sentence).

    python tools/reader_stats.py              # a Markdown table
    python tools/reader_stats.py --column 88  # the code column's width in characters
    python tools/reader_stats.py --check      # exit 1 unless every target is met (make lint)
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


def _is_text(node: ast.AST, text_names: Set[str]) -> bool:
    """Whether an expression builds text: a string, an f-string, a join, or a name bound to one."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.Name):
        return node.id in text_names
    if isinstance(node, ast.BinOp):
        return _is_text(node.left, text_names) or _is_text(node.right, text_names)
    if isinstance(node, ast.IfExp):
        return _is_text(node.body, text_names) or _is_text(node.orelse, text_names)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr in {"join", "format"} and _is_text(
            node.func.value, text_names
        )
    return False


def _text_glues(source: str) -> int:
    """How many ``glue(name, value)`` calls of a cell glue text rather than a number."""
    try:
        tree = ast.parse(
            "\n".join(
                "" if line.lstrip().startswith(("%", "!")) else line
                for line in source.splitlines()
            )
        )
    except SyntaxError:
        return 0
    text_names: Set[str] = set()
    count = 0
    for node in ast.walk(tree):  # breadth first: assignments before the calls in them
        if isinstance(node, ast.Assign) and _is_text(node.value, text_names):
            text_names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "glue"
            and len(node.args) >= 2
            and _is_text(node.args[1], text_names)
        ):
            count += 1
    return count


def _functions(source: str) -> Set[str]:
    """Names of the functions a cell defines at its top level (magics stripped)."""
    clean = "\n".join(
        "" if line.lstrip().startswith(("%", "!")) else line
        for line in source.splitlines()
    )
    try:
        tree = ast.parse(clean)
    except SyntaxError:
        return set()
    return {
        node.name
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }


def chapter_stats(path: Path, column: int) -> Dict[str, object]:
    cells = json.loads(path.read_text())["cells"]
    visible, asserts, functions = 0, 0, set()
    hidden, longest_hidden, text_glues = 0, 0, 0
    # "cell I, line L (N characters)" for each code line wider than the column
    wide_at: List[str] = []
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        functions |= _functions(source)
        text_glues += _text_glues(source)
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
    args = parser.parse_args(argv)
    chapters = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
    stats = {p.stem: chapter_stats(p, args.column) for p in chapters}
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
