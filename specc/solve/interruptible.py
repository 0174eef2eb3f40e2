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
variables are shared by every problem of a program (a lexicographic step's, a refinement's,
a diagnosis's), so a solve's thread holds a lock on each variable of its problem
(`_variable_locks`): a library caller that solves the same program again after catching the
KeyboardInterrupt waits, interruptibly, for the abandoned solve to end instead of having its
own values overwritten. Problems that share no variable (another case's program, solved on
another thread) do not wait for each other: the wait after a caught interrupt is per program
(it was for the whole process, every case's solves one at a time, until the review's B5 fix).

cvxpy warns "Solution may be inaccurate" on an inaccurate status; the status message says
more (NOT CONVERGED), so that warning, from the solves of this module, is ignored from the
first solve on (a filter that stays: `_WARNED_FROM`). A filter set and put back around the
solve (`warnings.catch_warnings`) is not thread-safe: it changed the process's filters from
the waiting thread and put them back while an abandoned solve still ran, whose warning then
printed after "interrupted".
"""

from __future__ import annotations

import re
import threading
import warnings
import weakref
from typing import Any

import cvxpy as cp

# Where cvxpy's inaccuracy warning is said to come from: the first frame outside cvxpy (this
# module's `problem.solve`) with cvxpy's `utilities.warn`, cvxpy's own module before it.
_WARNED_FROM = rf"({re.escape(__name__)}|cvxpy\.problems\.problem)\Z"
# How often the waiting thread looks up from its wait (a signal is handled in between).
_WAIT_S = 0.1
# One lock per live cvxpy variable, by its id (unique in the process; a variable is not a dict key:
# its `==` builds a constraint). An entry goes when its variable is collected.
_LOCKS: dict[int, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _variable_locks(problem: cp.Problem) -> list[threading.Lock]:
    """The locks of the problem's variables, in the order of their ids (one order for every solve: no deadlock)."""
    locks = []
    with _LOCKS_GUARD:
        for variable in sorted(problem.variables(), key=lambda variable: variable.id):
            lock = _LOCKS.get(variable.id)
            if lock is None:
                weakref.finalize(variable, _LOCKS.pop, variable.id, None)
                lock = _LOCKS[variable.id] = threading.Lock()
            locks.append(lock)
    return locks


def solve_interruptibly(problem: cp.Problem, **arguments: Any) -> None:
    """`problem.solve(**arguments)` on a worker thread; raises what the solve raised, or KeyboardInterrupt
    as soon as Ctrl-C comes (the solve is then abandoned, module docstring).

    The worker takes and releases the variables' locks itself, so that a Ctrl-C at any point of the
    caller (even while the thread starts) leaves them consistent; a worker whose caller was interrupted
    before its solve began does not solve."""
    warnings.filterwarnings("ignore", message="Solution may be inaccurate", module=_WARNED_FROM)
    locks = _variable_locks(problem)
    abandoned = threading.Event()
    failure: list[BaseException] = []

    def work() -> None:
        for lock in locks:  # waits while an abandoned solve of these variables runs
            lock.acquire()
        try:
            if not abandoned.is_set():
                problem.solve(**arguments)
        except BaseException as error:  # handed to the waiting thread, which raises it
            failure.append(error)
        finally:
            for lock in reversed(locks):
                lock.release()

    worker = threading.Thread(target=work, name="specc cvxpy solve", daemon=True)
    try:
        worker.start()
        while worker.is_alive():
            worker.join(_WAIT_S)
    except BaseException:
        abandoned.set()
        raise
    if failure:
        raise failure[0]
