"""How far a range test, a search or Smith's test got, for the message after Ctrl-C, and the
exits that the errors of these commands end in."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ._common import fail, interrupted


class Where:
    """How far a command got, for the message after Ctrl-C: what it was doing (the step of the
    range test it was in, from the progress callback) and what it had written."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.doing = "before the work started"
        self.written = "nothing was written"
        self.writing = False
        self.sweeping = False
        self.sweeps = self.done = self.total = 0
        self.name = "the range test"

    def at(self, doing: str) -> None:
        """Note what the command does now (outside a range test)."""
        self.doing, self.sweeping = doing, False

    def follow(
        self, update: Callable[[int, int, float, float], None], sweep: Callable[[int], str]
    ) -> Callable[[int, int, float, float], None]:
        """A progress callback that feeds ``update`` and notes the step reached; ``sweep(k)``
        names the ``k``-th range test that reports to it (1 first)."""

        def progress(done: int, total: int, lr: float, loss: float) -> None:
            if not self.sweeping or done <= self.done:
                self.sweeps += 1
                self.name = sweep(self.sweeps)
            self.sweeping = True
            self.done, self.total = done, total
            update(done, total, lr, loss)

        return progress

    def message(self) -> str:
        """Where Ctrl-C stopped the command, and what it left written."""
        if self.writing:
            return f"while the results were written to {self.out}; they may be incomplete"
        doing = self.doing
        if self.sweeping:
            doing = f"in {self.name}, after {self.done} of its {self.total} steps"
        return f"{doing}; {self.written}"


@contextmanager
def exits(where: Where) -> Iterator[None]:
    """Turn what stops the block into the command's exit: bad input (``ValueError``,
    ``TypeError``) into its message and status 2, Ctrl-C (``KeyboardInterrupt``, or the
    search's ``TuneInterrupted``) into where it stopped and status 130."""
    from ..finder import TuneInterrupted

    try:
        yield
    except (ValueError, TypeError) as err:
        raise fail(err) from err
    except TuneInterrupted as err:
        raise interrupted(f"{err.where}; nothing was written") from None
    except KeyboardInterrupt:
        raise interrupted(where.message()) from None
