"""The scheduler engine run by `manage.py runscheduler`: job store, executors, leadership, loop."""
