"""An installed app of the test settings whose scheduled_tasks.py registers handlers."""
