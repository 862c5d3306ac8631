"""What a reader of the HTML book sees of each chapter's code (issue: the reader's pass).

Per chapter: code lines the HTML shows (cells not tagged ``remove-cell``, ``remove-input``,
``hide-input`` or ``hide-cell``), ``assert`` lines among them (target 0: checks belong in
hidden cells), lines wider than the page's code column (target 0), and the functions the
chapter defines that another chapter defines too (target 0: such a helper belongs in the
package).

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
    visible, asserts, wide, functions = 0, 0, 0, set()
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        functions |= _functions(source)
        if HIDDEN & set(cell.get("metadata", {}).get("tags", [])):
            continue
        lines = [line for line in source.splitlines() if line.strip()]
        visible += len(lines)
        asserts += sum(line.lstrip().startswith("assert ") for line in lines)
        wide += sum(len(line) > column for line in lines)
    return {
        "visible": visible,
        "asserts": asserts,
        "wide": wide,
        "functions": functions,
    }


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--column", type=int, default=88, help="characters that fit the code column"
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 unless every target (0) is met"
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
        f"| chapter | visible code lines | visible asserts | lines wider than {args.column} | "
        "helpers also defined in another chapter |"
    )
    print("|---|---|---|---|---|")
    for name, s in stats.items():
        dup = sorted(fn for fn in s["functions"] if fn in shared)  # type: ignore[union-attr]
        print(
            f"| {name} | {s['visible']} | {s['asserts']} | {s['wide']} | {len(dup)}"
            + (f" ({', '.join(dup)})" if dup else "")
            + " |"
        )
    total = {
        k: sum(s[k] for s in stats.values()) for k in ("visible", "asserts", "wide")
    }  # type: ignore[misc]
    print(
        f"| **all** | {total['visible']} | {total['asserts']} | {total['wide']} | {len(shared)} names |"
    )
    if args.check and (total["asserts"] or total["wide"] or shared):
        print(
            f"reader_stats: targets missed: {total['asserts']} visible asserts, {total['wide']} "
            f"visible lines wider than {args.column}, helpers in two chapters: {sorted(shared)}"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
