"""The SQL engine: catalog, planner and vectorized executor on Arrow.

Arrow allocations use the system allocator unless ``ARROW_DEFAULT_MEMORY_POOL`` says
otherwise: with pyarrow's default (mimalloc) the first scan after a bulk load ran 2x
slower and warm scans no faster (bench/sql.py (c), docs/sql.md#memory).
"""

import os

import pyarrow as pa

if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
    pa.set_memory_pool(pa.system_memory_pool())
