"""Loaded into each kernel that ``tools/execute_chapters.py`` starts (``IPKernelApp.exec_lines``).

Keeps the headers of the last messages the kernel received and sent (``jupyter_client``'s
``Session.deserialize`` and ``Session.send``, in every thread), and writes them, with every
thread's stack, to ``<reports>/kernel-<pid>-<time>.log`` when ``<reports>/dump-<pid>`` appears
(``tools/stall_watch.py`` creates it when a cell runs far past its usual time). It runs in its own
namespace, not the notebook's, and touches no message.
"""

import collections
import os
import sys
import threading
import time
import traceback
from pathlib import Path

from jupyter_client.session import Session


def _load_summary():
    """``stall_watch._summary``, loaded from the file beside this one (the client's own summary of
    a message), without putting ``tools/`` on the notebook's ``sys.path``."""
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location(
        "vmonf_stall_watch", Path(__file__).with_name("stall_watch.py")
    )
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._summary


_summary = _load_summary()

REPORTS = Path(os.environ.get("VMONF_STALL_REPORTS", "_build/stall-reports")).resolve()
LOG: "collections.deque" = collections.deque(maxlen=5000)
_send, _deserialize = Session.send, Session.deserialize


def _log(way, msg):
    try:
        LOG.append((time.time(), threading.current_thread().name, way, _summary(msg)))
    except Exception:
        pass
    return msg


def _logged_send(self, stream, *args, **kwargs):
    return _log("sent", _send(self, stream, *args, **kwargs))


def _logged_deserialize(self, msg_list, content=True, copy=True):
    return _log("recv", _deserialize(self, msg_list, content=content, copy=copy))


def _write():
    stamp = time.strftime("%H%M%S")
    names = {t.ident: t.name for t in threading.enumerate()}
    with open(REPORTS / f"kernel-{os.getpid()}-{stamp}.log", "w") as f:
        f.write(f"kernel {os.getpid()}: the last {len(LOG)} messages\n")
        for t, thread, way, summary in list(LOG):
            clock = time.strftime("%H:%M:%S", time.localtime(t)) + f"{t % 1:.3f}"[1:]
            f.write(f"{clock} [{thread}] {way} {summary}\n")
        f.write("\nstacks:\n")
        for ident, frame in sys._current_frames().items():
            f.write(f"\nthread {names.get(ident, ident)}:\n")
            f.write("".join(traceback.format_stack(frame)))


def _watch():
    trigger = REPORTS / f"dump-{os.getpid()}"
    while True:
        time.sleep(1.0)
        if trigger.exists():
            try:
                trigger.unlink()
                _write()
            except OSError:
                pass


Session.send, Session.deserialize = _logged_send, _logged_deserialize
threading.Thread(target=_watch, name="vmonf-msglog", daemon=True).start()
