"""A dependency-free progress bar on stderr: redrawn in place on a terminal, a few plain lines otherwise."""
from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """`with Progress(n, desc=...) as bar: ... bar.update(1)`; `bar.write(line)` prints above the bar."""

    def __init__(self, total: int, *, desc: str = "", enabled: bool = True, stream: TextIO | None = None) -> None:
        self.total, self.desc, self.enabled = total, desc, enabled
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.done = 0
        self.start = time.perf_counter()
        self.last_line = -1.0

    def _line(self) -> str:
        elapsed = time.perf_counter() - self.start
        width = 24
        filled = int(width * self.done / max(self.total, 1))
        rate = f"{self.done / elapsed:.2f}/s" if elapsed > 0 and self.done else "–/s"
        return f"{self.desc} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {elapsed:.1f}s {rate}"

    def update(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r\033[K" + self._line())
            self.stream.flush()
        elif time.perf_counter() - self.last_line > 10 or self.done == self.total:   # logs: a line per 10 s
            self.last_line = time.perf_counter()
            self.stream.write(self._line() + "\n")
            self.stream.flush()

    def write(self, line: str) -> None:
        if self.tty and self.enabled:
            self.stream.write("\r\033[K")
        self.stream.write(line + "\n")
        if self.tty and self.enabled:
            self.stream.write(self._line())
        self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
