"""An installed app of the test settings whose scheduled_tasks.py registers handlers.

Its label stays ``scheduler_testapp``; it has no models and no migrations.
"""
