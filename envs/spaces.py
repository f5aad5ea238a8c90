"""`TextSpace`: gymnasium's `Text` space whose `AsyncVectorEnv` shared memory returns the real observations.

Gymnasium 1.4 batches a `Text` observation through shared memory by decoding the buffer once, when the
vector env is built, into a tuple of strings; the workers then write into the buffer and nobody reads
it again, so every observation of `gymnasium.make_vec(id, n, "async")` comes back as the empty
buffer's decoding, `'0000...'`. `TextSpace` registers its own reader: a live view of the buffer whose
copy (what `AsyncVectorEnv` returns with its default `copy=True`) decodes the workers' latest
observations, exactly as a `Box` space's shared array behaves. Writing and the buffer layout are
gymnasium's own (one int32 character index per position, padded with `len(charset)`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import read_from_shared_memory

__all__ = ["TextSpace"]


class TextSpace(spaces.Text):
    """A `gymnasium.spaces.Text` (same arguments, sampling, membership and equality) that works with shared memory."""


class _SharedTexts(Sequence):
    """The strings in a `(n, max_length)` int32 shared buffer, decoded when read (never cached).

    `copy.deepcopy` (which `AsyncVectorEnv` applies before returning observations) gives a plain tuple
    of str, so callers hold a snapshot; `copy=False` callers hold this view, which follows the buffer.
    """

    def __init__(self, space: TextSpace, shared_memory: Any, n: int):
        self._space, self._shared_memory, self._n = space, shared_memory, n
        self._characters = np.array(space.character_list + ("",), dtype=object)  # the pad index decodes to ""

    def _rows(self) -> np.ndarray:
        return np.frombuffer(self._shared_memory.get_obj(), dtype=np.int32).reshape(self._n, self._space.max_length)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index):
        if isinstance(index, slice):
            return tuple(self)[index]
        row = self._rows()[index]
        pad = np.flatnonzero(row >= len(self._space.character_list))
        return "".join(self._characters[row[: pad[0] if len(pad) else len(row)]])

    def __deepcopy__(self, memo: dict) -> tuple[str, ...]:
        return tuple(self)

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, (tuple, list, _SharedTexts)) else other)

    def __repr__(self) -> str:
        return repr(tuple(self))


@read_from_shared_memory.register(TextSpace)
def _read_text_space(space: TextSpace, shared_memory: Any, n: int = 1) -> _SharedTexts:
    return _SharedTexts(space, shared_memory, n)
