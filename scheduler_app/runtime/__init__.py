"""The machinery the execution services use: threads, handler calls, leases, overlap.

No use case lives here (those are in `services/`); this is how a run is carried
out inside a process.

- `threads`: the one list of background threads a process starts.
- `run`: `Run`, a claimed execution on its way through the path, and its `Result`.
- `invocation`: a handler call, on a thread or on the shared event loop, under its
  timeout and cancels.
- `leases`: the lock a run holds (`RunLock`) and the watchdog that extends it and
  delivers cancels made elsewhere.
- `overlap`: the `skip`, `allow` (max_instances slots) and `replace` policies.
"""
