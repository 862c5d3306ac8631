"""Execute the book's chapters in parallel into Jupyter Book's cache, before ``jupyter-book build``.

``jupyter-book build`` (myst-nb, ``execute_notebooks: cache``) executes the chapters one after the
other. This script executes the chapters that the cache does not hold yet on all CPU cores, each
in its own kernel with the book's settings (working directory ``book/``, the per-cell timeout of
``_config.yml`` capped at ``PRE_TIMEOUT``), and stores each result in ``_build/.jupyter_cache``
exactly as myst-nb does. The build then finds every chapter in the cache and only renders it.

A chapter that fails is not cached: the build that follows executes it again and reports the
error in the usual way (strict builds fail), so this script never hides a failure; it only says
which chapters the build will retry.

    python tools/execute_chapters.py              # as many workers as CPU cores
    python tools/execute_chapters.py --jobs 1     # one at a time
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
CACHE = ROOT / "_build" / ".jupyter_cache"
#: Started first so that the longest chapters do not run last, alone on one core.
LONGEST_FIRST = ("09_", "07_", "06_", "08_", "05_", "03_", "02_", "04_")


def chapter_paths() -> List[Path]:
    """The chapters ``_toc.yml`` lists, longest first (the order does not change the output)."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files: List[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("file"), str):
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(toc)
    paths = [ROOT / f"{f}.ipynb" for f in files if (ROOT / f"{f}.ipynb").exists()]

    def rank(p: Path) -> Tuple[int, str]:
        hits = [
            i for i, prefix in enumerate(LONGEST_FIRST) if p.name.startswith(prefix)
        ]
        return (hits[0] if hits else len(LONGEST_FIRST), p.name)

    return sorted(paths, key=rank)


PRE_TIMEOUT = 900  # seconds per cell; the longest cell of the default budget (chapter 9, section 2) takes about 4 minutes


def timeout_from_config() -> int:
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return int(config.get("execute", {}).get("timeout", 3600))


def run_one(path: str, timeout: int) -> Tuple[str, object, float, Optional[str]]:
    """Execute one notebook in its own kernel; return (path, executed notebook, seconds, error)."""
    import nbformat
    from jupyter_cache.executors.utils import single_nb_execution

    for attempt in (1, 2):
        nb = nbformat.read(path, as_version=4)
        try:
            result = single_nb_execution(
                nb,
                cwd=str(Path(path).parent),
                timeout=timeout,
                allow_errors=False,
                meta_override=True,
            )
            break
        except RuntimeError as err:
            # the kernel did not start: two kernels started at once can pick the same port
            # ("Address already in use", then "Kernel died before replying to kernel_info")
            if attempt == 2:
                return path, nb, 0.0, f"the kernel did not start: {err}"
    error = (
        None
        if result.err is None
        else (result.exc_string or repr(result.err)).strip().splitlines()[-1]
    )
    return path, nb, result.time, error


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="parallel kernels"
    )
    args = parser.parse_args(argv)

    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    cache = get_cache(str(CACHE))
    todo = []
    for path in chapter_paths():
        try:
            cache.match_cache_notebook(nbformat.read(path, as_version=4))
        except KeyError:
            todo.append(path)
    budget = os.environ.get("VMONF_BUDGET", "default")
    print(
        f"{len(todo)} chapter(s) to execute on the {budget!r} budget with {args.jobs} worker(s): "
        + ", ".join(p.stem for p in todo),
        flush=True,
    )
    if not todo:
        return 0
    start, failed = time.perf_counter(), []
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        # A kernel sometimes stops answering (kernel idle, client waiting; seen with ipykernel 6 and
        # 7, never reproduced on demand). Once, with a 900 s timeout, the stuck cell went on after
        # 900 s and the chapter passed. Capping a cell at PRE_TIMEOUT bounds the wait: the chapter
        # is unstuck or fails early, and the build, with the book's own timeout, runs it again.
        timeout = min(timeout_from_config(), PRE_TIMEOUT)
        futures = {pool.submit(run_one, str(p), timeout): str(p) for p in todo}
        for future in as_completed(futures):
            try:
                path, nb, seconds, error = future.result()
            except (
                Exception
            ) as err:  # a worker that broke: the build runs the chapter again
                path, nb, seconds, error = futures[future], None, 0.0, repr(err)
            name = Path(path).stem
            if error is not None:
                failed.append(name)
                print(
                    f"  {name}: FAILED after {seconds:.0f} s ({error}); the build will run it again",
                    flush=True,
                )
                continue
            # the same record myst-nb writes after executing a notebook itself
            cache.cache_notebook_bundle(
                CacheBundleIn(nb, path, data={"execution_seconds": seconds}),
                check_validity=False,
                overwrite=True,
            )
            print(f"  {name}: {seconds:.0f} s", flush=True)
    print(
        f"executed in {time.perf_counter() - start:.0f} s wall time"
        + (f"; failed: {', '.join(failed)}" if failed else ""),
        flush=True,
    )
    return 0  # the build reports failures


if __name__ == "__main__":
    sys.exit(main())
