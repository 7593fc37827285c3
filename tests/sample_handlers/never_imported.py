"""A module no test imports: a request naming it must not make the web process import it.

A handler path target of tests/test_handler_trust.py; nothing is defined here.
"""
