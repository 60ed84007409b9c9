"""Explore any uploaded table: read a CSV (encoding, delimiter, header detected), keep it as Parquet, profile it,
query it through DuckDB with a structured, bounded query, and count neighbours between tables.

Pure functions over files, like `backend.ml`: no web framework, task queue or database session inside.
"""
