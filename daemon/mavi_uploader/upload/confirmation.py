"""Asking MAVI about an asset and acting on the answer: after an upload, and before sending
again to a journaled asset (a stop may have come after the bytes landed).

What an answer means is decided in `decisions.judge` (pure); this module asks and applies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mavi_uploader.core.decisions import Judgement, Patience, Verdict, judge, send_again_or_fail
from mavi_uploader.core.records import FileRecord, State
from mavi_uploader.log import get_logger
from mavi_uploader.mavi.client import MaviClient, PermanentError, TransientError
from mavi_uploader.upload.ledger import Ledger
from mavi_uploader.upload.pause import PauseGate

log = get_logger(__name__)

# Marks a file done (after_upload owed in the same commit): the worker's.
Finish = Callable[[FileRecord, State, str], None]


class Confirmer:
    def __init__(
        self,
        client: MaviClient,
        gate: PauseGate,
        ledger: Ledger,
        finish: Finish,
        *,
        clock: Callable[[], float],
        patience: Patience,
    ) -> None:
        self._client = client
        self._gate = gate
        self._ledger = ledger
        self._finish = finish
        self._clock = clock
        self.patience = patience

    def accepted(self, rec: FileRecord, why: str, **fields: Any) -> None:
        """Storage took a complete upload of `rec`: count it, then ask MAVI at once."""
        confirming = self._ledger.move(
            rec,
            State.CONFIRMING,
            why,
            sends=rec.sends + 1,
            accepted_at=self._clock(),
            mavi_status=None,
            mavi_status_since=None,
            confirm_polls=0,
            next_attempt_at=None,
            **fields,
        )
        if confirming is not None:
            self.confirm(confirming)

    def confirm(self, rec: FileRecord) -> None:
        """One metadata poll for a confirming row, and its consequence."""
        assert rec.asset_id is not None
        try:
            status = self._client.metadata(rec.asset_id)
        except TransientError as exc:
            self._ledger.poll_later(rec, exc.reason)
            return
        except PermanentError as exc:
            why = f"metadata check failed: {exc.reason}"
            self._apply(rec, send_again_or_fail(why, rec.sends, self.patience), None)
            return
        self._gate.lift()
        # Every confirming row has one (schema v4 gave it to older rows); be safe regardless.
        accepted_at = rec.accepted_at if rec.accepted_at is not None else rec.updated_at
        outcome = judge(
            status.upload_status,
            status.file_size,
            asset_id=rec.asset_id,
            size=rec.size,
            accepted_at=accepted_at,
            now=self._clock(),
            sends=rec.sends,
            patience=self.patience,
        )
        self._apply(rec, outcome, status.upload_status)

    def landed_before(self, rec: FileRecord, asset_id: str) -> Verdict | None:
        """Before sending to a journaled asset: did our bytes land before a stop?

        Returns SEND (send to this asset) or SEND_AGAIN (sign anew) for the caller to act on;
        any other verdict has been applied (done, confirming, failed). None when MAVI could
        not be asked: sending again to the same URL is safe (same asset), failing is not.
        """
        try:
            status = self._client.metadata(asset_id)
        except (TransientError, PermanentError) as exc:
            log.info("resume check failed; sending", file_id=rec.id, reason=exc.reason)
            return None
        self._gate.lift()
        outcome = judge(
            status.upload_status,
            status.file_size,
            asset_id=asset_id,
            size=rec.size,
            accepted_at=None,
            now=self._clock(),
            sends=rec.sends,
            patience=self.patience,
        )
        if outcome.verdict is Verdict.CONFIRM:
            self.accepted(rec, outcome.reason)
        elif outcome.verdict is Verdict.SEND:
            self._ledger.move(rec, State.UPLOADING, f"{outcome.reason}; sending")
        elif outcome.verdict is not Verdict.SEND_AGAIN:
            self._apply(rec, outcome, status.upload_status)
        return outcome.verdict

    def _apply(self, rec: FileRecord, outcome: Judgement, mavi_status: str | None) -> None:
        if outcome.verdict is Verdict.DONE:
            self._finish(rec, State.DONE, outcome.reason)
        elif outcome.verdict is Verdict.CONFIRM:
            self._ledger.poll_later(rec, outcome.reason, mavi_status=mavi_status)
        elif outcome.verdict is Verdict.FAIL:
            self._ledger.move(rec, State.FAILED, outcome.reason, last_error=outcome.reason)
        else:
            self._ledger.upload_again(rec, outcome.reason)
