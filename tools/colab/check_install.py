"""Colab as a student meets it: every chapter, its own install cell included, in a Colab-like env.

    python tools/colab/check_install.py                 # all chapters (make colab-test)
    python tools/colab/check_install.py --only 02 --only 05

1. The environment (``.venv-colab``, made when missing): Python 3.11 with the Makefile's CPU
   torch and the versions of Colab's GPU runtime for the packages the chapters and the kernel
   touch (``tools/colab/constraints.txt``, which says where they come from).
2. A wheel of this checkout (``pip wheel --no-deps``), standing in for the repository URL: CI
   has no GitHub, and the URL would name a released tag, not this code.
3. For each chapter, with ``vmonf_mini`` and ``normflows`` uninstalled first (as in a fresh Colab
   runtime): the chapter is executed with nbclient in that env on the smoke budget, its install
   cell rewritten only to point at the wheel; the versions of every installed distribution are
   read before and after. The check fails when a chapter fails, when its install cell did not
   install ``vmonf_mini``, or when it installed, removed or replaced anything but ``vmonf_mini``
   and ``normflows`` (the kernel's packages and ipywidgets above all).

Prints one line per chapter and the dependency diff; exits 1 on any failure. Uses only the
standard library outside the env; nbclient runs inside the env (``--run-one``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
CONSTRAINTS = Path(__file__).resolve().parent / "constraints.txt"
TORCH = os.environ.get("TORCH", "torch==2.13.0")
# What the install cell may add; nothing else may change.
INSTALLED_BY_THE_CELL = {"vmonf-mini", "normflows"}
# Replaced while Colab's kernel runs, these ask for a restart (ipywidgets: the front end renders 7 only).
PROTECTED = {
    "ipykernel",
    "ipython",
    "jupyter-client",
    "jupyter-core",
    "traitlets",
    "tornado",
    "pyzmq",
    "ipywidgets",
    "widgetsnbextension",
    "jupyterlab-widgets",
    "torch",
    "numpy",
}
# The repository URL as an install cell names it, with an optional @ref (a literal or {VMONF_REF}).
REPO_URL = re.compile(
    r"git\+https://github\.com/vmonf-book/vmonf-mini(?:\.git)?(?:@[^\"'\s]*)?"
)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def diff(before: Dict[str, str], after: Dict[str, str]) -> Dict[str, List[str]]:
    """What changed between two {distribution: version} snapshots, as readable lines."""
    return {
        "added": [f"{n} {after[n]}" for n in sorted(set(after) - set(before))],
        "removed": [f"{n} {before[n]}" for n in sorted(set(before) - set(after))],
        "changed": [
            f"{n} {before[n]} -> {after[n]}"
            for n in sorted(set(before) & set(after))
            if before[n] != after[n]
        ],
    }


def problems_with(before: Dict[str, str], after: Dict[str, str]) -> List[str]:
    """Why an install cell's effect on the environment is not acceptable (empty: it is)."""
    found = []
    for name in sorted(set(before) | set(after)):
        if before.get(name) == after.get(name):
            continue
        if name in before and name in after:
            what = f"replaced {name} {before[name]} -> {after[name]}"
            found.append(
                what
                + (" (a package the kernel has loaded)" if name in PROTECTED else "")
            )
        elif name in before:
            found.append(f"removed {name} {before[name]}")
        elif name not in INSTALLED_BY_THE_CELL:
            found.append(f"added {name} {after[name]}, which the chapters do not need")
    if "vmonf-mini" not in after:
        found.append("vmonf_mini was not installed")
    return found


def point_install_at(nb_cells: List[dict], target: str) -> int:
    """Rewrite the repository URL in the notebook's code cells to ``target``; how many were rewritten."""
    count = 0
    for cell in nb_cells:
        if cell.get("cell_type") != "code":
            continue
        text = (
            "".join(cell["source"])
            if isinstance(cell["source"], list)
            else cell["source"]
        )
        new, n = REPO_URL.subn(lambda _: target, text)
        if n:
            cell["source"] = new
            count += n
    return count


# ------------------------------------------------------------------------------- the environment
def env_python(env: Path) -> Path:
    return env / "bin" / "python"


