"""The ``rocks`` storage engine for Alopex: RocksDB through rocksdict."""
