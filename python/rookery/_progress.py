"""Progress of a long query: a tqdm bar when tqdm is installed (its
notebook widget in Jupyter), otherwise one line on stderr. Nothing shows
for queries done within a second."""

from __future__ import annotations

import os
import sys
import time

SHOW_AFTER_S = 1.0


def _tqdm():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


class Progress:
    """Counts rows as they arrive and, when called (the engine calls it
    every 100 ms while it works), shows rows, files read, images decoded,
    a resumable COPY's images committed and left (with an estimate of
    their time) and the training epoch."""

    def __init__(self, session, enabled: bool):
        self.session = session
        self.enabled = enabled and os.environ.get("ROOKERY_PROGRESS", "1") != "0"
        self.rows = 0
        self.started = time.monotonic()
        self.bar = None
        self.line_shown = False

    def add_rows(self, n: int) -> None:
        self.rows += n

    def _status(self) -> str:
        # The counts of the statement the session runs now, from its plan.
        files, decoded = self.session.scan_progress()
        parts = [f"{files} files read", f"{decoded} images decoded"]
        resume = self.session.resume_progress()
        if resume is not None:
            total, skipped, committed = resume
            left = total - committed
            done_here = committed - skipped
            estimate = ""
            if done_here > 0:
                seconds = (time.monotonic() - self.started) * left / done_here
                estimate = f", about {seconds:.0f} s"
            parts.append(f"{committed} of {total} images committed ({skipped} from before), {left} left{estimate}")
        epoch = self.session.last_epoch()
        if epoch is not None:
            parts.append(f"epoch {epoch[0]}/{epoch[1]} loss {epoch[2]:.4f}")
        return ", ".join(parts)

    def __call__(self) -> None:
        if not self.enabled or time.monotonic() - self.started < SHOW_AFTER_S:
            return
        status = self._status()
        if self.bar is None and not self.line_shown:
            tqdm = _tqdm()
            if tqdm is not None:
                self.bar = tqdm(total=None, unit=" rows", desc="rookery", leave=False)
        if self.bar is not None:
            self.bar.n = self.rows
            self.bar.set_postfix_str(status, refresh=False)
            self.bar.refresh()
        else:
            elapsed = time.monotonic() - self.started
            sys.stderr.write(f"\r\x1b[K{elapsed:.1f} s, {self.rows} rows, {status}  (Ctrl-C stops)")
            sys.stderr.flush()
            self.line_shown = True

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.line_shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.line_shown = False

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
