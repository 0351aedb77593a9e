"""A budget of shapes: the few ``sdpa`` shapes a run draws from, for kernels that compile once per shape.

XLA, ``torch.compile``, Triton's autotuning and TensorRT compile a program for every new shape,
in tenths of a second to seconds, so a run that draws hundreds of shapes spends its time
compiling. A backend that declares ``shapes=N`` is checked on at most ``N`` sizes
``(batch, L, S, E, Ev)`` per dtype in a run, each with one mask shape: :func:`pool` makes them,
the strategy draws every case's sizes from them, and everything else (values, mask kind and
pattern, causal flag, scale, seed, the key/value heads of grouped-query attention among the
divisors of the query's) is drawn as usual. A run at another seed draws another pool.

The pool is made so that every check finds shapes that suit it (:func:`suits`): its first entry
has the most batch dims the backend accepts, two or more entries in the first and four query heads
in the last (room for grouped-query attention with two groups of two), and ``L = S >= 2``,
``E >= 2``. ``max(2, N // 4)`` entries sit at tile boundaries (clause
``attention.tile-boundaries``): one with every size at a boundary, lengths past 128 and widths
past 64 (where kernels most often drop keys or features), none a multiple of 16 (a partial last
tile for every tile size) and ``L = S``, one with one size at a
boundary on the first entry's batch, then either kind at random. The entries are sorted
smallest first, so that hypothesis shrinks a failure to the smallest shape of the pool that shows
it.
"""

from __future__ import annotations

import dataclasses
import functools
import zlib
from dataclasses import dataclass

import numpy as np

from ...declaration import MIN_SHAPES, Declaration
from ...profiles import Profile
from ...strategies import SMALL

HEADS = 4  # query heads of the first entry: two key/value heads of two query heads each
LARGE_LENGTH, LARGE_WIDTH = 128, 64  # the large entry at tile boundaries lies past these


@dataclass(frozen=True)
class Shape:
    """One entry of a pool: the sizes of a case; ``tiles`` says how many of L, S, E, Ev sit at a tile boundary."""

    batch: tuple[int, ...]
    L: int
    S: int
    E: int
    Ev: int
    tiles: int = 0
    mask_shape: str = "full"  # SdpaCase.mask_shape of the masks drawn on it: a mask's shape is a shape too

    @property
    def size(self) -> int:
        return int(np.prod(self.batch, dtype=np.int64)) * (self.L * self.E + self.S * (self.E + self.Ev))


def _small(rng: np.random.Generator, largest: int, smallest: int = 1) -> int:
    """A size as :func:`kqv.conformance.strategies.sizes` draws it: mostly up to 8, now and then up to ``largest``."""
    top = max(smallest, min(largest, SMALL)) if rng.random() < 0.75 else max(smallest, largest)
    return int(rng.integers(smallest, top + 1))


def _boundary(rng: np.random.Generator, sizes: tuple[int, ...]) -> int:
    return int(sizes[int(rng.integers(len(sizes)))])


def _first(declaration: Declaration, profile: Profile, rng: np.random.Generator) -> Shape:
    dims = max(declaration.batch_dims)
    batch = () if dims == 0 else (max(2, _small(rng, profile.max_batch)),) * (dims - 1) + (HEADS,)
    if dims == 1:
        batch = (HEADS,)
    S = _small(rng, profile.max_length, 2)
    E = _small(rng, profile.max_width, 2)
    return Shape(batch, S, S, E, _small(rng, profile.max_width) if declaration.value_width else E)


def _other(declaration: Declaration, profile: Profile, rng: np.random.Generator, n: int) -> Shape:
    dims = declaration.batch_dims[n % len(declaration.batch_dims)]
    batch = tuple(int(rng.integers(1, profile.max_batch + 1)) for _ in range(dims))
    S = _small(rng, profile.max_length)
    relation = n % 3 if declaration.cross_lengths else 0  # L = S, L < S, L > S in turn
    L = S if relation == 0 else _small(rng, S) if relation == 1 else S + _small(rng, profile.max_length)
    E = _small(rng, profile.max_width)
    return Shape(batch, L, S, E, _small(rng, profile.max_width) if declaration.value_width else E)


