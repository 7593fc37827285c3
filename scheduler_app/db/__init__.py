"""Every hand-written SQL statement of the app, each a named function with named parameters.

The ORM does the rest. What is here is what the bench justified: one statement per
batch of rows where the ORM would send one per row, or a query compiled once where
the ORM would compile it on every poll. Each module has its own test in tests/db/,
run on SQLite and on PostgreSQL.

Each statement's text is a module constant; table names are filled in once per
database at first use. Statements over a batch (`rows_table`, an `IN` list) take
positional parameters, in the order their constant's comment gives: neither driver
takes named and positional parameters in one statement, and a batch's rows are
positional.

- `batch`: a batch of rows as a table (`WITH v(...)`), the same text for any size.
- `prepared`: querysets compiled once and run again with a fresh time.
- `texts`: each statement's text with the database's quoted names, built once.
- `claims`: the claim of pending executions (pending -> running) for a batch.
- `finals`: the final state of a batch of ended runs.
- `counters`: the tasks' run counters, added up for a batch of runs.
- `fires`: scheduled fires recorded as pending executions, once each.
- `locks`: the database lock backend's batch statements (take, free) for a batch.
- `next_runs`: the engine's next fire times, written for a batch of tasks.
- `polls`: the scheduler's prepared polls (startable runs, the tasks' version).
- `apscheduler_jobs`: django-apscheduler's job table, read by the import of its jobs.
"""
