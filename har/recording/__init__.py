"""Recordings: the format, capture, live labelling, the simulator and importers."""
