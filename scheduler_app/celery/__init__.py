"""The Celery worker side: the entry point (entry_points.py) and the worker's signals (worker.py).

config/celery.py has the worker import `scheduler_app.celery.entry_points`; the scheduler
never imports this package (it sends run_execution by name). Imports of the
`celery` library are absolute, so this package's name does not shadow it.
"""
