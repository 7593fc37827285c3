"""Benchmarks of the scheduler (`make bench`); not tests, never collected by pytest."""
