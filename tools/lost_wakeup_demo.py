"""The chapter-5 stall on demand: one lost zmq wake-up, with nbclient's client and with the book's.

A two-cell notebook is executed twice, each time with one lost wake-up on the client's shell
socket during the second cell (``time.sleep(1)``): the client's event loop is held for 3 s while
the reply arrives, then the socket's events are read through a plain shadow socket, as any
operation on the socket outside ``zmq.asyncio`` does. That reads the socket's edge-triggered
file descriptor, so the loop is never woken for the reply, which sits in the socket.

* nbclient's own client waits with the kernel idle until the cell timeout (``--timeout``, 30 s
  here; 900 s in the build), whose final ``zmq_poll`` finds the reply: the cell goes on and the
  notebook passes, exactly as chapter 5 did in CI (1,064 s instead of about 170).
* ``execute_chapters``' client (replies awaited in 1 s slices) finds it within a second.

    python tools/lost_wakeup_demo.py [--timeout 30]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))


def run(timeout: int, book_client: bool) -> float:
    """Seconds the second cell took, with one lost wake-up during it."""
    import nbformat
    import zmq
    from nbclient import NotebookClient

    import execute_chapters

    class Client(NotebookClient):
        async def async_execute_cell(
            self, cell: Any, cell_index: int, *a: Any, **k: Any
        ):
            if cell_index == 1:
                shell = self.kc.shell_channel.socket

                def lose_wakeup() -> None:
                    time.sleep(3.0)  # hold the loop: the reply arrives meanwhile
                    zmq.Socket.shadow(shell.underlying).get(zmq.EVENTS)

                asyncio.get_running_loop().call_later(0.2, lose_wakeup)
                start = time.monotonic()
                out = await super().async_execute_cell(cell, cell_index, *a, **k)
                self.seconds = time.monotonic() - start
                return out
            return await super().async_execute_cell(cell, cell_index, *a, **k)

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import time"),
        nbformat.v4.new_code_cell("time.sleep(1)\nprint('done')"),
    ]
    kwargs: dict = {}
    if book_client:
        kwargs["kernel_manager_class"] = execute_chapters.book_client_classes()[0]
    client = Client(nb, timeout=timeout, **kwargs)
    client.execute()
    assert nb.cells[1].outputs[0]["text"] == "done\n"
    return client.seconds


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=int, default=30, help="cell timeout, seconds")
    args = parser.parse_args(argv)
    import execute_chapters

    stock = run(args.timeout, book_client=False)
    print(
        f"nbclient's client: the 1 s cell took {stock:.1f} s (cell timeout {args.timeout} s)"
    )
    book = run(args.timeout, book_client=True)
    print(f"execute_chapters' client: the 1 s cell took {book:.1f} s")
    return 0 if book < 3.0 + 2 * execute_chapters.WAIT_SLICE + 1 else 1


if __name__ == "__main__":
    sys.exit(main())
