"""The ``hnswlib`` vector index provider for Alopex: HNSW graphs through hnswlib."""
