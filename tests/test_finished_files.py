"""Files that look finished are handed to the fast path once quiet (watch/finished.py)."""

from __future__ import annotations

from mavi_uploader.watch.finished import FinishedFiles


def test_each_is_handed_over_once_after_its_quiet() -> None:
    finished = FinishedFiles(quiet=1.0)
    assert finished.next_in(0.0) is None
    finished.arrived(["/w/a.mp4", "/w/b.mp4"], now=10.0)
    assert finished.due(10.5) == []
    assert finished.next_in(10.5) == 0.5
    assert finished.due(11.0) == ["/w/a.mp4", "/w/b.mp4"]
    assert finished.due(12.0) == [] and finished.next_in(12.0) is None


def test_another_arrival_pushes_the_hand_over_back() -> None:
    finished = FinishedFiles(quiet=1.0)
    finished.arrived(["/w/a.mp4"], now=10.0)
    finished.arrived(["/w/a.mp4"], now=10.8)  # closed again: patched after the export
    assert finished.due(11.5) == []
    assert finished.due(11.8) == ["/w/a.mp4"]
    assert finished.next_in(100.0) is None
