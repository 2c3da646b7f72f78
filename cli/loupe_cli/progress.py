"""Progress display: a bar redrawn in place on a terminal, plain lines elsewhere (logs, CI)."""
from __future__ import annotations

import sys
from typing import TextIO


def format_seconds(seconds: float) -> str:
    """"<1s", "42s", "3m05s", "1h02m"."""
    if 0 < seconds < 1:
        return "<1s"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def render(percent: float, label: str = "", eta_seconds: float | None = None, width: int = 30) -> str:
    """One progress line: `[#######-------]  45.0% features  ETA 12s`."""
    percent = min(100.0, max(0.0, float(percent)))
    filled = int(width * percent / 100.0 + 1e-9)
    line = f"[{'#' * filled}{'-' * (width - filled)}] {percent:5.1f}%"
    if label:
        line += f" {label}"
    if eta_seconds:
        line += f"  ETA {format_seconds(eta_seconds)}"
    return line


class Progress:
    """Shows progress on `stream` (stderr by default).

    On a terminal the line is redrawn in place. Elsewhere a line is written only when the label
    changes or the percentage has moved by at least `step` points, so logs stay short.
    """

    def __init__(self, stream: TextIO | None = None, step: float = 10.0, tty: bool | None = None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.step = step
        self._last: tuple[str, float] | None = None
        self._width = 0

    def update(self, percent: float, label: str = "", eta_seconds: float | None = None) -> None:
        line = render(percent, label, eta_seconds)
        if self.tty:
            self.stream.write("\r" + line.ljust(self._width))
            self._width = max(self._width, len(line))
            self.stream.flush()
            return
        if self._last is None or self._last[0] != label or percent - self._last[1] >= self.step \
                or (percent >= 100.0 > self._last[1]):
            self.stream.write(line + "\n")
            self.stream.flush()
            self._last = (label, percent)

    def close(self) -> None:
        """Ends the in-place line (terminal only)."""
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0
