"""Temporary shim: the tests of yolo2retina/export.py moved to tests/test_prediction_writers.py,
tests/test_predict_folder.py and tests/commands/test_predict.py; their helpers to
tests/_prediction_helpers.py. Kept while tests/test_cli.py imports the helpers from here."""

from __future__ import annotations

from tests._prediction_helpers import photo as photo
from tests._prediction_helpers import tiny_checkpoint as tiny_checkpoint
