"""The SQL engine: catalog, planner and vectorized executor on Arrow."""
