"""Helpers of the test suite, one copy each: plain functions, classes and constants, named by what
they do. Fixtures (and pytest hooks) live in the conftest.py files, which import what they need
from here; test modules import helpers from here too, never from a conftest module."""
