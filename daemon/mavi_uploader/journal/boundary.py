"""A store's boundary: every public method raises JournalError where its driver raised."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

_Cls = TypeVar("_Cls", bound=type)


def wraps_driver_errors(cls: _Cls) -> _Cls:
    """Class decorator: every public method (the mixins' too) runs inside the store's
    `_driver_errors()` context, which turns the driver's errors (disk full, a constraint, a
    server gone) into JournalError naming the journal: callers see one error type."""
    done: set[str] = set()
    for klass in cls.__mro__[:-1]:
        for name, attr in vars(klass).items():
            if name.startswith("_") or name in done or not inspect.isfunction(attr):
                continue
            done.add(name)
            setattr(cls, name, _wrapped(attr))
    return cls


def _wrapped(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._driver_errors():
            return method(self, *args, **kwargs)

    return call
