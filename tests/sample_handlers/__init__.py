"""Every handler the tests point tasks at, one module per theme.

The test settings allow each module the way a project allows code it cannot decorate
(``SCHEDULER_HANDLER_MODULES`` in config/settings_test.py), except ``testapp``, an
installed app whose ``scheduled_tasks.py`` registers its handlers with
``@scheduler_app.handler``, and ``never_imported``, which nothing may import.

- ``runs``: handlers the execution, engine and live-log tests run, with events to steer them.
- ``registry``: functions and classes the registry and parameter tests describe.
- ``api``: a handler with a required parameter for the API tests.
- ``browser``: a handler the browser tests hold until they release it.
- ``public_api``: a handler the Python API tests pass as a function object.
- ``testapp``: the installed app of the tests, found by autodiscovery.
- ``never_imported``: a module no request may make the web process import.
"""
