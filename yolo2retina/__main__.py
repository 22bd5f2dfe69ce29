"""``python -m yolo2retina``: the same as the ``yolo2retina`` command."""

from __future__ import annotations

import sys

from yolo2retina.cli import main

if __name__ == "__main__":
    sys.exit(main())
