"""The adapter conformance suite: every framework adapter passes the same tests.

``frameworks.py`` describes each framework once (tiny builders and read-backs of what the
built model and optimizer hold); ``test_conformance.py`` runs every test against each of
them. A new adapter joins by adding one :class:`~tests.conformance.frameworks.Framework`.
"""
