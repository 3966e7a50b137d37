"""alopex-storage-lsm: a log-structured merge-tree storage engine written in Python."""
