"""Asking MAVI about an asset: after an upload, and before sending again to a journaled asset
(a stop may have come after the bytes landed).

What an answer means is decided in `decisions.judge`, and what that makes of the file in
`outcomes.follow` (both pure); this module asks and answers with an outcome. It writes
nothing: the worker applies what it returns.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from mavi_uploader.core import outcomes
from mavi_uploader.core.decisions import Judgement, Patience, Verdict, judge, send_again_or_fail
from mavi_uploader.core.first_check import FirstChecks
from mavi_uploader.core.handoffs import Owed
from mavi_uploader.core.outcomes import DEFAULT_BACKOFFS, Outcome
from mavi_uploader.core.records import FileRecord
from mavi_uploader.core.retry import Backoffs
from mavi_uploader.log import get_logger
from mavi_uploader.mavi.client import MaviClient, PermanentError, TransientError
from mavi_uploader.upload.pause import PauseGate

log = get_logger(__name__)


class Confirmer:
    def __init__(
        self,
        client: MaviClient,
        gate: PauseGate,
        *,
        clock: Callable[[], float],
        rng: random.Random,
        backoffs: Backoffs = DEFAULT_BACKOFFS,
        first_checks: FirstChecks | None = None,
    ) -> None:
        self._first_checks = first_checks  # learns from every SUCCESS when the first check is
        self._client = client
        self._gate = gate
        self._clock = clock
        self._rng = rng
        self._backoffs = backoffs

    def poll(self, rec: FileRecord, patience: Patience, *, owed: Owed) -> Outcome:
        """One metadata poll for a confirming row: what follows from the answer (`owed`:
        what a file done now owes)."""
        assert rec.asset_id is not None
        try:
            status = self._client.metadata(rec.asset_id)
        except TransientError as exc:
            now = self._clock()
            return outcomes.poll_later(
                rec, exc.reason, now=now, rng=self._rng, backoffs=self._backoffs
            )
        except PermanentError as exc:
            why = f"metadata check failed: {exc.reason}"
            judgement = send_again_or_fail(why, rec.sends, patience)
            return self._follow(rec, judgement, None, owed)
        self._gate.lift()
        # Every confirming row has one (schema v4 gave it to older rows); be safe regardless.
        accepted_at = rec.accepted_at if rec.accepted_at is not None else rec.updated_at
        judgement = judge(
            status.upload_status,
            status.file_size,
            asset_id=rec.asset_id,
            size=rec.size,
            accepted_at=accepted_at,
            now=self._clock(),
            sends=rec.sends,
            patience=patience,
        )
        if judgement.verdict is Verdict.DONE and self._first_checks is not None:
            took = self._clock() - accepted_at
            self._first_checks.observe(rec.size, took, first_check=rec.confirm_polls == 0)
        return self._follow(rec, judgement, status.upload_status, owed)

    def ask_if_landed(
        self, rec: FileRecord, asset_id: str, patience: Patience
    ) -> tuple[Judgement, str] | None:
        """Before sending to a journaled asset: did our bytes land before a stop? MAVI's
        judged answer and its upload_status, or None when MAVI could not be asked (sending
        again to the same URL is safe: same asset; failing is not)."""
        try:
            status = self._client.metadata(asset_id)
        except (TransientError, PermanentError) as exc:
            log.info("resume check failed; sending", file_id=rec.id, reason=exc.reason)
            return None
        self._gate.lift()
        judgement = judge(
            status.upload_status,
            status.file_size,
            asset_id=asset_id,
            size=rec.size,
            accepted_at=None,
            now=self._clock(),
            sends=rec.sends,
            patience=patience,
        )
        return judgement, status.upload_status

    def _follow(
        self, rec: FileRecord, judgement: Judgement, mavi_status: str | None, owed: Owed
    ) -> Outcome:
        now = self._clock()
        return outcomes.follow(
            rec, judgement, mavi_status, now=now, rng=self._rng, owed=owed, backoffs=self._backoffs
        )
