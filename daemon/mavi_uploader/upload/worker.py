"""The upload worker: claim → hash → dedupe → sign → upload → confirm → after_upload.

One pass of the loop is `Worker.run_once()`, callable from tests without threads.
"""

from __future__ import annotations

import os
import random
import socket
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from mavi_uploader.config.settings import AfterUpload
from mavi_uploader.core.decisions import Patience, Verdict
from mavi_uploader.core.records import (
    EMPTY_FILE,
    NO_ASSET,
    FileRecord,
    Observation,
    State,
    display_path,
    upload_name,
)
from mavi_uploader.journal import ContentClaim
from mavi_uploader.journal import JournalStore as Journal
from mavi_uploader.log import get_logger
from mavi_uploader.mavi.client import (
    AuthProblem,
    MaviClient,
    MaviError,
    PermanentError,
    SignedUpload,
    SignedUrlRejected,
    TransientError,
)
from mavi_uploader.mavi.multipart import FileShrank
from mavi_uploader.mavi.ratelimit import BandwidthLimiter, Stopped
from mavi_uploader.upload.aftercare import Aftercare
from mavi_uploader.upload.confirmation import Confirmer
from mavi_uploader.upload.hashing import sha256_file
from mavi_uploader.upload.ledger import Ledger
from mavi_uploader.upload.pause import PauseGate
from mavi_uploader.watch.writers import Probe, WriterProbe

log = get_logger(__name__)

# Renewed every PROGRESS_EVERY_SECONDS while bytes move; longer than any limiter wait.
LEASE_SECONDS = 900.0
PROGRESS_EVERY_SECONDS = 2.0
# A journaled signed URL is reused while it stays valid this long: storage checks expiry
# when a request starts (MAVI_API.md), so a send only needs to start in time; this covers
# the wait for a rate slot. Asking for the whole send's duration would never reuse the URL
# of a file that takes longer to send than a URL lives, and sign anew on every retry.
URL_START_MARGIN_SECONDS = 60.0
MAX_EXPIRED_URLS = 3
CHANGED_SINCE_QUEUED = "file changed since it was queued"


class FileChanged(Exception):
    """The file on disk no longer matches what was queued or sent."""


class WriterActive(FileChanged):
    """A process holds the file open for writing: it may not be finished (a paused camera)."""


class LeaseLost(Exception):
    """Another worker took our file (our lease ran out, e.g. the machine slept): stop at once."""


