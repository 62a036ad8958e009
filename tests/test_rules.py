"""rules: which paths under a watch root are candidate videos (pure, no filesystem)."""

from __future__ import annotations

import pytest

from mavi_uploader.config.model import DEFAULT_IGNORE
from mavi_uploader.config.settings import DEFAULT_EXTENSIONS
from mavi_uploader.core import rules

ROOT = "/w"
EXTS = frozenset(DEFAULT_EXTENSIONS)


def candidate(
    path: str,
    root: str = ROOT,
    *,
    ignore: tuple[str, ...] = DEFAULT_IGNORE,
    recursive: bool = True,
    extensions: frozenset[str] = EXTS,
) -> bool:
    why = rules.rejection(path, root, extensions=extensions, ignore=ignore, recursive=recursive)
    return why is None


def why(
    path: str,
    root: str = ROOT,
    *,
    ignore: tuple[str, ...] = DEFAULT_IGNORE,
    recursive: bool = True,
) -> str | None:
    return rules.rejection(path, root, extensions=EXTS, ignore=ignore, recursive=recursive)


# ---- extensions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["clip.mp4", "clip.MP4", "Clip.Mov", "a.b.mkv", "take 1.M2TS", "x.3gp", "x.MXF"]
)
def test_video_extensions_match_case_insensitively(name: str) -> None:
    assert candidate(f"/w/{name}")
    assert why(f"/w/{name}") is None


@pytest.mark.parametrize("name", ["notes.txt", "clip.mp4.json", "photo.JPG", "mp4", "clipmp4"])
def test_other_extensions_are_rejected_with_the_extension_named(name: str) -> None:
    assert not candidate(f"/w/{name}")
    reason = why(f"/w/{name}")
    assert reason is not None and "extension" in reason


def test_a_name_without_extension_is_rejected() -> None:
    assert not candidate("/w/README")
    assert why("/w/README") == "extension '(none)' is not in the configured extensions"


def test_only_the_configured_extensions_count() -> None:
    assert candidate("/w/a.webm", extensions=frozenset({"webm"}))
    assert not candidate("/w/a.mp4", extensions=frozenset({"webm"}))


# ---- ignore globs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("clip.mp4.part", "*.part"),
        ("clip.mp4.tmp", "*.tmp"),
        ("clip.mp4.crdownload", "*.crdownload"),
        ("clip.mp4~", "*~"),
        (".clip.mp4", ".*"),
        (".hidden.mov", ".*"),
    ],
)
def test_default_ignore_globs_reject_temp_and_hidden_files(name: str, pattern: str) -> None:
    assert not candidate(f"/w/{name}")
    assert why(f"/w/{name}") == f"ignored by pattern {pattern!r}"


def test_a_glob_wins_over_a_video_extension() -> None:
    assert not candidate("/w/clip.tmp.mp4", ignore=("*.tmp*",))
    assert candidate("/w/clip.tmp.mp4")  # the default "*.tmp" only matches the suffix


@pytest.mark.parametrize("ignore", [(), ("*.part",)])
def test_appledouble_and_os_litter_are_ignored_even_without_ignore_globs(
    ignore: tuple[str, ...],
) -> None:
    assert not candidate("/w/._clip.mp4", ignore=ignore)
    assert why("/w/._clip.mp4", ignore=ignore) == "ignored by pattern '._*'"
    assert rules.ignored_by(".DS_Store", ignore) == ".DS_Store"
    assert rules.ignored_by("Thumbs.db", ignore) == "Thumbs.db"
    assert rules.ignored_by("desktop.ini", ignore) == "desktop.ini"
    assert rules.ignored_by("clip.mp4", ignore) is None


def test_ignore_globs_are_the_configured_ones() -> None:
    assert candidate("/w/clip.mp4.part.mp4", ignore=())
    assert not candidate("/w/raw_clip.mp4", ignore=("raw_*",))
    assert candidate("/w/clip.mp4", ignore=("raw_*",))


