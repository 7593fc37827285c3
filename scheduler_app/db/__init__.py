"""Every hand-written SQL statement of the app, each a named function with named parameters.

The ORM does the rest. What is here is what the bench justified: one statement per
batch of rows where the ORM would send one per row, or a query compiled once where
the ORM would compile it on every poll. Each module has its own test in tests/db/,
run on SQLite and on PostgreSQL.

- `batch`: a batch of rows as a table (`WITH v(...)`), the same text for any size.
- `prepared`: querysets compiled once and run again with a fresh time.
- `locks`: the database lock backend's batch statements (take, free) for a batch.
- `next_runs`: the engine's next fire times, written for a batch of tasks.
- `polls`: the scheduler's prepared polls (startable runs, the tasks' version).
- `apscheduler_jobs`: django-apscheduler's job table, read by the import of its jobs.
"""
