"""What `status`, `list` and `history` print: JSON shapes of the contract and readable tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mavi_uploader.core.handoffs import Handoff
from mavi_uploader.core.records import Event, FileRecord, State, display_path
from mavi_uploader.core.reporting import (
    file_document,
    iso,
    mavi_says,
)
from mavi_uploader.journal import JournalStore
from mavi_uploader.redaction import redact

# The documents themselves are built in service/status.py: the daemon serves them over HTTP too.
from mavi_uploader.service.status import bandwidth_document, host_document, status_document

__all__ = [
    "bandwidth_document", "event_document", "file_document", "file_documents", "history_text",
    "host_document", "list_text", "owed_by_file", "status_document", "status_text",
]  # fmt: skip


def file_documents(journal: JournalStore, records: Sequence[FileRecord]) -> list[dict[str, Any]]:
    """`list --json`: each file with its hand-offs owed."""
    owed = owed_by_file(journal, records)
    return [file_document(r, owed.get(r.id, ())) for r in records]


def owed_by_file(journal: JournalStore, records: Sequence[FileRecord]) -> dict[int, list[Handoff]]:
    finished = [r.id for r in records if r.state in (State.DONE, State.DUPLICATE)]
    found: dict[int, list[Handoff]] = {}
    for start in range(0, len(finished), 500):
        for handoff in journal.handoffs(finished[start : start + 500]):
            found.setdefault(handoff.file_id, []).append(handoff)
    return found


def status_text(doc: dict[str, Any]) -> str:
    daemon = doc["daemon"]
    lines = [
        f"state dir  {doc['state_dir']}",
        f"journal    {doc['journal']}",
        "daemon     " + (f"running (pid {daemon['pid']})" if daemon["running"] else "not running"),
    ]
    paused = doc["paused"]
    lines.append(
        f"paused     {paused['reason']} (since {paused['since']})" if paused else "paused     no"
    )
    if "bandwidth" in doc:
        lines.append("bandwidth  " + _bandwidth_text(doc["bandwidth"]))
    lines.append("")
    width = max(len(s) for s in doc["counts"])
    lines.extend(f"{state:<{width}}  {n:>7}" for state, n in doc["counts"].items())
    if doc["uploads"]:
        rows = [
            [
                _percent(u["percent"]),
                _human_size(u["bytes_sent"]) + " / " + _human_size(u["size"]),
                _speed(u["speed_bytes_per_second"]),
                _eta(u["eta_seconds"]),
                u["path"],
            ]
            for u in doc["uploads"]
        ]
        lines += ["", "uploading now:", _table(["DONE", "SENT", "SPEED", "ETA", "PATH"], rows)]
    if "hosts" in doc:
        lines += ["", "hosts:", _hosts_table(doc["hosts"]) if doc["hosts"] else "none yet"]
    waiting = [c for c in doc.get("confirming", []) if c["says"]]
    if waiting:
        lines += ["", "waiting for MAVI to confirm:"]
        lines += [f"#{c['id']} {c['path']}: {c['says']}" for c in waiting]
    if doc.get("settling"):
        lines += ["", "not queued yet:"]
        lines += [f"#{s['id']} {s['path']}: {s['waiting_for']}" for s in doc["settling"]]
    shown = {s["id"] for s in doc.get("settling", [])}
    errors = [e for e in doc["recent_errors"] if e["id"] not in shown]
    if errors:
        lines += ["", "recent errors:"]
        lines += [f"#{e['id']} {e['path']} [{e['state']}]: {e['error']}" for e in errors]
    handoffs = doc.get("handoffs")
    if handoffs and handoffs["owed"]:
        lines += ["", f"hand-offs owed: {handoffs['owed']} ({handoffs['failing']} failing)"]
        lines += [_handoff_line(h) for h in handoffs["recent"]]
    return "\n".join(lines)


def _handoff_line(h: dict[str, Any]) -> str:
    line = f"#{h['file_id']} {h.get('path') or ''} [{h['kind']}, {h['event']}]"
    if h["last_error"]:
        line += f": {h['attempts']} failed, last: {h['last_error']}"
    if h["next_attempt_at"]:
        line += f" (next try {h['next_attempt_at']})"
    return line


def _bandwidth_text(bandwidth: dict[str, Any]) -> str:
    limit, until = bandwidth["limit"], bandwidth["until"]
    if limit == "pause":
        shown = "pause: no new upload starts"
    elif limit == "off":
        shown = "off (unlimited)"
    elif bandwidth["bytes_per_second"] < 10**18:
        shown = f"{limit} ({_human_size(bandwidth['bytes_per_second'])}/s)"
    else:  # a rate written with hundreds of digits: no float holds it; the text says it
        shown = limit
    return shown + (f", until {until}" if until else "")


def _hosts_table(hosts: Sequence[dict[str, Any]]) -> str:
    rows = [
        [
            h["host_id"],
            str(h["pid"]),
            "alive" if h["alive"] else "silent",
            h["last_seen"] or "-",
            ", ".join(h["uploading"]) or "-",
        ]
        for h in hosts
    ]
    return _table(["HOST", "PID", "STATE", "LAST SEEN", "UPLOADING"], rows)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def _speed(value: int | None) -> str:
    return "-" if not value else _human_size(value) + "/s"


def _eta(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _human_size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths[:-1]) + "  {}"
    return "\n".join(fmt.format(*r).rstrip() for r in [headers, *rows])


def list_text(records: Sequence[FileRecord], owed: dict[int, list[Handoff]] | None = None) -> str:
    """The `list` table; `owed`: each file's hand-offs not delivered yet, said after it."""
    owed = owed or {}
    if not records:
        return "no files"
    hosts = any(r.host_id for r in records)  # a HOST column only where a fleet wrote one
    rows = [
        [
            str(r.id),
            r.state.value,
            _human_size(r.size),
            str(r.attempts),
            r.asset_id or "-",
            *([r.host_id or "-"] if hosts else []),
            display_path(r.path) + _note(r) + _owed_note(owed.get(r.id, [])),
        ]
        for r in records
    ]
    headers = ["ID", "STATE", "SIZE", "TRIES", "ASSET", *(["HOST"] if hosts else []), "PATH"]
    return _table(headers, rows)


