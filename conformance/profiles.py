"""Profiles: how many examples each check draws, and how large they may be.

``quick`` is a first look in seconds; ``ci`` (the default) keeps one backend within a minute on a
2-core machine; ``thorough`` draws many more and larger examples, for nightly runs. Sizes are drawn
small-first (hypothesis shrinks towards the smallest), with the profile's maxima reached now and then.
"""

from __future__ import annotations

from dataclasses import dataclass


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


PROFILES = {
    "quick": Profile("quick", examples=8, max_batch=2, max_length=8, max_width=8, max_heads=3,
                     max_pe_length=64, max_d_model=32),
    "ci": Profile("ci", examples=50, max_batch=3, max_length=48, max_width=32, max_heads=4,
                  max_pe_length=1024, max_d_model=128),
    "thorough": Profile("thorough", examples=250, max_batch=3, max_length=640, max_width=128, max_heads=8,
                        max_pe_length=8192, max_d_model=512),
}


def profile(name: str) -> Profile:
    """The profile called ``name``; a ValueError listing the names otherwise."""
    if name not in PROFILES:
        raise ValueError(f"profile: expected one of {', '.join(PROFILES)}, got {name!r}")
    return PROFILES[name]
