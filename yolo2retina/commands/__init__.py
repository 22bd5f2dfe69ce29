"""CLI subcommands, one module each (see :mod:`yolo2retina.cli`)."""
