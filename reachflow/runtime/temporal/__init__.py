"""The Temporal runtime: executions driven by Temporal workflows (docs/scaling.md)."""
