"""Alembic revisions of the upload records, oldest first (``NNNN_what.py``, linear history)."""
