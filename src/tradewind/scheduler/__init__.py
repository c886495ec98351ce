"""The scheduler: creates runs from timetables, decides which task instances are ready, admits
them under pool and concurrency limits, hands them to an executor, and applies what the
executor reports back.

Every decision is a small pure function in :mod:`tradewind.scheduler.decisions` that takes
plain data (snapshots of task instances and runs, read-only DAG views, the current time as a
parameter) and returns a result with a human-readable reason. The loop that loads the data,
calls them and writes the outcome lives beside that package; ``tradewind tasks why`` and the UI
show the same reasons.
"""
