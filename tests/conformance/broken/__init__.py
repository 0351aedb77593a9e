"""Deliberately broken attention implementations, one plausible bug each.

Each function carries the clause id it breaks (``breaks``); ``tests/conformance/test_broken.py``
checks that kqv fails it on that clause. This set is the measure of the suite's power: add to it.
"""
