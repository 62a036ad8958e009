"""What a worker does with the files it takes: the settings a SIGHUP may change."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mavi_uploader.config.model import AfterUpload, UploadOrder
from mavi_uploader.core.decisions import Patience
from mavi_uploader.core.handoffs import HandoffKind, Owed


@dataclass(frozen=True)
class WorkerSettings:
    dedupe: bool = True
    after_upload: AfterUpload = AfterUpload.KEEP
    done_dir: Path | None = None
    patience: Patience = field(default_factory=Patience)
    order: UploadOrder = UploadOrder.FIFO  # which due file a claim takes (the journal's SQL)
    handoffs: tuple[HandoffKind, ...] = ()  # owed by every file finishing (on_done, webhook)

    def owed(self) -> Owed:
        """What a file finishing now owes, written with the move that finishes it."""
        return Owed(self.after_upload is not AfterUpload.KEEP, self.handoffs)