@pytest.mark.parametrize(
    "path",
    [
        "/w/.hidden/clip.mp4",
        "/w/shoot/.cache/clip.mp4",
        "/w/._resources/clip.mp4",
        "/w/download.part/clip.mp4",
        "/w/old~/clip.mp4",
    ],
)
def test_ignore_applies_to_every_folder_on_the_way(path: str) -> None:
    assert not candidate(path)
    reason = why(path)
    assert reason is not None and reason.startswith("ignored by pattern")


def test_the_root_itself_may_be_hidden() -> None:
    # Only components below the root are matched: a watch on ~/.videos still works.
    assert candidate("/home/u/.videos/clip.mp4", "/home/u/.videos")
    assert candidate("/w/shoot/day1/clip.mp4")


# ---- depth and location ---------------------------------------------------------------


def test_non_recursive_watch_refuses_subfolders() -> None:
    assert candidate("/w/clip.mp4", recursive=False)
    assert not candidate("/w/shoot/clip.mp4", recursive=False)
    reason = why("/w/shoot/clip.mp4", recursive=False)
    assert reason is not None and "not recursive" in reason
    assert candidate("/w/shoot/clip.mp4", recursive=True)


@pytest.mark.parametrize(
    "path",
    [
        "/w2/clip.mp4",  # a sibling whose name starts with the root's name
        "/wx/w/clip.mp4",
        "/clip.mp4",
        "/other/w/clip.mp4",
        "/w/../etc/clip.mp4",  # climbs out once normalised
        "/w",
        "/w/",
    ],
)
def test_paths_outside_the_root_are_rejected(path: str) -> None:
    assert not candidate(path)
    assert why(path) == "outside the watch folder /w"
    assert rules.relative_parts(path, ROOT) is None


def test_paths_are_normalised_before_matching() -> None:
    assert candidate("/w//shoot/./clip.mp4")
    assert candidate("/w/shoot/../clip.mp4", recursive=False)
    assert candidate("/w/clip.mp4", "/w/")  # a root written with a trailing slash
    assert not candidate("/w2/clip.mp4", "/w/")
    assert rules.relative_parts("/w/a/b.mp4", "/w/") == ["a", "b.mp4"]


# ---- directories ----------------------------------------------------------------------


def test_directory_ignored_for_hidden_and_globbed_folders() -> None:
    ignored = rules.directory_ignored
    assert not ignored("/w/shoot", ROOT, DEFAULT_IGNORE, True)
    assert not ignored("/w/shoot/day1", ROOT, DEFAULT_IGNORE, True)
    assert ignored("/w/.git", ROOT, DEFAULT_IGNORE, True)
    assert ignored("/w/shoot/.cache", ROOT, DEFAULT_IGNORE, True)
    assert ignored("/w/.cache/deeper", ROOT, DEFAULT_IGNORE, True)  # a hidden ancestor
    assert ignored("/w/._rsrc", ROOT, (), True)  # AppleDouble even with no globs
    assert ignored("/w/big.part", ROOT, DEFAULT_IGNORE, True)
    assert not ignored("/w/.git", ROOT, (), True)  # hidden is a glob: it can be configured


def test_directory_ignored_for_subfolders_of_a_non_recursive_watch() -> None:
    assert rules.directory_ignored("/w/shoot", ROOT, DEFAULT_IGNORE, False)
    assert not rules.directory_ignored("/w", ROOT, DEFAULT_IGNORE, False)


def test_directory_ignored_outside_the_root_but_not_the_root_itself() -> None:
    assert rules.directory_ignored("/w2", ROOT, DEFAULT_IGNORE, True)
    assert rules.directory_ignored("/w2/shoot", ROOT, DEFAULT_IGNORE, True)
    assert rules.directory_ignored("/", ROOT, DEFAULT_IGNORE, True)
    assert not rules.directory_ignored("/w", ROOT, DEFAULT_IGNORE, True)
    assert not rules.directory_ignored("/w", "/w/", DEFAULT_IGNORE, True)


@pytest.mark.parametrize("spelling", ["/w/", "/w/.", "/w//"])
def test_directory_ignored_accepts_any_spelling_of_the_root(spelling: str) -> None:
    assert not rules.directory_ignored(spelling, ROOT, DEFAULT_IGNORE, True)