def _every_tile(declaration: Declaration, profile: Profile, rng: np.random.Generator, equal: bool,
                large: bool = False) -> Shape:
    """Every size at a boundary; ``large``: past the tiles where kernels most often stop (lengths past
    ``LARGE_LENGTH``, widths past ``LARGE_WIDTH``) and off every tile (not a multiple of 16, so that each tile
    size leaves a last partial tile), so that a pool with few such entries still sees there."""
    lengths, widths = profile.length_boundaries(), profile.width_boundaries()
    if large:
        lengths = tuple(n for n in lengths if n > LARGE_LENGTH and n % 16) or lengths[-1:]
        widths = tuple(n for n in widths if n > LARGE_WIDTH and n % 16) or widths[-1:]
    S = _boundary(rng, lengths)
    L = S if equal or not declaration.cross_lengths else min(S, _boundary(rng, lengths))
    E = _boundary(rng, widths)
    Ev = _boundary(rng, widths) if declaration.value_width else E
    return Shape((1,) * max(declaration.batch_dims), L, S, E, Ev, tiles=4)


def _one_tile(declaration: Declaration, profile: Profile, rng: np.random.Generator, base: Shape) -> Shape:
    axes = ("S", "E") + (("Ev",) if declaration.value_width else ())
    axis = axes[int(rng.integers(len(axes)))]
    if axis == "S":
        S = _boundary(rng, profile.length_boundaries())
        return Shape(base.batch, S, S, base.E, base.Ev, tiles=2)
    size = _boundary(rng, profile.width_boundaries())
    if axis == "E":
        return Shape(base.batch, base.L, base.S, size, base.Ev if declaration.value_width else size, tiles=1)
    return Shape(base.batch, base.L, base.S, base.E, size, tiles=1)


@functools.lru_cache(maxsize=64)
def pool(declaration: Declaration, dtype: str | None, profile: Profile) -> tuple[Shape, ...]:
    """The ``profile.shapes`` shapes of a run at ``profile.shape_seed`` and ``dtype``, smallest first."""
    count = max(MIN_SHAPES, profile.shapes)
    rng = np.random.default_rng(zlib.crc32(f"{profile.shape_seed}:{dtype}:{profile.name}:shapes".encode()))
    tiles = max(2, count // 4)
    first = _first(declaration, profile, rng)
    entries = [first] + [_other(declaration, profile, rng, n) for n in range(1, count - tiles)]
    entries += [_every_tile(declaration, profile, rng, equal=True, large=True), _one_tile(declaration, profile, rng, first)]
    for _ in range(tiles - 2):
        if rng.random() < 0.5:
            entries.append(_every_tile(declaration, profile, rng, equal=False))
        else:
            entries.append(_one_tile(declaration, profile, rng, entries[int(rng.integers(count - tiles))]))
    entries = [dataclasses.replace(shape, mask_shape=_mask_shape(shape, rng)) for shape in entries]
    return tuple(sorted(dict.fromkeys(entries), key=lambda shape: (shape.size, shape.tiles)))


def _mask_shape(shape: Shape, rng: np.random.Generator) -> str:
    """The one mask shape of the masks drawn on ``shape``: full, shared, or broadcast along some batch dims."""
    if not shape.batch:
        return "shared"
    choice = int(rng.integers(3))
    if choice == 2:
        return "broadcast-" + "".join(str(int(rng.integers(2))) for _ in shape.batch)
    return ("full", "shared")[choice]


def suits(shape: Shape, *, equal: bool, queries_at_most_keys: bool, min_width: int, min_length: int,
          min_batch_dims: int, min_first_batch: int, tiles: bool, every_tile: bool) -> bool:
    """Whether a check that draws with these options can use ``shape``."""
    return ((shape.L == shape.S or not equal) and (shape.L <= shape.S or not queries_at_most_keys)
            and shape.E >= min_width and min(shape.L, shape.S) >= min_length and len(shape.batch) >= min_batch_dims
            and (not shape.batch or shape.batch[0] >= min_first_batch)
            and (shape.tiles == 4 if every_tile else (shape.tiles > 0) == tiles))
