"""Tests of the embedded Salesforce emulator itself.

``test_<module>.py`` tests one ``emulator`` module as pure functions; ``test_client_*.py`` and ``test_cli.py`` run
the real simple-salesforce client (or ``python -m emulator serve``) against a served emulator.
"""
