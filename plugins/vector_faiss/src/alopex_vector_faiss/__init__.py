"""The ``faiss`` vector index provider for Alopex: IVF and HNSW indexes through faiss."""
