"""The process: listeners and their limits, adapters placed on ports, reload, logs, metrics."""
