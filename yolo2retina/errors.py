"""Exceptions raised by yolo2retina.

Every library exception subclasses :class:`Yolo2RetinaError` *and* the matching
built-in, so ``except ValueError`` keeps working for callers who do not know
this library.

Each one survives a trip through another process: it pickles with all its fields, and when a
PyTorch DataLoader worker raises it, the copy that the main process re-raises keeps the
worker's message (``path: reason``) as its own; the worker's traceback becomes a note
(:attr:`Yolo2RetinaError.worker_traceback`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any

__all__ = [
    "AnnotationError",
    "ConfigError",
    "DatasetError",
    "FormatNotFoundError",
    "ImageReadError",
    "NonFiniteLossError",
    "Yolo2RetinaError",
]

#: How many problems a :class:`DatasetError` message lists before "... and N more".
MAX_LISTED_PROBLEMS = 20

# torch.utils.data re-raises a worker's exception as ``exc_type(msg)`` with this ``msg``
# (torch/_utils.py, ExceptionWrapper.reraise): a header line, then the formatted traceback,
# whose last line is ``module.ClassName: message``.
_WORKER_HEADER = re.compile(
    r"\ACaught \w+ (?P<where>in .+?)\.\nOriginal (?P<tb>Traceback.*)\Z", re.S
)


def _from_worker(cls: type, text: str) -> tuple[str, str, str] | None:
    """``(message, where, traceback)`` when ``text`` is torch's re-raise text for ``cls``."""
    m = _WORKER_HEADER.match(text)
    if m is None:
        return None
    tb = m.group("tb")
    name = cls.__qualname__  # as the traceback module prints it
    if cls.__module__ not in ("__main__", "builtins"):
        name = f"{cls.__module__}.{name}"
    marker = f"\n{name}: "
    i = tb.rfind(marker)
    if i < 0:
        return None
    return tb[i + len(marker) :].rstrip("\n"), m.group("where"), tb


class Yolo2RetinaError(Exception):
    """Base class of every error that yolo2retina raises on purpose.

    Attributes:
        worker_traceback: the traceback in the DataLoader worker that raised it, or ``None``
            when it was raised in this process.
    """

    worker_traceback: str | None = None

    def __init__(self, *args: Any) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            args = (self._unwrap(args[0]),)
        super().__init__(*args)

    def _unwrap(self, text: str) -> str:
        """``text``, or the worker's own message when ``text`` is torch's re-raise text."""
        found = _from_worker(type(self), text)
        if found is None:
            return text
        message, where, tb = found
        self.worker_traceback = tb
        if sys.version_info >= (3, 11):
            self.add_note(f"(raised {where}; its traceback:)\n{tb.rstrip()}")
        return message


class AnnotationError(Yolo2RetinaError, ValueError):
    """One bad annotation: a label row, a box, an XML object or a JSON record.

    The message starts with ``file:line:`` (or ``file:``) so an editor can jump to it.
    ``AnnotationError("a.txt:3: bad row")`` (one argument) splits at the first ``": "``.
    """

    def __init__(self, location: str, message: str | None = None) -> None:
        if message is None:
            location, _, message = self._unwrap(location).partition(": ")
        self.location = location
        self.message = message
        super().__init__(f"{location}: {message}" if message else location)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.location, self.message), self.__dict__)


class DatasetError(Yolo2RetinaError, ValueError):
    """A dataset could not be loaded.

    Collects every problem found in one pass so the user can fix them all at once.

    Attributes:
        problems: one ``file:line: message`` string per problem, all of them.
    """

    def __init__(self, summary: str, problems: Sequence[str] = ()) -> None:
        self.summary = self._unwrap(summary) if not problems else summary
        self.problems = list(problems)
        super().__init__(self._format())

    def _format(self) -> str:
        if not self.problems:
            return self.summary
        shown = self.problems[:MAX_LISTED_PROBLEMS]
        lines = [f"{self.summary} ({len(self.problems)} problem(s)):"]
        lines += [f"  {p}" for p in shown]
        if len(self.problems) > len(shown):
            lines.append(f"  ... and {len(self.problems) - len(shown)} more")
        return "\n".join(lines)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.summary, self.problems), self.__dict__)


class ImageReadError(Yolo2RetinaError, OSError):
    """An image file is missing, unreadable, truncated or not an image."""


class FormatNotFoundError(Yolo2RetinaError, KeyError):
    """A dataset format name is not registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ConfigError(Yolo2RetinaError, ValueError):
    """An invalid setting was passed to a builder or a config class."""


class NonFiniteLossError(Yolo2RetinaError, FloatingPointError):
    """Training produced a NaN or infinite loss.

    Attributes:
        image_paths: the images of the batch that produced it.
    """

    def __init__(self, message: str, image_paths: Sequence[str] = ()) -> None:
        self.reason = message
        self.image_paths = list(image_paths)
        if self.image_paths:
            message = f"{message}; batch images: {', '.join(self.image_paths)}"
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, self.image_paths), self.__dict__)