@dataclass(frozen=True)
class WorkerSettings:
    dedupe: bool = True
    after_upload: AfterUpload = AfterUpload.KEEP
    done_dir: Path | None = None
    patience: Patience = field(default_factory=Patience)


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
    ) -> None:
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{name}"
        self._probe = probe or WriterProbe()
        self._on_claim = on_claim
        self._bandwidth = bandwidth or BandwidthLimiter(0)
        self._journal = journal
        self._client = client
        self._gate = gate
        self.settings = settings
        self._stop = stop
        self._clock = clock
        self._ledger = Ledger(journal, self.owner, clock=clock, rng=rng)
        self._confirmer = Confirmer(
            client, gate, self._ledger, self._finish, clock=clock, patience=settings.patience
        )
        self._stranded: FileRecord | None = None

    def run_once(self) -> bool:
        """Claim and work on one file; False when there was nothing to do (or paused)."""
        if self._stranded is not None:
            # Our last file could not be handed back (journal write failed, e.g. disk full).
            stranded, self._stranded = self._stranded, None
            self._ledger.release(stranded, "handed back after a journal write failure")
        if not self._gate.admit():
            return False
        record = self._journal.claim(self.owner, LEASE_SECONDS)
        if record is None:
            return False
        if self._on_claim is not None:
            self._on_claim()  # there may be more: let an idle worker look too
        log.info("claimed", file_id=record.id, path=display_path(record.path), state=record.state)
        try:
            if record.state is State.CONFIRMING:
                self._confirmer.confirm(record)
            else:
                self._upload(record)
        except Stopped:
            self._ledger.release(record, "daemon stopping; will resume")
        except LeaseLost:
            # The row is someone else's now: touching it would undo their work.
            log.warning("lease lost; leaving the file to its new worker", file_id=record.id)
        except AuthProblem as exc:
            self._gate.trip(exc.reason)
            self._ledger.release(record, f"paused: {exc.reason}")
        except Exception as exc:
            # A bug or a failing journal must not kill the worker or strand the row.
            log.exception("unexpected error", file_id=record.id, path=display_path(record.path))
            try:
                self._ledger.retry_later(record, f"internal error: {type(exc).__name__}: {exc}")
            except Exception:
                self._stranded = record
                raise
        return True

    # ---- the upload path ------------------------------------------------------------

    def _upload(self, rec: FileRecord) -> None:
        path = Path(rec.path)
        try:
            self._check_unchanged(rec)
            if rec.size == 0:
                self._ledger.move(rec, State.SKIPPED, "empty file (0 bytes)", last_error=EMPTY_FILE)
                return
            sha = rec.sha256 or sha256_file(path, self._progress_hook(rec, record_bytes=False))
            self._check_unchanged(rec)
            if self._deduplicated(rec, sha):
                return
            self._send(rec, path)
        except FileNotFoundError:
            self._ledger.move(rec, State.VANISHED, "file disappeared before its upload finished")
        except WriterActive as exc:  # `list` shows who holds it while it settles again
            self._ledger.back_to_settling(rec, str(exc), last_error=str(exc))
        except (FileChanged, FileShrank) as exc:
            self._ledger.back_to_settling(rec, str(exc))
        except PermissionError as exc:
            # A person can fix permissions at any time: keep trying, never give up.
            why = f"cannot read the file: {exc.strerror} (check permissions)"
            self._ledger.retry_later(rec, why, counts=False)
        except OSError as exc:
            self._ledger.retry_later(rec, f"cannot read the file: {exc}", counts=False)
        except PermanentError as exc:
            self._ledger.move(rec, State.FAILED, exc.reason, last_error=exc.reason)
        except TransientError as exc:
            self._ledger.retry_later(rec, exc.reason, counts=not exc.network)

    def _check_unchanged(
        self, rec: FileRecord, held: BinaryIO | None = None, why: str = CHANGED_SINCE_QUEUED
    ) -> None:
        """The file (the `held` one, else whatever is at its path) is the version queued and
        open for writing nowhere (`enqueue` skips settle; a writer may open it again)."""
        st = os.fstat(held.fileno()) if held is not None else os.stat(rec.path)
        if not rec.describes(st):
            raise FileChanged(why)
        if (writer := self._probe(held.fileno() if held is not None else rec.path)) is not None:
            raise WriterActive(writer.reason)

    def _deduplicated(self, rec: FileRecord, sha: str) -> bool:
        """Record the hash; with dedupe, claim the content in the same transaction, so of
        two copies in flight exactly one uploads, whichever hashed first."""
        if not self.settings.dedupe:
            if not self._ledger.note(rec, sha256=sha):
                raise LeaseLost
            return False
        max_resends = self.settings.patience.max_resends
        claim, twin = self._journal.claim_content(rec.id, sha, self.owner, max_sends=max_resends)
        if claim is ContentClaim.LOST:
            raise LeaseLost
        if claim is ContentClaim.CLAIMED:
            return False
        assert twin is not None
        if claim is ContentClaim.IN_FLIGHT:
            # Parked: no worker claims it until the twin leaves flight (journal_reads.PARKED).
            self._ledger.move(
                rec,
                State.QUEUED,
                f"same content as #{twin.id}, in flight; waiting for it",
                sha256=sha,
                next_attempt_at=None,
            )
            return True
        if claim is ContentClaim.SPENT:
            why = (
                f"same content as #{twin.id}, which MAVI did not take after {twin.sends}"
                f" complete uploads; `retry {twin.id}` to try that content again"
            )
            self._ledger.move(rec, State.FAILED, why, sha256=sha, last_error=why)
            return True
        why = f"same content as #{twin.id} ({display_path(twin.path)}), asset {twin.asset_id}"
        self._finish(
            rec, State.DUPLICATE, why, sha256=sha, duplicate_of=twin.id, asset_id=twin.asset_id
        )
        return True

    def _send(self, rec: FileRecord, path: Path) -> None:
        # Held open from before the first byte to after the last: the checks then follow the
        # file we hashed even if it is renamed or deleted mid-upload (its bytes all went out).
        with open(path, "rb") as held:
            self._check_unchanged(rec, held)
            sent = self._transfer(rec, held)
            if sent is None:
                return
            self._check_unchanged(sent, held, "file changed during its upload; sending again")
        self._confirmer.accepted(sent, f"storage accepted {sent.size} bytes", bytes_sent=sent.size)

    def _transfer(self, rec: FileRecord, held: BinaryIO) -> FileRecord | None:
        """Sign if need be and send the bytes; the row after a complete upload, or None when
        there was nothing to send (already landed) or the row is no longer ours."""
        rejected_once = False
        rejections = 0
        while True:
            if rec.asset_id is not None:
                # A journaled asset (a stop, a retry): its bytes may have landed even if its
                # URL is too old to reuse. Ask before sending anything again.
                verdict = self._confirmer.landed_before(rec, rec.asset_id)
                if verdict is Verdict.SEND_AGAIN:
                    rec = self._forget_asset(rec)
                elif verdict not in (None, Verdict.SEND):
                    return None
            signed = self._reusable_url(rec)
            if signed is None:
                signed = self._client.sign(upload_name(rec.name))
                self._gate.lift()
                moved = self._ledger.move(
                    rec,
                    State.UPLOADING,
                    f"signed: asset {signed.asset_id}",
                    asset_id=signed.asset_id,
                    signed_url=signed.url,
                    url_expires_at=signed.expires_at,
                )
                if moved is None:
                    return None
                rec = moved
            try:
                self._check_unchanged(rec, held)  # signing may have waited for a rate slot
                assert rec.size is not None
                started = self._clock()
                self._ledger.note(rec, upload_started_at=started, progress_at=started, bytes_sent=0)
                self._client.upload(
                    signed.url,
                    held,
                    rec.size,
                    upload_name(rec.name),
                    self._progress_hook(rec, True),
                    chunk_size=self._bandwidth.chunk_size,
                )

            except SignedUrlRejected as exc:
                if not exc.expired and rejected_once:
                    raise PermanentError(f"{exc.reason} (after signing again)") from None
                rejections += 1
                if rejections > MAX_EXPIRED_URLS:
                    # Fresh URLs that are "expired" at once: a clock or server problem.
                    raise TransientError(f"{exc.reason} ({rejections} fresh URLs)") from None
                rejected_once = rejected_once or not exc.expired
                log.warning("signing again", file_id=rec.id, reason=exc.reason)
                rec = self._forget_asset(rec)
                continue
            return rec

    def _forget_asset(self, rec: FileRecord) -> FileRecord:
        if not self._ledger.note(rec, **NO_ASSET):
            raise LeaseLost
        return self._journal.get(rec.id) or rec

    def _reusable_url(self, rec: FileRecord) -> SignedUpload | None:
        """The journaled URL, if it stays valid long enough for a send to start."""
        if not (rec.asset_id and rec.signed_url and rec.url_expires_at):
            return None
        if rec.url_expires_at - self._clock() < URL_START_MARGIN_SECONDS:
            return None
        return SignedUpload(rec.asset_id, rec.signed_url, rec.url_expires_at)

    def _progress_hook(self, rec: FileRecord, record_bytes: bool) -> Callable[[int], None]:
        """Per-chunk hook: honour stop, renew the lease and publish progress now and then,
        and at the last chunk: a small file is all sent long before the first 2 s are up, and
        `status` must not show it at 0% while storage takes its time to answer."""
        sent = 0
        last = self._clock()

        def hook(n: int) -> None:
            nonlocal sent, last
            if self._stop.is_set():
                raise Stopped
            if record_bytes:
                self._bandwidth.consume(n)
            sent += n
            now = self._clock()
            finished = record_bytes and sent >= (rec.size or 0)
            if now - last >= PROGRESS_EVERY_SECONDS or finished:
                last = now
                fields: dict[str, object] = {"lease_expires_at": now + LEASE_SECONDS}
                if record_bytes:
                    fields["bytes_sent"] = sent
                    fields["progress_at"] = now
                if not self._ledger.note(rec, **fields):
                    raise LeaseLost

        return hook

    def _finish(self, rec: FileRecord, new: State, why: str, **fields: Any) -> None:
        """Move to done/duplicate; the move/delete is owed in the same commit, then done."""
        settings = self.settings
        aftercare = Aftercare(self._journal, settings.after_upload, settings.done_dir, self._probe)
        fields.setdefault("last_error", None)  # errors of earlier attempts are history now
        finished = self._ledger.move(rec, new, why, after_upload_due=int(aftercare.due()), **fields)
        if finished is not None:
            aftercare.apply(finished)
            self._sight_if_rewritten(finished)

    def _sight_if_rewritten(self, rec: FileRecord) -> None:
        """A version written while this one was in flight was not journaled then (the row was
        busy): journal it now, as a new generation."""
        try:
            st = os.stat(rec.path)
        except OSError:
            return
        if stat.S_ISREG(st.st_mode) and not rec.describes(st):
            seen = Observation(rec.path, rec.watch_root or "", st.st_size, st.st_mtime_ns)
            self._journal.sight([seen])


__all__ = ["MaviError", "Worker", "WorkerSettings"]
