"""A cvxpy solve that Ctrl-C stops at once.

A solver in native code (CLARABEL's Rust, through cvxpy) returns to Python only at its end,
and Python runs a signal handler only between its own instructions: Ctrl-C during a
CLARABEL solve took effect when the solve ended, minutes later on a 5 mm head-and-neck. The
solve therefore runs on a worker thread (CLARABEL releases the interpreter lock while it
iterates) and the calling thread waits in short, interruptible joins: Ctrl-C raises
KeyboardInterrupt there within a tenth of a second, and the caller's interrupted path (no
plan written, exit 130) runs.

Nothing can stop the native solve itself (cvxpy offers CLARABEL's termination callback no
way in), so an abandoned solve runs to its end on its daemon thread, which the process does
not wait for when it exits, and then writes its values into the problem's variables. Those
variables are shared by every problem of a program (a lexicographic step's, a refinement's),
so solves take turns (`_ONE_AT_A_TIME`): a library caller that solves again after catching
the KeyboardInterrupt waits, interruptibly, for the abandoned solve to end instead of having
its own values overwritten.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

import cvxpy as cp

_ONE_AT_A_TIME = threading.Lock()
# How often the waiting thread looks up from its wait (a signal is handled in between).
_WAIT_S = 0.1


def solve_interruptibly(problem: cp.Problem, **arguments: Any) -> None:
    """`problem.solve(**arguments)` on a worker thread; raises what the solve raised, or KeyboardInterrupt
    as soon as Ctrl-C comes (the solve is then abandoned, module docstring)."""
    while not _ONE_AT_A_TIME.acquire(timeout=_WAIT_S):
        pass
    failure: list[BaseException] = []

    def work() -> None:
        try:
            problem.solve(**arguments)
        except BaseException as error:  # handed to the waiting thread, which raises it
            failure.append(error)
        finally:
            _ONE_AT_A_TIME.release()

    try:
        worker = threading.Thread(target=work, name="specc cvxpy solve", daemon=True)
        worker.start()
    except BaseException:
        _ONE_AT_A_TIME.release()
        raise
    with warnings.catch_warnings():  # cvxpy's generic warning; the status message says more
        warnings.filterwarnings("ignore", message="Solution may be inaccurate")
        while worker.is_alive():
            worker.join(_WAIT_S)
    if failure:
        raise failure[0]
