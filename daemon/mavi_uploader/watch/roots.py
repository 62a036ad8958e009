"""A watch folder as the daemon sees it: its rules, what a path in it is, and its walk."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass

from mavi_uploader.config.model import Config, WatchConfig
from mavi_uploader.core import rules
from mavi_uploader.core.records import Observation, display_path
from mavi_uploader.log import get_logger
from mavi_uploader.watch.links import link_target

log = get_logger(__name__)


@dataclass(frozen=True)
class WatchRoot:
    """One watch folder with the rules that decide what in it is a candidate."""

    root: str
    recursive: bool
    ignore: tuple[str, ...]
    extensions: frozenset[str]
    poll: bool = False
    poll_interval: float = 10.0

    @classmethod
    def from_config(cls, watch: WatchConfig, extensions: Collection[str]) -> WatchRoot:
        # realpath: a watch path that is a symlink (or lies under one, like macOS's /tmp) gets
        # events under its target's name; inotify does not follow a link given to it either.
        return cls(
            root=os.path.realpath(watch.path),
            recursive=watch.recursive,
            ignore=tuple(watch.ignore),
            extensions=frozenset(extensions),
            poll=watch.poll,
            poll_interval=watch.poll_interval_seconds,
        )

    def observe(
        self,
        path: str,
        *,
        folders_checked: bool = False,
        on_refused_link: Callable[[str, str], None] | None = None,
    ) -> Observation | None:
        """An Observation if `path` is a regular candidate file inside this root, else None.

        `folders_checked`: the path comes from `walk()`, whose folders already passed the
        rules, so only the file's own name needs checking (a rescan of 100,000 files).
        `on_refused_link(path, why)`: told about a candidate's symlink that is not followed.
        """
        if folders_checked:
            name = os.path.basename(path)
            if rules.name_rejection(name, extensions=self.extensions, ignore=self.ignore):
                return None
        elif rules.rejection(
            path,
            self.root,
            extensions=self.extensions,
            ignore=self.ignore,
            recursive=self.recursive,
        ):
            return None
        try:
            st = os.lstat(path)
        except OSError:
            return None
        if stat.S_ISLNK(st.st_mode):
            target, why = link_target(path, self.root)
            if target is None:
                if on_refused_link is not None:
                    on_refused_link(path, why)
                return None
            st = target
        if not stat.S_ISREG(st.st_mode):
            return None
        return Observation(path, self.root, st.st_size, st.st_mtime_ns)

    def walk(
        self,
        top: str | None = None,
        unlistable: set[str] | None = None,
        on_folder: Callable[[], None] | None = None,
    ) -> Iterator[str]:
        """Every file path under `top` (default: the root) that the rules let through;
        folders that cannot be listed are added to `unlistable`; `on_folder` runs before
        each folder is listed (a listing on a dead NFS server can block for minutes)."""
        stack = [top or self.root]
        while stack:
            directory = stack.pop()
            if on_folder is not None:
                on_folder()
            try:
                entries = list(os.scandir(directory))
            except OSError as exc:
                log.warning("cannot list folder", path=display_path(directory), error=str(exc))
                if unlistable is not None:
                    unlistable.add(directory)
                continue
            for entry in entries:
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if is_dir:
                    if not rules.directory_ignored(
                        entry.path, self.root, self.ignore, self.recursive
                    ):
                        stack.append(entry.path)
                else:
                    yield entry.path


def watch_roots(config: Config) -> list[WatchRoot]:
    """The config's [[watch]] tables as WatchRoots (resolved, with the shared extensions)."""
    return [WatchRoot.from_config(w, config.extensions) for w in config.watches]
