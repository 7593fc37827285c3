"""The machinery the execution services use: threads, handler calls, leases, overlap.

No use case lives here (those are in `services/`); this is how a run is carried
out inside a process.

- `threads`: the one list of background threads a process starts.
- `run`: `Run`, a claimed execution on its way through the path, and its `Result`.
- `invocation`: a handler call in this process, on a thread (an async one on a loop
  of its own), under its timeout and cancels.
- `processes`, `child`: a handler call in a handler process (SCHEDULER_ISOLATION=
  process), the scheduler's side and the process's.
- `capture`: what handlers print and log goes to their run's log.
- `leases`: the lock a run holds (`RunLock`) and the watchdog that extends it and
  delivers cancels made elsewhere.
- `overlap`: the `skip`, `allow` (max_instances slots) and `replace` policies.
"""
