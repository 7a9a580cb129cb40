"""The binary ops: their schema constants, the shared bit packing, and the numpy reference (docs/ops.md)."""
