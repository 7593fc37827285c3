from django.apps import AppConfig


class TestAppConfig(AppConfig):
    name = "tests.sample_handlers.testapp"
    label = "scheduler_testapp"
