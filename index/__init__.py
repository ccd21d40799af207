"""SQL metadata, FAISS vector indexes and the Catalog that keeps them consistent.

Knows nothing of models: it stores vectors with the name and version of what made them.
"""
