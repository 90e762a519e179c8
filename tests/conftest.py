"""Shared by every test directory: this file's presence puts ``tests/`` on
``sys.path``, so helpers kept here (``pg_testdb``) import from any of them."""
