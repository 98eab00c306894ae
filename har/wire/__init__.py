"""The device side: wire protocol v1 (encoder + parser) and the pseudo-terminal emulator."""
