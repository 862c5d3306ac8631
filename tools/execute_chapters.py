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

The kernels' replies are awaited in slices of ``WAIT_SLICE`` seconds (``BookKernelClient``):
nbclient waits for a cell's reply with a single asyncio poll of the zmq socket, woken by the
socket's edge-triggered ``ZMQ_FD``. When that one wake-up is lost the reply sits unread in the
socket and the client waits, kernel idle, until the poll's timeout (the cell timeout, 900 s
here), whose final ``zmq_poll`` finds the reply and the chapter goes on. Ending every wait after
at most ``WAIT_SLICE`` seconds with that same check bounds a lost wake-up to ``WAIT_SLICE``. A
wait that ended with a message its wake-up had missed is counted and printed ("late replies").
``tools/lost_wakeup_demo.py`` loses one wake-up on demand and prints how long a 1 s cell then
takes with nbclient's client (the whole cell timeout) and with this script's (within a slice).

Why not jupyter-cache's own parallel executor (``local-parallel``,
``jupyter_cache.executors.basic.JupyterExecutorLocalMproc``): in jupyter-cache 1.0.1 its
workers call ``single_nb_execution(nb, cwd, timeout, allow_errors)`` and nothing else, and
``run_and_cache`` hands them no further argument. It thus runs nbclient's default kernel
manager and client: the bounded waits above (``kernel_manager_class``, the fix for the lost
zmq wake-up that stalled the build for a whole cell timeout) could not be passed, nor the
stall watch's hooks (``on_cell_execute``, ``on_cell_executed``), and its ``multiprocessing.Pool``
takes one process per CPU core and the project records in their stored order (no ``--jobs``, no
longest-first). This script calls the same ``single_nb_execution`` with those arguments and
caches the result as myst-nb does.

Each cell's wall time is kept in ``_build/.cell_times.json`` (per budget); when a cell runs more
than three times its usual time (``stall_watch``), its chapter's messages so far, the kernel's
messages (``tools/kernel_msglog.py``) and the state of both processes are written to
``_build/stall-reports/``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

# stall_watch.py is beside this file
sys.path.insert(0, str(Path(__file__).resolve().parent))

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


# seconds per cell; the longest cell of the default budget (chapter 9, section 2) takes about
# 4 minutes. A failing cell is run again by the build, with the book's own timeout.
PRE_TIMEOUT = 900


def timeout_from_config() -> int:
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return int(config.get("execute", {}).get("timeout", 3600))


WAIT_SLICE = 1.0  # seconds: the longest a client waits on one zmq wake-up (see above)


def book_client_classes() -> Tuple[type, type]:
    """(kernel manager class, kernel client class) that wait for messages in slices."""
    from jupyter_client.asynchronous.client import AsyncKernelClient
    from jupyter_client.channels import AsyncZMQSocketChannel
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import Type

    class SlicedChannel(AsyncZMQSocketChannel):
        """A channel whose ``get_msg`` polls its socket for at most ``WAIT_SLICE`` at a time.

        ``zmq.asyncio``'s poll returns when the event loop is woken by the socket's
        edge-triggered file descriptor, or at its timeout after one last ``zmq_poll(0)``. A
        wake-up that never reaches the loop (the descriptor drained by another operation on
        the socket, or no longer watched) leaves a message unread until that timeout; slices
        bound the delay to ``WAIT_SLICE``.
        """

        # messages found only by a slice's final check, sent WAIT_SLICE or more before
        late = 0
        # a collections.deque of (time, "send" or "recv", message), or None
        log: Optional[Any] = None

        async def get_msg(self, timeout: Optional[float] = None) -> Dict[str, Any]:
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                left = None if deadline is None else deadline - time.monotonic()
                step = WAIT_SLICE if left is None else max(0.0, min(WAIT_SLICE, left))
                start = time.monotonic()
                ready = await self.socket.poll(int(step * 1000))
                if ready:
                    msg = await self._recv()
                    waited = time.monotonic() - start
                    if step > 0 and waited >= step * 0.99:
                        sent = msg["header"].get("date")
                        if sent is not None and _age(sent) >= WAIT_SLICE:
                            type(self).late += 1
                    if self.log is not None:
                        self.log.append((time.time(), "recv", msg))
                    return msg
                if left is not None and left <= WAIT_SLICE:
                    from queue import Empty

                    raise Empty

        def send(self, msg: Dict[str, Any]) -> None:
            super().send(msg)
            if self.log is not None:
                self.log.append((time.time(), "send", msg))

    class BookKernelClient(AsyncKernelClient):
        shell_channel_class = Type(SlicedChannel)
        iopub_channel_class = Type(SlicedChannel)
        control_channel_class = Type(SlicedChannel)

    class BookKernelManager(AsyncKernelManager):
        client_factory = Type(BookKernelClient)
        SlicedChannel: Optional[type] = None  # set below; read by stall_watch
        # the manager of the kernel being run (one at a time per process)
        current: Optional["BookKernelManager"] = None

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            type(self).current = self

    BookKernelManager.SlicedChannel = SlicedChannel
    return BookKernelManager, BookKernelClient


