"""Progress for people: a bar that redraws itself in a terminal, plain lines otherwise (a log
file, a scheduler's capture), so a nightly job's output stays readable."""

from __future__ import annotations

import shutil
from typing import TextIO

from recordings_client.fetch import ALREADY, FETCHED, SKIPPED, HourOutcome

QUIET_OUTCOMES = frozenset({FETCHED, ALREADY, SKIPPED})  # a bar's redraw says enough for these


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


class Progress:
    """Shows each hour as it ends and the bytes of the one in flight."""

    def __init__(self, stream: TextIO, total_hours: int, *, tty: bool | None = None) -> None:
        self.stream = stream
        self.total = total_hours
        self.tty = stream.isatty() if tty is None else tty
        self.done = 0
        self.bytes = 0
        self.waiting = ""

    def hour(self, outcome: HourOutcome) -> None:
        self.done += 1
        self.waiting = ""
        text = f"{outcome.utc_day} {outcome.hour:02d}:00 {outcome.outcome}"
        if outcome.detail:
            text += f": {outcome.detail}"
        if not self.tty:
            print(f"[{self.done}/{self.total}] {text}", file=self.stream, flush=True)
            return
        if outcome.outcome not in QUIET_OUTCOMES:
            self._clear()
            print(text, file=self.stream, flush=True)
        self._draw()

    def received(self, count: int) -> None:
        self.bytes += count
        if self.tty:
            self._draw()

    def wait(self, seconds: float) -> None:
        """The client sleeps on the limit's Retry-After: say so rather than look stuck."""
        self.waiting = f"waiting {seconds:.0f} s for the download limit"
        if self.tty:
            self._draw()
        else:
            print(self.waiting, file=self.stream, flush=True)

    def finish(self) -> None:
        if self.tty:
            self._draw()
            print(file=self.stream, flush=True)

    def _clear(self) -> None:
        print("\r\033[K", end="", file=self.stream)

    def _draw(self) -> None:
        width = max(10, min(40, shutil.get_terminal_size((80, 20)).columns - 50))
        filled = width * self.done // max(1, self.total)
        bar = "#" * filled + "-" * (width - filled)
        line = f"[{bar}] {self.done}/{self.total} hours, {_size(self.bytes)}"
        if self.waiting:
            line += f", {self.waiting}"
        self._clear()
        print(line, end="", file=self.stream, flush=True)
