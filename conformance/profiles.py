"""Profiles: how many examples each check draws, and how large they may be.

``quick`` is a first look in seconds; ``ci`` (the default) takes about a minute to a few per backend on a 2-core
machine (README, "Profiles"); ``thorough`` draws many more and larger examples, for nightly runs. Sizes are drawn
small-first (hypothesis shrinks towards the smallest), with the profile's maxima reached now and then.

Kernels work in tiles (16 to 512 rows or keys, 16 to 256 features) and break where a size crosses
one, so every profile also draws, for each check judged against the reference and each dtype,
``tile_examples`` cases with a length or a width on either side of a tile size (clause
``attention.tile-boundaries``): ``size - 1``, ``size`` and ``size + 1`` for each tile size up to the
profile's ``max_tile_length`` and ``max_tile_width``, and the odd sizes 113 and 203 between them.
:meth:`Profile.at_tiles` is the profile of those draws.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

LENGTH_TILES = (16, 32, 64, 128, 256, 512)  # rows or keys per tile
WIDTH_TILES = (16, 32, 64, 128, 256)  # features per tile (head dims)
PE_LENGTH_TILES = (128, 256, 512, 1024, 2048, 4096, 8192)  # positions of an encoding computed in blocks
ODD_SIZES = (113, 203)  # between tiles, as FlashAttention's tests draw them
OFFSETS = (-1, 0, 1)  # either side of a tile size, and on it


def centres(tiles: tuple[int, ...], largest: int, odd: tuple[int, ...] = ODD_SIZES) -> tuple[int, ...]:
    """The tile sizes and odd sizes that, with an offset of -1, 0 or +1, stay within ``largest``, in increasing order."""
    return tuple(sorted(size for size in tiles + odd if size + 1 <= largest))


def boundaries(tiles: tuple[int, ...], largest: int, odd: tuple[int, ...] = ODD_SIZES) -> tuple[int, ...]:
    """``size - 1, size, size + 1`` for each of the :func:`centres`, in increasing order (hypothesis shrinks a
    failure to the smallest one that shows it)."""
    return tuple(sorted({size + offset for size in centres(tiles, largest, odd) for offset in OFFSETS}))


@dataclass(frozen=True)
class Profile:
    name: str
    examples: int  # per check and dtype
    max_batch: int  # size of each batch dim
    max_length: int  # L and S
    max_width: int  # E, Ev, d_k, d_v
    max_heads: int
    max_pe_length: int
    max_d_model: int
    tile_examples: int = 0  # per check judged against the reference and dtype, at a tile boundary
    tile_clause_examples: int = 0  # per dtype for attention.tile-boundaries, every size at a boundary
    max_tile_length: int = 0  # the largest length boundary drawn (L, S)
    max_tile_width: int = 0  # the largest width boundary drawn (E, Ev, d_k, d_v, d_model)
    max_tile_pe_length: int = 0  # the largest length boundary of an encoding
    tiles: bool = False  # the draws at tile boundaries (see at_tiles)
    shapes: int = 0  # a budget of shapes per dtype (Declaration.shapes), 0 for none; see budgeted
    shape_seed: int = 0  # the run's seed, which picks the shapes of the budget

    def budgeted(self, shapes: int, seed: int) -> "Profile":
        """The profile of a run of a backend that declares ``shapes``: its sdpa cases take their sizes from
        ``shapes`` shapes per dtype that ``seed`` picks (``kqv.conformance.kinds.sdpa.shapes``); unchanged for 0."""
        return dataclasses.replace(self, shapes=shapes, shape_seed=seed) if shapes else self

    def at_tiles(self) -> "Profile":
        """The profile of the draws at tile boundaries: ``tile_examples`` examples, each with a length or a width
        at a boundary and the rest as small as the profile draws it."""
        return dataclasses.replace(self, examples=self.tile_examples, tiles=True)

    def length_boundaries(self) -> tuple[int, ...]:
        return boundaries(LENGTH_TILES, self.max_tile_length)

    def width_boundaries(self) -> tuple[int, ...]:
        return boundaries(WIDTH_TILES, self.max_tile_width)

    def pe_length_boundaries(self) -> tuple[int, ...]:
        return boundaries(PE_LENGTH_TILES, self.max_tile_pe_length, odd=())


PROFILES = {
    "quick": Profile("quick", examples=8, max_batch=2, max_length=8, max_width=8, max_heads=3,
                     max_pe_length=64, max_d_model=32, tile_examples=2, tile_clause_examples=24, max_tile_length=257,
                     max_tile_width=257, max_tile_pe_length=1025),
    "ci": Profile("ci", examples=50, max_batch=3, max_length=48, max_width=32, max_heads=4,
                  max_pe_length=1024, max_d_model=128, tile_examples=4, tile_clause_examples=24, max_tile_length=513,
                  max_tile_width=257, max_tile_pe_length=4097),
    "thorough": Profile("thorough", examples=250, max_batch=3, max_length=640, max_width=128, max_heads=8,
                        max_pe_length=8192, max_d_model=512, tile_examples=20, tile_clause_examples=100,
                        max_tile_length=513, max_tile_width=257, max_tile_pe_length=8193),
}


def profile(name: str) -> Profile:
    """The profile called ``name``; a ValueError listing the names otherwise."""
    if name not in PROFILES:
        raise ValueError(f"profile: expected one of {', '.join(PROFILES)}, got {name!r}")
    return PROFILES[name]
