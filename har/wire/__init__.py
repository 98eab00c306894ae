"""The wire between a sensor and the host: protocol v1 (``protocol``: encoder and line parser),
the host's session on it (``session``: bytes and arrival times -> sample blocks, no I/O) and a
sensor emulator on a pseudo-terminal (``emulator``). The port itself is har.sources.serial."""
