"""A hypothesis state machine that drives a storage engine beside a dict model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
)

from alopex.contracts.storage import Snapshot, StorageEngine
from alopex.errors import StorageError

# A small alphabet makes collisions, shared prefixes and 0x00/0xFF edges likely.
keys = st.binary(max_size=4).map(lambda b: bytes(x % 5 * 63 for x in b))
values = st.binary(max_size=24)
batches = st.dictionaries(keys, st.none() | values, max_size=8)
bounds = st.none() | keys


def _expected(
    model: dict[bytes, bytes], start: bytes, end: bytes | None, reverse: bool
) -> list[tuple[bytes, bytes]]:
    pairs = sorted((k, v) for k, v in model.items() if k >= start and (end is None or k < end))
    return pairs[::-1] if reverse else pairs


def storage_machine(
    open_engine: Callable[[Path], StorageEngine], root: Path, persistent: bool
) -> type[RuleBasedStateMachine]:
    """A state machine class bound to one engine factory (a fresh directory per run)."""
    runs = iter(range(1_000_000))

    class StorageMachine(RuleBasedStateMachine):
        snapshots = Bundle("snapshots")

        def __init__(self) -> None:
            super().__init__()
            self.path = root / f"run{next(runs)}"
            self.engine = open_engine(self.path)
            self.model: dict[bytes, bytes] = {}
            self.generation = 0  # bumped by reopen: older snapshots are closed with it

        @rule(key=keys, value=values)
        def put(self, key: bytes, value: bytes) -> None:
            self.engine.write({key: value}, durable=False)
            self.model[key] = value

        @rule(key=keys)
        def delete(self, key: bytes) -> None:
            self.engine.write({key: None}, durable=False)
            self.model.pop(key, None)

        @rule(batch=batches, durable=st.booleans())
        def write_batch(self, batch: dict[bytes, bytes | None], durable: bool) -> None:
            self.engine.write(batch, durable=durable)
            for key, value in batch.items():
                if value is None:
                    self.model.pop(key, None)
                else:
                    self.model[key] = value

        @rule(key=keys)
        def get(self, key: bytes) -> None:
            assert self.engine.get(key) == self.model.get(key)

        @rule(start=keys, end=bounds, reverse=st.booleans())
        def scan(self, start: bytes, end: bytes | None, reverse: bool) -> None:
            got = list(self.engine.scan(start, end, reverse=reverse))
            assert got == _expected(self.model, start, end, reverse)

        @rule(prefix=keys, reverse=st.booleans())
        def scan_prefix(self, prefix: bytes, reverse: bool) -> None:
            got = list(self.engine.scan_prefix(prefix, reverse=reverse))
            expected = [
                (k, v) for k, v in _expected(self.model, b"", None, reverse) if k.startswith(prefix)
            ]
            assert got == expected

        @rule(target=snapshots)
        def take_snapshot(self) -> tuple[Snapshot, dict[bytes, bytes], int]:
            return self.engine.snapshot(), dict(self.model), self.generation

        @rule(pair=snapshots, start=keys, end=bounds, reverse=st.booleans(), key=keys)
        def read_snapshot(
            self,
            pair: tuple[Snapshot, dict[bytes, bytes], int],
            start: bytes,
            end: bytes | None,
            reverse: bool,
            key: bytes,
        ) -> None:
            snapshot, frozen, generation = pair
            if generation != self.generation:
                with pytest.raises(StorageError):
                    snapshot.get(key)
                return
            assert snapshot.get(key) == frozen.get(key)
            assert list(snapshot.scan(start, end, reverse=reverse)) == _expected(
                frozen, start, end, reverse
            )

        @rule(pair=consumes(snapshots))
        def close_snapshot(self, pair: tuple[Snapshot, Any]) -> None:
            pair[0].close()

        @precondition(lambda self: persistent)
        @rule()
        def reopen(self) -> None:
            self.engine.close()
            self.engine = open_engine(self.path)
            self.generation += 1

        @invariant()
        def sizes_agree(self) -> None:
            assert sum(1 for _ in self.engine.scan()) == len(self.model)

        def teardown(self) -> None:
            self.engine.close()

    return StorageMachine
