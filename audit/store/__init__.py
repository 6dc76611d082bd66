"""The DuckDB store: its schema (numbered migrations), the connection and the hash-chained log
(`db`), canonical hashing (`hashing`) and the content-hash recipes of every record (`recipes`).

Nothing in this package knows what a snapshot or a run means; it stores and hashes.
"""
