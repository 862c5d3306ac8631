"""Per-cell timing and stall reports for ``tools/execute_chapters.py``.

A :class:`Watch` times each code cell of one chapter (nbclient's ``on_cell_execute`` and
``on_cell_executed`` hooks) and, from a thread, watches the cell being executed. When a cell has
run more than three times its usual time (and at least ``MARGIN`` seconds more; the usual time
is the median of its last runs on this budget, ``_build/.cell_times.json``), or when the kernel
has used no CPU time for ``IDLE`` seconds while a cell is unanswered, it writes one report to
``_build/stall-reports/<chapter>-cell<N>-<time>.log``: the client's messages (sent and received,
on every channel), the kernel's messages (``tools/kernel_msglog.py``), the state and CPU time of
both processes, and their stacks when ``py-spy`` is installed. It never stops or changes a cell.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
TIMES = ROOT / "_build" / ".cell_times.json"
REPORTS = ROOT / "_build" / "stall-reports"
MSGLOG = Path(__file__).resolve().parent / "kernel_msglog.py"
FACTOR, MARGIN = 3.0, 20.0  # a report when a cell runs > max(3 x usual, usual + 20 s)
UNKNOWN = 600.0  # seconds, for a cell with no usual time yet
IDLE = 60.0  # seconds without kernel CPU time while a cell is unanswered
KEEP = 5  # runs per cell kept in TIMES


def kernel_arguments() -> List[str]:
    """Kernel command-line arguments that load ``kernel_msglog.py`` in its own namespace."""
    code = (
        f"exec(compile(open({str(MSGLOG)!r}).read(), {str(MSGLOG)!r}, 'exec'), "
        f"{{'__name__': 'vmonf_kernel_msglog', '__file__': {str(MSGLOG)!r}}})"
    )
    return [f"--IPKernelApp.exec_lines={code}"]


def load_times(budget: str) -> Dict[str, Dict[str, List[float]]]:
    try:
        return json.loads(TIMES.read_text()).get(budget, {})
    except (OSError, ValueError):
        return {}


def save_times(budget: str, chapter: str, cells: Dict[int, float]) -> None:
    """Add one successful run's cell times (called by the parent process only)."""
    try:
        everything = json.loads(TIMES.read_text())
    except (OSError, ValueError):
        everything = {}
    kept = everything.setdefault(budget, {}).setdefault(chapter, {})
    for index, seconds in cells.items():
        kept[str(index)] = (kept.get(str(index), []) + [round(seconds, 3)])[-KEEP:]
    TIMES.parent.mkdir(parents=True, exist_ok=True)
    tmp = TIMES.with_suffix(".tmp")
    tmp.write_text(json.dumps(everything, indent=1, sort_keys=True))
    os.replace(tmp, TIMES)


