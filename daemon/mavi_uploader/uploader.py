"""The upload worker: claim → hash → dedupe → sign → upload → confirm → after_upload.

One pass of the loop is `Worker.run_once()`, callable from tests without threads.
"""

from __future__ import annotations

import os
import random
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from mavi_uploader.config import AfterUpload
from mavi_uploader.disposal import Aftercare
from mavi_uploader.hashing import sha256_file
from mavi_uploader.journal import Journal
from mavi_uploader.ledger import Ledger
from mavi_uploader.log import get_logger
from mavi_uploader.mavi import (
    AuthProblem,
    MaviClient,
    MaviError,
    PermanentError,
    SignedUpload,
    SignedUrlRejected,
    TransientError,
)
from mavi_uploader.multipart import FileShrank
from mavi_uploader.pause import PauseGate
from mavi_uploader.ratelimit import BandwidthLimiter, Stopped
from mavi_uploader.records import (
    NO_ASSET,
    FileRecord,
    Observation,
    State,
    display_path,
    upload_name,
)
from mavi_uploader.writers import Probe, WriterProbe

log = get_logger(__name__)

# Renewed every PROGRESS_EVERY_SECONDS while bytes move; longer than any limiter wait.
LEASE_SECONDS = 900.0
PROGRESS_EVERY_SECONDS = 2.0
# Reuse a journaled signed URL only if it stays valid long enough to send the file again.
URL_REUSE_MARGIN_SECONDS = 900.0
TWIN_WAIT_SECONDS = 15.0
MAX_EXPIRED_URLS = 3
CONFIRM_MAX_POLLS = 80  # ≈ 1 h with CONFIRM_BACKOFF; then the file is sent again
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
        self.owner = f"{os.getpid()}:{name}"
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
                self._confirm(record)
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
                self._ledger.move(
                    rec, State.SKIPPED, "empty file (0 bytes)", last_error="empty file"
                )
                return
            sha = rec.sha256 or self._hash(rec, path)
            self._check_unchanged(rec)
            if self.settings.dedupe and self._deduplicated(rec, sha):
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

    def _hash(self, rec: FileRecord, path: Path) -> str:
        sha = sha256_file(path, self._progress_hook(rec, record_bytes=False))
        self._ledger.note(rec, sha256=sha)
        return sha

    def _deduplicated(self, rec: FileRecord, sha: str) -> bool:
        twin = self._journal.find_uploaded_twin(sha, rec.id)
        if twin is None:
            pending = self._journal.find_twin_in_flight(sha, rec.id)
            if pending is None:
                return False
            # Copies dropped together: wait for the older one instead of uploading twice.
            # Only the younger row waits, so two copies can never wait for each other.
            self._ledger.move(
                rec,
                State.QUEUED,
                f"same content as #{pending.id}, in flight; waiting for it",
                sha256=sha,
                next_attempt_at=self._clock() + TWIN_WAIT_SECONDS,
            )
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
        confirming = self._ledger.move(
            sent,
            State.CONFIRMING,
            f"storage accepted {sent.size} bytes",
            bytes_sent=sent.size,
            confirm_polls=0,
            next_attempt_at=None,
        )
        if confirming is not None:
            self._confirm(confirming)

    def _transfer(self, rec: FileRecord, held: BinaryIO) -> FileRecord | None:
        """Sign if need be and send the bytes; the row after a complete upload, or None when
        there was nothing to send (already landed) or the row is no longer ours."""
        rejected_once = False
        rejections = 0
        while True:
            signed = self._reusable_url(rec)
            if signed is not None and self._already_landed(rec, signed):
                return None
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
                self._ledger.note(rec, **NO_ASSET)
                rec = self._journal.get(rec.id) or rec
                continue
            return rec

    def _reusable_url(self, rec: FileRecord) -> SignedUpload | None:
        if not (rec.asset_id and rec.signed_url and rec.url_expires_at):
            return None
        if rec.url_expires_at - self._clock() < URL_REUSE_MARGIN_SECONDS:
            return None
        return SignedUpload(rec.asset_id, rec.signed_url, rec.url_expires_at)

    def _already_landed(self, rec: FileRecord, signed: SignedUpload) -> bool:
        """After a crash mid-flight the bytes may have landed: ask before sending again.

        SUCCESS (size matching, if given) means done. WAITING/UPLOADING with our exact size
        means MAVI holds the bytes and is still processing them: confirm, do not re-send.
        Anything else (FAILED, another size, no size) and the file is sent again.
        """
        try:
            status = self._client.metadata(signed.asset_id)
        except (TransientError, PermanentError) as exc:
            # Cannot tell (an asset with no bytes yet may even be "not found"): sending again
            # to the same URL is safe (same asset), failing the file is not.
            log.info("resume check failed; sending", file_id=rec.id, reason=exc.reason)
            return False
        self._gate.lift()
        if status.upload_status == "SUCCESS" and status.file_size in (None, rec.size):
            self._finish(rec, State.DONE, f"asset {signed.asset_id} already uploaded (SUCCESS)")
            return True
        if status.upload_status in ("WAITING", "UPLOADING") and status.file_size == rec.size:
            confirming = self._ledger.move(
                rec,
                State.CONFIRMING,
                f"asset {signed.asset_id} already holds {rec.size} bytes"
                f" ({status.upload_status}); confirming instead of sending again",
                confirm_polls=0,
                next_attempt_at=None,
            )
            if confirming is not None:
                self._confirm(confirming)
            return True
        self._ledger.move(
            rec,
            State.UPLOADING,
            f"asset {signed.asset_id} is {status.upload_status} without our bytes; sending",
        )
        return False

    def _confirm(self, rec: FileRecord) -> None:
        assert rec.asset_id is not None
        try:
            status = self._client.metadata(rec.asset_id)
        except TransientError as exc:
            self._ledger.poll_later(rec, exc.reason)
            return
        except PermanentError as exc:
            self._ledger.upload_again(rec, f"metadata check failed: {exc.reason}")
            return
        self._gate.lift()
        if status.upload_status == "SUCCESS":
            if status.file_size is not None and status.file_size != rec.size:
                self._ledger.upload_again(
                    rec, f"MAVI holds {status.file_size} bytes but the file has {rec.size}"
                )
                return
            self._finish(rec, State.DONE, f"MAVI confirmed asset {rec.asset_id} (SUCCESS)")
        elif status.upload_status == "FAILED":
            self._ledger.upload_again(rec, f"MAVI reported asset {rec.asset_id} FAILED")
        elif rec.confirm_polls + 1 >= CONFIRM_MAX_POLLS:
            self._ledger.upload_again(rec, f"asset {rec.asset_id} still {status.upload_status}")
        else:
            self._ledger.poll_later(rec, f"upload_status {status.upload_status}", quiet=True)

    def _progress_hook(self, rec: FileRecord, record_bytes: bool) -> Callable[[int], None]:
        """Per-chunk hook: honour stop, renew the lease and publish progress now and then."""
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
            if now - last >= PROGRESS_EVERY_SECONDS:
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