def _note(rec: FileRecord) -> str:
    said = redact(rec.last_error) if rec.last_error else mavi_says(rec)
    return f"  ({said})" if said else ""


def _owed_note(owed: Sequence[Handoff]) -> str:
    if not owed:
        return ""
    said = []
    for h in owed:
        tries = f", {h.attempts} failed: {redact(h.last_error)}" if h.last_error else ""
        said.append(f"{h.kind.value}{tries}")
    return "  (hand-off owed: " + "; ".join(said) + ")"


def event_document(event: Event) -> dict[str, Any]:
    return {
        "file_id": event.file_id,
        "at": iso(event.at),
        "from": event.from_state.value if event.from_state else None,
        "to": event.to_state.value,
        "reason": redact(event.reason),
        "host_id": event.host_id,  # fleet mode: the host that made the move
    }


def history_text(record: FileRecord, events: Sequence[Event]) -> str:
    head = f"#{record.id} {display_path(record.path)}  [{record.state.value}]"
    if record.last_error:
        head += f"\nlast error: {redact(record.last_error)}"
    said = mavi_says(record)
    if said:
        head += f"\n{said}"
    hosts = any(e.host_id for e in events)  # fleet mode: which host made each move
    rows = [
        [
            iso(e.at) or "",
            *([f"[{e.host_id}]" if e.host_id else "-"] if hosts else []),
            (e.from_state.value if e.from_state else "-") + " -> " + e.to_state.value,
            redact(e.reason),
        ]
        for e in events
    ]
    headers = ["WHEN", *(["HOST"] if hosts else []), "TRANSITION", "REASON"]
    return head + "\n" + _table(headers, rows)
