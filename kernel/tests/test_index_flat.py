"""The built-in exact ``flat`` index passes the vector index conformance suite."""

from alopex.testing import IndexSuite


class TestFlatIndex(IndexSuite):
    provider = "flat"