def _cpu_seconds(pid: int) -> Optional[float]:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _state(pid: int) -> str:
    """The process's state letter (R running or runnable, S asleep, ...)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "?"


def _process_state(pid: int) -> str:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        wchan = Path(f"/proc/{pid}/wchan").read_text()
        return f"state {fields[0]}, CPU {_cpu_seconds(pid):.1f} s, waiting in {wchan or '-'}"
    except (OSError, IndexError, ValueError, TypeError):
        return "gone"


def _summary(msg: Dict[str, Any]) -> str:
    header, parent = msg.get("header") or {}, msg.get("parent_header") or {}
    content = msg.get("content")
    state = ""
    if isinstance(content, dict):
        state = content.get("execution_state") or content.get("status") or ""
    return (
        f"{header.get('msg_type')} id={header.get('msg_id')} "
        f"parent={parent.get('msg_id')} {state}"
    )


class Watch:
    """Times one chapter's cells and reports the cell that runs far past its usual time."""

    def __init__(self, path: str, budget: str, manager_class: type) -> None:
        self.chapter = Path(path).stem
        self.manager_class = manager_class
        self.usual = {
            int(k): statistics.median(v)
            for k, v in load_times(budget).get(self.chapter, {}).items()
            if v
        }
        self.times: Dict[int, float] = {}  # wall seconds per cell
        self.cpu: Dict[int, float] = {}  # the kernel's CPU seconds per cell
        self.idle: Dict[
            int, float
        ] = {}  # longest stretch with the kernel asleep, unanswered
        self.cell: Optional[int] = None
        self._cpu0: Optional[float] = None
        self.start = 0.0
        self.reported: set = set()
        self.log: collections.deque = collections.deque(maxlen=3000)
        manager_class.SlicedChannel.log = self.log
        self._stop = threading.Event()

    # nbclient hooks (called in the event loop's thread)
    def on_cell_execute(self, cell: Any = None, cell_index: int = 0, **_: Any) -> None:
        pid = self._kernel_pid()
        self._cpu0 = None if pid is None else _cpu_seconds(pid)
        self.cell, self.start = cell_index, time.monotonic()

    def on_cell_executed(self, cell: Any = None, cell_index: int = 0, **_: Any) -> None:
        self.times[cell_index] = time.monotonic() - self.start
        self.cell = None
        pid = self._kernel_pid()
        cpu = None if pid is None else _cpu_seconds(pid)
        if cpu is not None and self._cpu0 is not None:
            self.cpu[cell_index] = cpu - self._cpu0

    def __enter__(self) -> "Watch":
        os.environ["VMONF_STALL_REPORTS"] = str(REPORTS)
        REPORTS.mkdir(parents=True, exist_ok=True)
        threading.Thread(target=self._run, name="stall-watch", daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()

    def _kernel_pid(self) -> Optional[int]:
        km = self.manager_class.current
        try:
            return km.provisioner.process.pid
        except AttributeError:
            return None

    def _run(self) -> None:
        cpu, still_since, watched = None, None, None
        while not self._stop.wait(2.0):
            cell = self.cell
            if cell != watched:  # a new cell (or none): start counting again
                cpu, still_since, watched = None, None, cell
            if cell is None:
                continue
            elapsed = time.monotonic() - self.start
            pid = self._kernel_pid()
            now_cpu = None if pid is None else _cpu_seconds(pid)
            asleep = pid is not None and _state(pid) == "S"
            if now_cpu is not None and now_cpu == cpu and asleep:
                still_since = still_since or time.monotonic() - 2.0
                stretch = time.monotonic() - still_since
                self.idle[cell] = max(self.idle.get(cell, 0.0), stretch)
            else:
                still_since = None
            cpu = now_cpu
            if cell in self.reported:
                continue
            usual = self.usual.get(cell)
            limit = UNKNOWN if usual is None else max(FACTOR * usual, usual + MARGIN)
            idle = still_since is not None and time.monotonic() - still_since >= IDLE
            if elapsed > limit or idle:
                self.reported.add(cell)
                why = "kernel idle" if idle else "past its usual time"
                try:
                    path = self.report(cell, elapsed, usual, pid, why)
                    print(
                        f"  {self.chapter}: cell {cell} at {elapsed:.0f} s ({why}; usual "
                        f"{'unknown' if usual is None else f'{usual:.1f} s'}): "
                        f"report {path.relative_to(ROOT)}",
                        flush=True,
                    )
                except Exception as err:  # a report must never break the execution
                    print(f"  {self.chapter}: no stall report ({err!r})", flush=True)

    def report(
        self,
        cell: int,
        elapsed: float,
        usual: Optional[float],
        pid: Optional[int],
        why: str,
    ) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = REPORTS / f"{self.chapter}-cell{cell}-{stamp}.log"
        kernel_log = None
        if pid is not None:
            (REPORTS / f"dump-{pid}").touch()
            for _ in range(10):  # the kernel writes its log within about a second
                time.sleep(0.5)
                logs = sorted(REPORTS.glob(f"kernel-{pid}-*.log"))
                if logs and not (REPORTS / f"dump-{pid}").exists():
                    kernel_log = logs[-1]
                    break
        lines = [
            f"{self.chapter}, cell {cell}: {elapsed:.0f} s ({why}), usual "
            + ("unknown" if usual is None else f"{usual:.1f} s"),
            f"client pid {os.getpid()}: {_process_state(os.getpid())}",
            f"kernel pid {pid}: {_process_state(pid) if pid else 'unknown'}",
            f"late replies so far: {self.manager_class.SlicedChannel.late}",
            "",
            "client messages (newest last):",
        ]
        for t, way, msg in list(self.log):
            clock = time.strftime("%H:%M:%S", time.localtime(t)) + f"{t % 1:.3f}"[1:]
            lines.append(f"{clock} {way} {_summary(msg)}")
        lines += ["", f"kernel messages: {kernel_log or 'none written'}"]
        if kernel_log is not None:
            lines.append(kernel_log.read_text())
        spy = shutil.which("py-spy") or shutil.which(
            "py-spy", path=str(Path(sys.executable).parent)
        )
        for who, target in (("client", os.getpid()), ("kernel", pid)):
            if spy and target:
                out = subprocess.run(
                    [spy, "dump", "--pid", str(target)],
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                lines += ["", f"py-spy dump of the {who}:", out.stdout + out.stderr]
        path.write_text("\n".join(lines) + "\n")
        return path
