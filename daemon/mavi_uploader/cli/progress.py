"""Live progress bars on a terminal (rich), fed from the journal's upload progress.

rich draws the bars at the bottom of the screen and prints log lines above them, which a
hand-written ANSI loop would have to reimplement; under a service manager none of this runs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
)
from rich.text import Text


class _ConsoleStream:
    """A text stream for structlog that prints whole lines through the rich console."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._buffer = ""

    def write(self, text: str) -> int:
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            self._console.print(Text.from_ansi(line), soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


class UploadBars:
    """One bar per file in flight; `update()` takes `core.reporting.upload_progress` documents."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.log_stream = _ConsoleStream(self.console)
        self._progress = Progress(
            TextColumn("{task.description}", style="bold"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            DownloadColumn(),
            # Speed and ETA come from the worker's own measurement (core.reporting.upload_progress):
            # rich's estimators need many samples and the journal gives one every 2 s.
            TextColumn("{task.fields[speed]:>12}"),
            TextColumn("{task.fields[eta]:>8}"),
            console=self.console,
            transient=False,
        )
        self._tasks: dict[int, TaskID] = {}

    def __enter__(self) -> UploadBars:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def update(self, uploads: Sequence[dict[str, Any]]) -> None:
        current = {u["id"]: u for u in uploads}
        for file_id in [f for f in self._tasks if f not in current]:
            self._progress.remove_task(self._tasks.pop(file_id))
        for file_id, upload in current.items():
            task = self._tasks.get(file_id)
            if task is None:
                name = os.path.basename(upload["path"])
                task = self._progress.add_task(name, total=upload["size"] or None, speed="", eta="")
                self._tasks[file_id] = task
            speed = upload.get("speed_bytes_per_second")
            eta = upload.get("eta_seconds")
            self._progress.update(
                task,
                completed=upload["bytes_sent"],
                speed=f"{speed / 1e6:.1f} MB/s" if speed else "",
                eta=f"{eta // 60}:{eta % 60:02d} left" if eta is not None else "",
            )
        self._progress.refresh()

    def finish(self, file_id: int, label: str, size: int) -> None:
        """Show a file as finished, with a final word (for `enqueue --wait`)."""
        task = self._tasks.get(file_id)
        if task is None:
            task = self._progress.add_task(label, total=size or None, speed="", eta="")
            self._tasks[file_id] = task
        self._progress.update(task, completed=size, description=label)
