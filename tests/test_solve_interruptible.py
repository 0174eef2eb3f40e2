"""A cvxpy solve that Ctrl-C stops at once (specc.solve.interruptible).

The solver is a stub that blocks on a threading.Event, as a native solve that never returns to
Python would: the tests wait on events, never on the clock, so that a slow or fast machine gives
the same answer.
"""

from __future__ import annotations

import os
import signal
import threading
import warnings
from collections.abc import Callable, Iterator

import cvxpy as cp
import pytest

from specc.solve.interruptible import solve_interruptibly

# A safety bound only: a stub released by nothing gives up after it, so that a broken mechanism fails
# the test (its solve then ends before the interrupt reached the caller) instead of hanging it.
_NEVER_S = 30.0
# An exception on a solve's thread (a lock released twice) fails the test that caused it.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")


class BlockedSolve:
    """A `problem.solve` stand-in that says when it started and returns only when released.

    `then`: what it does once started (a Ctrl-C); `before_end`: what it does once released (a warning)."""

    def __init__(self, then: Callable[[], None] = lambda: None) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.ended = threading.Event()
        self.thread: threading.Thread | None = None
        self.then = then
        self.before_end: Callable[[], None] = lambda: None

    def __call__(self, **arguments: object) -> None:
        self.thread = threading.current_thread()
        self.started.set()
        self.then()
        self.release.wait(_NEVER_S)
        self.before_end()
        self.ended.set()

    def finish(self) -> None:
        """Release the solve and wait for its thread (and so for the locks it holds)."""
        self.release.set()
        if self.thread is not None:
            self.thread.join(_NEVER_S)


def _ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def _problem(variable: cp.Variable, solve: Callable[..., None]) -> cp.Problem:
    problem = cp.Problem(cp.Minimize(cp.sum_squares(variable)))
    problem.solve = solve  # type: ignore[method-assign]
    return problem


@pytest.fixture
def blocked() -> Iterator[list[BlockedSolve]]:
    """Stubs to release after the test, whatever it asserted (an abandoned solve holds its variables' locks)."""
    made: list[BlockedSolve] = []
    yield made
    for solve in made:
        solve.finish()


def test_ctrl_c_during_a_solve_that_never_returns_to_python_raises_at_once(blocked: list[BlockedSolve]) -> None:
    """CLARABEL returns to Python only at its end; the solve runs on a worker thread so that Ctrl-C (SIGINT)
    raises KeyboardInterrupt in the caller while the solve still runs (audit a2 F11)."""
    solve = BlockedSolve(then=_ctrl_c)  # Ctrl-C once the solve is under way
    blocked.append(solve)
    with pytest.raises(KeyboardInterrupt):
        solve_interruptibly(_problem(cp.Variable(3), solve))
    assert solve.started.is_set() and not solve.ended.is_set()  # the interrupt came before the solve ended
    assert solve.thread is not threading.main_thread()


def test_a_solve_sharing_no_variable_with_an_abandoned_one_does_not_wait_for_it(
    blocked: list[BlockedSolve],
) -> None:
    """One lock for the whole process made every later solve, of any case, wait for an abandoned one (minutes
    of native CLARABEL); the wait is per program: only solves of the abandoned solve's variables take turns."""
    shared = cp.Variable(3)
    abandoned = BlockedSolve(then=_ctrl_c)
    blocked.append(abandoned)
    with pytest.raises(KeyboardInterrupt):
        solve_interruptibly(_problem(shared, abandoned))

    other_case = threading.Event()
    solve_interruptibly(_problem(cp.Variable(3), lambda **arguments: other_case.set()))
    assert other_case.is_set() and not abandoned.ended.is_set()

    same_program = BlockedSolve()
    blocked.append(same_program)
    waiting = threading.Thread(target=solve_interruptibly, args=(_problem(shared, same_program),), daemon=True)
    waiting.start()
    assert not same_program.started.wait(0.5)  # it waits for the abandoned solve of its variable
    abandoned.finish()
    assert same_program.started.wait(_NEVER_S) and abandoned.ended.is_set()
    same_program.finish()
    waiting.join(_NEVER_S)
    assert not waiting.is_alive()


def test_a_failure_of_the_solve_is_raised_in_the_caller() -> None:
    def failing(**arguments: object) -> None:
        raise cp.SolverError("Solver 'CLARABEL' failed.")

    variable = cp.Variable(2)
    with pytest.raises(cp.SolverError, match="CLARABEL' failed"):
        solve_interruptibly(_problem(variable, failing))
    # its locks were released: the next solve of the variable runs
    solve_interruptibly(_problem(variable, lambda **arguments: None))


def test_cvxpys_inaccuracy_warning_stays_silent_after_an_interrupt(blocked: list[BlockedSolve]) -> None:
    """The warning filter was put back when Ctrl-C left the wait, while the abandoned solve still ran: its
    'Solution may be inaccurate' printed after 'interrupted: no plan written' (review Q4)."""

    def warn_as_cvxpy() -> None:
        """The warning as cvxpy gives it: from the solve's caller (`cvxpy.utilities.warn`), or from its own module."""
        for module in ("specc.solve.interruptible", "cvxpy.problems.problem"):
            warnings.warn_explicit(
                "Solution may be inaccurate. Try another solver, adjusting the solver settings, or solve with "
                "verbose=True for more information.",
                UserWarning, "problem.py", 1446, module=module,
            )

    solve = BlockedSolve(then=_ctrl_c)
    blocked.append(solve)
    with warnings.catch_warnings(record=True) as shown:
        with pytest.raises(KeyboardInterrupt):
            solve_interruptibly(_problem(cp.Variable(3), solve))
        solve.before_end = warn_as_cvxpy
        solve.finish()  # the abandoned solve ends and warns, as CLARABEL's did
        warn_as_cvxpy()
    assert not [warning for warning in shown if "may be inaccurate" in str(warning.message)]
