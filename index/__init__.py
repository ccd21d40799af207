"""SQL metadata, FAISS vector indexes and the Catalog that keeps them consistent.

Knows nothing of models: it stores vectors with the name and version of what made them.

- ``index.catalog``: ``Catalog`` (add / delete / search / rebuild), its inputs and records.
- ``index.vectors``: ``VectorIndex``, one FAISS index (exact, HNSW or IVF) keyed by SQL ids.
- ``index.spaces``:  the table of vector spaces and the owner kind each one holds.
- ``index.filters``: Qdrant-like JSON filters, resolved in SQL.
- ``index.models``, ``index.db``, ``index.migrate``: schema, engines, Alembic migrations.
"""
