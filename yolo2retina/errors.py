"""Exceptions raised by yolo2retina.

Every library exception subclasses :class:`Yolo2RetinaError` *and* the matching
built-in, so ``except ValueError`` keeps working for callers who do not know
this library.
"""

from __future__ import annotations

from collections.abc import Sequence

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


class Yolo2RetinaError(Exception):
    """Base class of every error that yolo2retina raises on purpose."""


class AnnotationError(Yolo2RetinaError, ValueError):
    """One bad annotation: a label row, a box, an XML object or a JSON record.

    The message starts with ``file:line:`` (or ``file:``) so an editor can jump to it.
    """

    def __init__(self, location: str, message: str) -> None:
        self.location = location
        self.message = message
        super().__init__(f"{location}: {message}")


class DatasetError(Yolo2RetinaError, ValueError):
    """A dataset could not be loaded.

    Collects every problem found in one pass so the user can fix them all at once.

    Attributes:
        problems: one ``file:line: message`` string per problem, all of them.
    """

    def __init__(self, summary: str, problems: Sequence[str] = ()) -> None:
        self.summary = summary
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
        self.image_paths = list(image_paths)
        if self.image_paths:
            message = f"{message}; batch images: {', '.join(self.image_paths)}"
        super().__init__(message)
