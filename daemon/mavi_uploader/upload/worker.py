"""The upload worker: claim → check → hash → dedupe → sign → send → confirm → after_upload.

One pass of the loop is `Worker.run_once()`, callable from tests without threads. This is
the IO shell (files, the writer probe, MAVI): each step returns the next record, or an
`Outcome` (`core.outcomes`, pure) that the ledger applies in one journal call.
"""

from __future__ import annotations

import dataclasses
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from mavi_uploader.config.timers import Timers
from mavi_uploader.core import outcomes
from mavi_uploader.core.decisions import Verdict
from mavi_uploader.core.first_check import FirstChecks
from mavi_uploader.core.outcomes import FINISHED, Outcome
from mavi_uploader.core.records import FileRecord, State, display_path, upload_name
from mavi_uploader.core.retry import Backoffs
from mavi_uploader.core.signed_urls import UrlRejections, UrlVerdict, url_reusable
from mavi_uploader.core.writers import Probe, WriterProbe
from mavi_uploader.journal import ContentClaim, SizeClaim, Work
from mavi_uploader.journal import JournalStore as Journal
from mavi_uploader.log import get_logger
from mavi_uploader.mavi.client import (
    AuthProblem,
    MaviClient,
    PermanentError,
    SignedUrlRejected,
    TransientError,
)
from mavi_uploader.mavi.multipart import FileShrank
from mavi_uploader.mavi.ratelimit import BandwidthLimiter, Stopped
from mavi_uploader.upload.aftercare import Aftercare
from mavi_uploader.upload.checks import (
    CHANGED_SINCE_QUEUED,
    FileChanged,
    WriterActive,
    check_unchanged,
    sight_if_rewritten,
)
from mavi_uploader.upload.confirmation import Confirmer
from mavi_uploader.upload.hashing import sha256_file
from mavi_uploader.upload.ledger import Ledger
from mavi_uploader.upload.pause import PauseGate
from mavi_uploader.upload.progress import LeaseLost, Pacing
from mavi_uploader.upload.settings import WorkerSettings

log = get_logger(__name__)


