"""Benchmarks: per-device latency, memory, size and quality of bundles and of the torch teacher (DESIGN.md §7)."""
