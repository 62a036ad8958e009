"""Where a fleet's file is: the same file is one row on every host, however it is mounted.

A file under a `share` is named by the share and its path relative to the share's root, so
hosts that mount the share at different paths agree on it; a file under a host's own folder
is named by that host and its absolute path, and only that host works on it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

SHARE = "share:"
HOST = "host:"


class Places:
    """Translates between this host's paths and the fleet's (scope, key) names of files."""

    def __init__(self, host_id: str, shares: Mapping[str, str]) -> None:
        self.host_id = host_id
        # Longest mount first: a share mounted inside another share's folder names its own.
        roots = {name: os.path.normpath(root) for name, root in shares.items()}
        self._shares = sorted(roots.items(), key=lambda item: len(item[1]), reverse=True)
        self._roots = roots

    @property
    def own_scope(self) -> str:
        return HOST + self.host_id

    def scopes(self) -> list[str]:
        """The scopes whose files this host can reach: its own and its shares'."""
        return [self.own_scope, *(SHARE + name for name in self._roots)]

    def locate(self, path: str) -> tuple[str, bytes]:
        """(scope, key) of a path on this host; keys are bytes, like the paths they keep.

        A share is judged on the normalised path: `/mnt/drop/` is the share's root (key b"",
        not b"."), and `/mnt/drop/../x` is outside it (else another host would find the
        file outside its own mount)."""
        normal = os.path.normpath(path)
        for name, root in self._shares:
            if normal == root or normal.startswith(root.rstrip(os.sep) + os.sep):
                relative = os.path.relpath(normal, root) if normal != root else ""
                return SHARE + name, os.fsencode(relative.replace(os.sep, "/"))
        return self.own_scope, os.fsencode(path)

    def local(self, scope: str, key: bytes) -> str | None:
        """This host's path for a file, or None when this host cannot reach it."""
        if scope == self.own_scope:
            return os.fsdecode(key)
        if scope.startswith(SHARE):
            root = self._roots.get(scope[len(SHARE) :])
            if root is not None:
                relative = os.fsdecode(key)
                return os.path.join(root, relative) if relative else root
        return None

    def shown(self, scope: str, key: bytes) -> str:
        """The path to show: this host's, else `host:/abs/path` or `share:rel/path` (scp)."""
        here = self.local(scope, key)
        if here is not None:
            return here
        name = scope.split(":", 1)[1]
        return f"{name}:{os.fsdecode(key)}"


def share_of(scope: str) -> str | None:
    return scope[len(SHARE) :] if scope.startswith(SHARE) else None
