"""The benchmark harness behind ``bench/run``: processes, load generators, reports.

Modules are plain functions and dataclasses over subprocesses; nothing here imports
naftiko (the runtime under test is always a separate, pinned process).
"""