def find_python311() -> str:
    for candidate in (
        os.environ.get("COLAB_PYTHON"),
        shutil.which("python3.11"),
        "/root/.pyenv/versions/3.11.7/bin/python3.11",
    ):
        if candidate and Path(candidate).exists():
            return candidate
    raise SystemExit("no Python 3.11 found: set COLAB_PYTHON to one")


def make_env(env: Path) -> None:
    stamp = env / ".colab-constraints"
    wanted = CONSTRAINTS.read_text(encoding="utf-8") + TORCH
    if stamp.exists() and stamp.read_text(encoding="utf-8") == wanted:
        return
    if not env_python(env).exists():
        subprocess.run([find_python311(), "-m", "venv", str(env)], check=True)
    print(
        f"installing {TORCH} and {CONSTRAINTS.relative_to(ROOT)} into {env}", flush=True
    )
    subprocess.run(
        [
            str(env_python(env)),
            "-m",
            "pip",
            "install",
            "-q",
            TORCH,
            "-r",
            str(CONSTRAINTS),
        ],
        check=True,
    )
    stamp.write_text(wanted, encoding="utf-8")


def build_wheel(env: Path, out: Path) -> Path:
    subprocess.run(
        [
            str(env_python(env)),
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
    )
    wheels = sorted(out.glob("vmonf_mini-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one wheel in {out}, found {wheels}")
    with zipfile.ZipFile(
        wheels[0]
    ) as wheel:  # the data the headers read on a GPU (package-data)
        if "vmonf_mini/budget_times.json" not in wheel.namelist():
            raise SystemExit(f"{wheels[0].name} lacks vmonf_mini/budget_times.json")
    return wheels[0]


def snapshot(env: Path) -> Dict[str, str]:
    code = (
        "import importlib.metadata as m, json; print(json.dumps("
        "{d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    # -I: not this checkout's vmonf_mini.egg-info (the current directory is not on the path)
    out = subprocess.run(
        [str(env_python(env)), "-I", "-c", code],
        check=True,
        capture_output=True,
        text=True,
        cwd=str(env),
    ).stdout
    return {canonical(k): v for k, v in json.loads(out).items()}


def uninstall_book_packages(env: Path) -> None:
    subprocess.run(
        [
            str(env_python(env)),
            "-I",
            "-m",
            "pip",
            "uninstall",
            "-q",
            "-y",
            "vmonf_mini",
            "normflows",
        ],
        check=True,
        capture_output=True,
        cwd=str(env),
    )


# ------------------------------------------------------------------------- one chapter, in the env
def run_one(path: Path, target: str, timeout: int) -> int:
    """Executed by the env's Python: one chapter with nbclient, its install cell pointed at ``target``."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    if point_install_at(nb.cells, target) == 0:
        print(f"{path.name}: no install cell names the repository URL", file=sys.stderr)
        return 2
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    status = 0
    try:
        client.execute()
    except Exception as err:  # noqa: BLE001 - reported, and the exit status says it failed
        lines = [line for line in str(err).strip().splitlines() if line.strip()]
        print("\n".join(lines[-15:]), file=sys.stderr)
        status = 1
    for cell in numpy_copy_warnings(nb.cells):
        print(f"{WARNING_PREFIX}{path.stem}:{cell}", flush=True)
    return status


# NumPy 2 warns when it must call a torch tensor's __array__ without its copy keyword (torch's
# takes none): matplotlib does so for tensors (imshow, ...). The kernel is told to show it always.
NUMPY_COPY_WARNING = "__array__ implementation doesn't accept a copy keyword"
WARNINGS_FILTER = "always:__array__ implementation:DeprecationWarning"


WARNING_PREFIX = "numpy-copy-warning "
# Cells known to pass torch tensors to matplotlib, outside the chapters' headers (chapter:cell id),
# left to the chapters' authors: the check lists them but fails only on a cell not in this file.
KNOWN_WARNINGS = Path(__file__).resolve().parent / "known_numpy_warnings.txt"


def numpy_copy_warnings(nb_cells: List[dict]) -> List[str]:
    """The ids of the cells whose output shows NumPy 2's copy-keyword warning."""
    found = []
    for cell in nb_cells:
        text = "".join(
            str(o.get("text", ""))
            for o in cell.get("outputs", [])
            if o.get("output_type") == "stream"
        )
        if NUMPY_COPY_WARNING in text:
            found.append(str(cell.get("id")))
    return found


def known_warnings() -> set:
    if not KNOWN_WARNINGS.exists():
        return set()
    lines = KNOWN_WARNINGS.read_text(encoding="utf-8").splitlines()
    return {line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()}


def check(env: Path, chapters: List[Path], wheel: Optional[Path], timeout: int) -> int:
    make_env(env)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = wheel or build_wheel(env, Path(tmp))
        target = wheel.resolve().as_uri()
        print(f"wheel: {wheel.name}; environment: {env}", flush=True)
        failed: List[str] = []
        first_diff = None
        known, listed = known_warnings(), []
        for path in chapters:
            uninstall_book_packages(env)
            before = snapshot(env)
            start = time.perf_counter()
            environ = dict(
                os.environ,
                VMONF_BUDGET="smoke",
                MPLBACKEND="Agg",
                OMP_NUM_THREADS="1",
                VMONF_DATA_DIR=os.environ.get("VMONF_DATA_DIR", str(ROOT / "data")),
                PYTHONNOUSERSITE="1",
                PIP_DISABLE_PIP_VERSION_CHECK="1",
                PYTHONWARNINGS=WARNINGS_FILTER,
                PYDEVD_DISABLE_FILE_VALIDATION="1",
            )
            environ.pop("VIRTUAL_ENV", None)
            environ.pop("PYTHONPATH", None)
            run = subprocess.run(
                [
                    str(env_python(env)),
                    str(Path(__file__).resolve()),
                    "--run-one",
                    str(path),
                    "--target",
                    target,
                    "--timeout",
                    str(timeout),
                ],
                cwd=str(path.parent),
                env=environ,
                capture_output=True,
                text=True,
            )
            seconds = time.perf_counter() - start
            after = snapshot(env)
            changes = diff(before, after)
            first_diff = first_diff or changes
            trouble = problems_with(before, after)
            if run.returncode:
                trouble.append(
                    "the chapter failed:\n    "
                    + "\n    ".join(run.stderr.strip().splitlines()[-15:])
                )
            warned = [
                line[len(WARNING_PREFIX) :].strip()
                for line in run.stdout.splitlines()
                if line.startswith(WARNING_PREFIX)
            ]
            new_warnings = [w for w in warned if w not in known]
            trouble += [
                f"NumPy 2 copy-keyword warning in cell {w}: a torch tensor passed to matplotlib or NumPy "
                "(call .numpy() first)"
                for w in new_warnings
            ]
            listed += [w for w in warned if w in known]
            status = "ok" if not trouble else "FAILED"
            added = ", ".join(changes["added"]) or "nothing"
            print(
                f"  {status:6s} {path.stem}: {seconds:.0f} s; the install cell added {added}",
                flush=True,
            )
            for t in trouble:
                print(f"         {t}", flush=True)
            if trouble:
                failed.append(path.stem)
        if first_diff is not None:
            print(
                "\nDependency diff of the install cell (first chapter, from a runtime without the book's packages):"
            )
            for kind in ("added", "removed", "changed"):
                print(f"  {kind}: {', '.join(first_diff[kind]) or 'none'}")
        if listed:
            print(
                f"\nNumPy 2 copy-keyword warnings in cells listed in {KNOWN_WARNINGS.name} (to fix): {', '.join(listed)}"
            )
        uninstall_book_packages(env)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
        return 1
    print(
        f"\nall {len(chapters)} chapter(s) ran in the Colab-like environment; no installed package was replaced"
    )
    return 0


def chapters(only: Optional[List[str]]) -> List[Path]:
    found = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))
    if only:
        found = [p for p in found if any(p.stem.startswith(o) for o in only)]
    if not found:
        raise SystemExit(f"no chapter matches {only}")
    return found


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--env",
        type=Path,
        default=ROOT / ".venv-colab",
        help="the Colab-like venv (made when missing)",
    )
    parser.add_argument(
        "--only", action="append", help="a chapter's name or prefix (repeatable)"
    )
    parser.add_argument(
        "--wheel",
        type=Path,
        default=None,
        help="install this wheel instead of building one",
    )
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("--run-one", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_one:
        return run_one(args.run_one, args.target, args.timeout)
    return check(args.env.resolve(), chapters(args.only), args.wheel, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
