"""Properties of places.Places: how a fleet names a file (scope, key) and where each host
finds it again. Paths are made from arbitrary bytes (os.fsdecode, as the watcher gets them),
under nested share mounts, with and without trailing slashes. No database needed."""

from __future__ import annotations

import os

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

pytest.importorskip("psycopg")  # places.py lives in the postgres package (its extra)

from mavi_uploader.journal.postgres.places import Places

# A path segment: any bytes but "/" and NUL (which no file name holds), as str the way
# os.fsdecode gives them to the watcher (undecodable bytes as surrogates).
_SEGMENT_BYTES = st.binary(min_size=1, max_size=12).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b"..")
)
SEGMENT = _SEGMENT_BYTES.map(os.fsdecode)
RELATIVE = st.lists(SEGMENT, min_size=1, max_size=5).map("/".join)
# Any segment, "." and ".." included, and empty ones (doubled slashes).
LOOSE_SEGMENT = st.one_of(SEGMENT, st.sampled_from(["", ".", ".."]))
LOOSE_RELATIVE = st.lists(LOOSE_SEGMENT, min_size=0, max_size=6).map("/".join)

# Host a: the share "outer" with the share "inner" mounted inside it; host b mounts both
# elsewhere (not nested); host c mounts neither.
A_SHARES = {"outer": "/mnt/a/media", "inner": "/mnt/a/media/inner"}
B_SHARES = {"outer": "/srv/b/Media", "inner": "/net/inner"}


def hosts(trailing: bool = False) -> tuple[Places, Places, Places]:
    """The three hosts (share roots configured with a trailing slash if `trailing`)."""
    end = "/" if trailing else ""
    a = Places("a", {name: root + end for name, root in A_SHARES.items()})
    b = Places("b", {name: root + end for name, root in B_SHARES.items()})
    return a, b, Places("c", {})


@given(rel=RELATIVE, trailing=st.booleans())
@example(rel="x\udcff\udcfe.mp4", trailing=False)  # not UTF-8
@example(rel="inner", trailing=False)  # the inner mount's own folder
@example(rel="innerx/y.mp4", trailing=False)  # a sibling of inner, still outer's
def test_a_share_file_round_trips_and_each_host_finds_it_at_its_mount(
    rel: str, trailing: bool
) -> None:
    a, b, c = hosts(trailing)
    scope, key = a.locate(f"/mnt/a/media/{rel}")
    inner = rel == "inner" or rel.startswith("inner/")
    expected = ("share:inner", rel[len("inner/") :]) if inner else ("share:outer", rel)
    assert (scope, key) == (expected[0], os.fsencode(expected[1]))
    assert a.local(scope, key) == f"/mnt/a/media/{rel}"
    b_root = B_SHARES["inner" if inner else "outer"]
    assert b.local(scope, key) == (f"{b_root}/{expected[1]}" if expected[1] else b_root)
    assert b.locate(b.local(scope, key) or "") == (scope, key)
    assert c.local(scope, key) is None
    assert c.shown(scope, key) == f"{expected[0].split(':')[1]}:{expected[1]}"


@given(rel=RELATIVE)
def test_an_own_file_round_trips_on_its_host_only(rel: str) -> None:
    a, b, _ = hosts()
    path = f"/home/a/{rel}"
    scope, key = a.locate(path)
    assert (scope, key) == ("host:a", os.fsencode(path))
    assert a.local(scope, key) == path
    assert b.local(scope, key) is None
    assert b.shown(scope, key) == f"a:{path}"
    assert b.locate(path) == ("host:b", os.fsencode(path))  # b's own file of that name


@pytest.mark.parametrize("trailing", [False, True])
@pytest.mark.parametrize("slashes", ["", "/", "//"])
def test_a_share_root_is_the_same_place_with_or_without_trailing_slashes(
    trailing: bool, slashes: str
) -> None:
    a, b, _ = hosts(trailing)
    assert a.locate("/mnt/a/media" + slashes) == ("share:outer", b"")
    assert a.locate("/mnt/a/media/inner" + slashes) == ("share:inner", b"")
    assert b.local("share:outer", b"") == "/srv/b/Media"
    assert a.locate("/mnt/a/media/day 1" + slashes) == ("share:outer", b"day 1")


@given(rel=LOOSE_RELATIVE, lead=st.sampled_from(["/mnt/a/media/", "/mnt/a/", "/", "//"]))
@example(rel="../etc/x.mp4", lead="/mnt/a/media/")  # lexically outside the share
@example(rel="", lead="/mnt/a/media/")  # the root with a trailing slash
@example(rel="inner/../y.mp4", lead="/mnt/a/media/")  # outer's, not inner's
def test_any_path_is_located_where_it_normalises_to_and_never_crashes(rel: str, lead: str) -> None:
    a, b, c = hosts()
    path = lead + rel
    scope, key = a.locate(path)
    normal = os.path.normpath(path)
    inside = [
        name for name, root in A_SHARES.items() if normal == root or normal.startswith(root + "/")
    ]
    if not inside:
        # Outside every share (say /mnt/a/media/../x): this host's own file, never a share's
        # (another host would find it outside its own mount).
        assert scope == "host:a"
        assert a.local(scope, key) == path
        return
    name = max(inside, key=lambda n: len(A_SHARES[n]))
    assert scope == f"share:{name}"
    assert not key.startswith(b"/") and b".." not in key.split(b"/")
    assert a.local(scope, key) == normal
    for host in (b, c):
        where = host.local(scope, key)
        assert where is None or where == B_SHARES[name] or where.startswith(B_SHARES[name] + "/")