class Worker:
    def __init__(
        self,
        name: str,
        journal: Journal,
        client: MaviClient,
        gate: PauseGate,
        settings: WorkerSettings,
        stop: threading.Event,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        on_claim: Callable[[], None] | None = None,
        bandwidth: BandwidthLimiter | None = None,
        probe: Probe | None = None,
        lease_seconds: float = Timers.lease,  # renewed every `progress_every` while bytes move
        progress_every: float = Timers.progress_every,
        retry_first: float = Timers.retry_first,
        confirm_first: float = Timers.confirm_first,
        work: Work = Work.ANY,
        first_checks: FirstChecks | None = None,
    ) -> None:
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{name}"
        self._lease_seconds = lease_seconds
        self._probe = probe or WriterProbe()
        self._on_claim = on_claim
        self._bandwidth = bandwidth or BandwidthLimiter(0)
        self._journal, self._client, self._gate = journal, client, gate
        self.settings = settings
        self._stop = stop
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not crypto
        self._backoffs = Backoffs.starting_at(retry_first, confirm_first)
        self._ledger = Ledger(journal, self.owner, stop)
        self._pacing = Pacing(
            self._ledger, stop, self._bandwidth, clock, lease_seconds, progress_every
        )
        self._confirmer = Confirmer(
            client, gate, clock=clock, rng=self._rng, backoffs=self._backoffs,
            first_checks=first_checks,
        )  # fmt: skip
        self._stranded: FileRecord | None = None
        self._work, self._first_checks = work, first_checks

    def run_once(self) -> bool:
        """Claim and work on one file; False when there was nothing to do (or paused)."""
        if self._stranded is not None:
            # Our last file could not be handed back (journal write failed, e.g. disk full).
            stranded, self._stranded = self._stranded, None
            self._release(stranded, "handed back after a journal write failure")
        if not self._gate.admit():
            return False
        work = self._work
        if self._bandwidth.holding():  # a bandwidth `pause` window: no upload starts
            if work is Work.UPLOADS:
                return False
            work = Work.CONFIRMATIONS
        record = self._journal.claim(
            self.owner, self._lease_seconds, order=self.settings.order, work=work
        )
        if record is None:
            self._gate.unused()  # a pause probe it had no call for goes to the next worker
            return False
        if self._on_claim is not None:
            self._on_claim()  # there may be more: let an idle worker look too
        log.info("claimed", file_id=record.id, path=display_path(record.path), state=record.state)
        try:
            if record.state is State.CONFIRMING:
                self._confirm(record)
            else:
                self._upload(record)
        except Stopped:
            self._release(record, "daemon stopping; will resume")
        except LeaseLost:
            # The row is someone else's now: touching it would undo their work. Out of touch
            # with a fleet's journal, it may still be ours: handed back (if so) once it answers.
            log.warning("lease lost; leaving the file to its new worker", file_id=record.id)
            self._stranded = record if self._ledger.out_of_touch else None
        except AuthProblem as exc:
            self._gate.trip(exc.reason)
            self._release(record, f"paused: {exc.reason}")
        except Exception as exc:
            # A bug or a failing journal must not kill the worker or strand the row.
            log.exception("unexpected error", file_id=record.id, path=display_path(record.path))
            why = f"internal error: {type(exc).__name__}: {exc}"
            try:
                self._conclude(record, self._retry(record, why))
            except Exception:
                self._stranded = record
                raise
        return True

    # ---- the upload path ------------------------------------------------------------

    def _upload(self, rec: FileRecord) -> None:
        """Check, hash, dedupe, then send and confirm; a step that ends the attempt early
        (or fails) gives the outcome to apply."""
        try:
            outcome = self._prepare(rec)
            if outcome is None:
                self._send(rec)
                return
        except FileNotFoundError:
            outcome = outcomes.vanished("file disappeared before its upload finished")
        except WriterActive as exc:  # `list` shows who holds it while it settles again
            outcome = self._settle_again(rec, str(exc), last_error=str(exc))
        except (FileChanged, FileShrank) as exc:
            outcome = self._settle_again(rec, str(exc))
        except PermissionError as exc:
            # A person can fix permissions at any time: keep trying, never give up.
            why = f"cannot read the file: {exc.strerror} (check permissions)"
            outcome = self._retry(rec, why, counts=False)
        except OSError as exc:
            outcome = self._retry(rec, f"cannot read the file: {exc}", counts=False)
        except PermanentError as exc:
            outcome = outcomes.failed(exc.reason)
        except TransientError as exc:
            outcome = self._retry(rec, exc.reason, counts=not exc.network)
        self._conclude(rec, outcome)

    def _prepare(self, rec: FileRecord) -> Outcome | None:
        """Check the file, and dedupe: None when it is ours to send, else what becomes of
        it. It is hashed first only if another file of its size might be a copy; else its
        hash comes from the chunks sent, and the file is read once."""
        self._check_unchanged(rec)
        if rec.size == 0:
            return outcomes.empty_file()
        if rec.sha256 is None and self._hash_as_sent(rec):
            return None
        sha = rec.sha256 or sha256_file(Path(rec.path), self._pacing.hook(rec, False))
        self._check_unchanged(rec)
        return self._dedupe(rec, sha)

    def _hash_as_sent(self, rec: FileRecord) -> bool:
        """Without dedupe, always; with it, when no other file has its size: the row then
        holds every content of that size until its hash is known (copies wait for it)."""
        if not self.settings.dedupe:
            return True
        assert rec.size is not None
        claim = self._journal.claim_size(rec.id, rec.size, self.owner)
        if claim is SizeClaim.LOST:
            raise LeaseLost
        return claim is SizeClaim.CLAIMED

    def _check_unchanged(
        self, rec: FileRecord, held: BinaryIO | None = None, why: str = CHANGED_SINCE_QUEUED
    ) -> None:
        check_unchanged(rec, self._probe, held, why)

    def _dedupe(self, rec: FileRecord, sha: str) -> Outcome | None:
        """Record the hash; with dedupe, claim the content in the same transaction, so of
        two copies in flight exactly one uploads, whichever hashed first. None when this
        copy is the one to send, else what becomes of it."""
        if not self.settings.dedupe:
            if not self._ledger.note(rec, sha256=sha):
                raise LeaseLost
            return None
        max_sends = self.settings.patience.max_resends
        claim, twin = self._journal.claim_content(rec.id, sha, self.owner, max_sends=max_sends)
        if claim is ContentClaim.LOST:
            raise LeaseLost
        if claim is ContentClaim.CLAIMED:
            return None
        assert twin is not None
        if claim is ContentClaim.IN_FLIGHT:
            return outcomes.wait_for_twin(twin, sha)
        if claim is ContentClaim.SPENT:
            return outcomes.content_spent(twin, sha)
        return outcomes.duplicate(twin, sha, owed=self.settings.owed())

    def _send(self, rec: FileRecord) -> None:
        # Held open from before the first byte to after the last: the checks then follow the
        # file we hashed even if it is renamed or deleted mid-upload (its bytes all went out).
        with open(rec.path, "rb") as held:
            self._check_unchanged(rec, held)
            transferred = self._transfer(rec, held)
            if transferred is None:
                return
            sent, sha = transferred
            self._check_unchanged(sent, held, "file changed during its upload; sending again")
        hashed = {"sha256": sha} if sent.sha256 is None else {}
        why = f"storage accepted {sent.size} bytes"
        self._accept(sent, why, bytes_sent=sent.size, **hashed)

    def _transfer(self, rec: FileRecord, held: BinaryIO) -> tuple[FileRecord, str | None] | None:
        """Sign if need be and send the bytes: the row after a complete upload and, for a file
        not hashed before, the sha256 of what was sent. None when there was nothing to send
        (MAVI's answer about the journaled asset settled it)."""
        rejections = UrlRejections()
        while True:
            if rec.asset_id is not None:
                resumed = self._resume(rec, rec.asset_id, held)
                if resumed is None:
                    return None
                rec = resumed
            rec = self._ready_to_send(rec, held)
            assert rec.size is not None and rec.signed_url is not None
            try:
                sha = self._client.upload(
                    rec.signed_url,
                    held,
                    rec.size,
                    upload_name(rec.name),
                    self._pacing.hook(rec, True),
                    chunk_size=self._bandwidth.chunk_size,
                    hash_sent=rec.sha256 is None,
                )
            except SignedUrlRejected as exc:
                rejections = rejections.after(expired=exc.expired)
                if rejections.verdict is UrlVerdict.FAIL:
                    raise PermanentError(rejections.explain(exc.reason)) from None
                if rejections.verdict is UrlVerdict.RETRY_LATER:
                    raise TransientError(rejections.explain(exc.reason)) from None
                log.warning("signing again", file_id=rec.id, reason=exc.reason)
                rec = self._advance(rec, outcomes.forget_asset(f"signing again: {exc.reason}"))
                continue
            return rec, sha

    def _resume(self, rec: FileRecord, asset_id: str, held: BinaryIO) -> FileRecord | None:
        """A journaled asset (a stop, a retry): its bytes may have landed even if its URL is
        too old to reuse, so MAVI is asked before anything is sent again. The row to send
        from, or None when the answer settled the file (done, confirming, failed)."""
        answer = self._confirmer.ask_if_landed(rec, asset_id, self.settings.patience)
        if answer is None:
            return rec  # MAVI could not be asked: sending to the same asset is safe
        judgement, mavi_status = answer
        if judgement.verdict is Verdict.SEND:
            return self._advance(rec, outcomes.send_to_same_asset(judgement.reason))
        if judgement.verdict is Verdict.SEND_AGAIN:
            return self._advance(rec, outcomes.forget_asset(judgement.reason))
        if rec.sha256 is None:  # sent by a run that stopped before the hash was known
            sha = sha256_file(held, self._pacing.hook(rec, False))
            if not self._ledger.note(rec, sha256=sha):
                raise LeaseLost
            rec = dataclasses.replace(rec, sha256=sha)
        if judgement.verdict is Verdict.CONFIRM:
            self._accept(rec, judgement.reason)
        else:
            owed, now = self.settings.owed(), self._clock()
            answered = outcomes.follow(
                rec, judgement, mavi_status, now=now, rng=self._rng, owed=owed,
                backoffs=self._backoffs,
            )  # fmt: skip
            self._conclude(rec, answered)
        return None

    def _ready_to_send(self, rec: FileRecord, held: BinaryIO) -> FileRecord:
        """The row with a URL to send to: the journaled one if it stays valid for a send to
        start, else a new asset, journaled before any byte moves; the send's start noted."""
        if not url_reusable(rec, self._clock()):
            signed = self._client.sign(upload_name(rec.name))
            self._gate.lift()
            journaled = outcomes.signed(signed.asset_id, signed.url, signed.expires_at)
            rec = self._advance(rec, journaled)
        self._check_unchanged(rec, held)  # signing may have waited for a rate slot
        started = self._clock()
        if not self._ledger.note(rec, upload_started_at=started, progress_at=started, bytes_sent=0):
            raise LeaseLost
        return rec

    # ---- confirmation and the ends of an attempt ---------------------------------------

    def _accept(self, rec: FileRecord, why: str, **fields: Any) -> None:
        """Storage took a complete upload of `rec`: count it. MAVI is asked once it had the
        time recent assets of its size needed (the confirmer's claim), or, without
        `first_checks`, at once."""
        wait = self._first_checks.delay(rec.size) if self._first_checks else None
        accepted = outcomes.accepted(rec, why, now=self._clock(), first_check_in=wait, **fields)
        confirming = self._ledger.apply(rec, accepted)
        if confirming is not None and wait is None:
            self._confirm(confirming)
        elif confirming is not None and self._on_claim is not None:
            self._on_claim()  # the confirmer sets its alarm for it

    def _confirm(self, rec: FileRecord) -> None:
        """One metadata poll for a confirming row, and its consequence."""
        settings = self.settings
        self._conclude(rec, self._confirmer.poll(rec, settings.patience, owed=settings.owed()))

    def _settle_again(self, rec: FileRecord, why: str, **fields: Any) -> Outcome:
        """The file changed under us (or is still being written): settle it again as it is
        now."""
        try:
            st = os.stat(rec.path)
        except FileNotFoundError:
            return outcomes.settle_again(why, None, now=self._clock())
        return outcomes.settle_again(why, (st.st_size, st.st_mtime_ns), now=self._clock(), **fields)

    def _retry(self, rec: FileRecord, why: str, *, counts: bool = True) -> Outcome:
        """A failed step's outcome, on the row as the journal has it (it may be confirming
        by now): try again later, or give up."""
        current = self._journal.get(rec.id) or rec
        return outcomes.retry_later(
            current, why, counts=counts, now=self._clock(), rng=self._rng, backoffs=self._backoffs
        )

    def _release(self, rec: FileRecord, why: str) -> None:
        """Give the row back, if it is still ours, without counting an attempt."""
        current = self._journal.get(rec.id)
        outcome = outcomes.release(current, self.owner, why)
        if current is not None and outcome is not None:
            self._ledger.apply(current, outcome)

    def _advance(self, rec: FileRecord, outcome: Outcome) -> FileRecord:
        """Apply an outcome the upload goes on from: the row as written (LeaseLost when it
        is not ours any more)."""
        applied = self._ledger.apply(rec, outcome)
        if applied is None:
            raise LeaseLost
        return applied

    def _conclude(self, rec: FileRecord, outcome: Outcome) -> None:
        """Apply an outcome that ends this turn; a file done or duplicate now gets its owed
        after_upload (owed from the same commit), then a version written meanwhile is seen."""
        applied = self._ledger.apply(rec, outcome)
        if applied is not None and outcome.state in FINISHED:
            self._aftercare().apply(applied)
            sight_if_rewritten(self._journal, applied)

    def _aftercare(self) -> Aftercare:
        settings = self.settings
        return Aftercare(self._journal, settings.after_upload, settings.done_dir, self._probe)


__all__ = ["Worker", "WorkerSettings"]
