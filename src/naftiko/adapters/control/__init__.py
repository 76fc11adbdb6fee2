"""The control adapter: its plan (``plan``) and the probes/metrics/status app (``app``)."""