def _age(sent: Any) -> float:
    """Seconds since a message header's ``date``."""
    import datetime

    if isinstance(sent, str):
        from dateutil.parser import isoparse

        sent = isoparse(sent)
    return (datetime.datetime.now(datetime.timezone.utc) - sent).total_seconds()


def run_one(
    path: str, timeout: int, budget: str = "default"
) -> Tuple[str, object, float, Optional[str], Dict[str, Any]]:
    """Execute one notebook in its own kernel.

    Returns (path, executed notebook, seconds, error, facts), facts holding each code cell's
    wall time (``cells``: index -> seconds), the kernel's CPU time (``cpu``), the longest time
    the kernel slept with the cell unanswered (``idle``), and the count of late replies
    (``late``).
    """
    import nbformat
    from jupyter_cache.executors.utils import single_nb_execution

    import stall_watch

    manager_class, _ = book_client_classes()
    channel = manager_class.SlicedChannel
    for attempt in (1, 2):
        nb = nbformat.read(path, as_version=4)
        watch = stall_watch.Watch(path, budget, manager_class)
        late_before = channel.late
        try:
            with watch:
                result = single_nb_execution(
                    nb,
                    cwd=str(Path(path).parent),
                    timeout=timeout,
                    allow_errors=False,
                    meta_override=True,
                    kernel_manager_class=manager_class,
                    extra_arguments=stall_watch.kernel_arguments(),
                    on_cell_execute=watch.on_cell_execute,
                    on_cell_executed=watch.on_cell_executed,
                )
            break
        except RuntimeError as err:
            # the kernel did not start: two kernels started at once can pick the same port
            # ("Address already in use", then "Kernel died before replying to kernel_info")
            if attempt == 2:
                return path, nb, 0.0, f"the kernel did not start: {err}", {}
    error = (
        None
        if result.err is None
        else (result.exc_string or repr(result.err)).strip().splitlines()[-1]
    )
    facts = {
        "cells": watch.times,
        "cpu": watch.cpu,
        "idle": watch.idle,
        "late": channel.late - late_before,
    }
    return path, nb, result.time, error, facts


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="parallel kernels"
    )
    args = parser.parse_args(argv)

    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    import stall_watch

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
    start, failed, late = time.perf_counter(), [], 0
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        # The book's cell timeout, capped: a cell that fails here is run again by the build.
        timeout = min(timeout_from_config(), PRE_TIMEOUT)
        futures = {pool.submit(run_one, str(p), timeout, budget): str(p) for p in todo}
        for future in as_completed(futures):
            try:
                path, nb, seconds, error, facts = future.result()
            except (
                Exception
            ) as err:  # a worker that broke: the build runs the chapter again
                path, nb, seconds, error, facts = (
                    futures[future],
                    None,
                    0.0,
                    repr(err),
                    {},
                )
            name = Path(path).stem
            late += facts.get("late", 0)
            if error is not None:
                failed.append(name)
                print(
                    f"  {name}: FAILED after {seconds:.0f} s ({error}); the build will run it again",
                    flush=True,
                )
                continue
            stall_watch.save_times(budget, name, facts.get("cells", {}))
            # the same record myst-nb writes after executing a notebook itself
            cache.cache_notebook_bundle(
                CacheBundleIn(nb, path, data={"execution_seconds": seconds}),
                check_validity=False,
                overwrite=True,
            )
            print(f"  {name}: {seconds:.0f} s", flush=True)
    print(
        f"executed in {time.perf_counter() - start:.0f} s wall time"
        + (f"; late replies: {late}" if late else "")
        + (f"; failed: {', '.join(failed)}" if failed else ""),
        flush=True,
    )
    return 0  # the build reports failures


if __name__ == "__main__":
    sys.exit(main())
