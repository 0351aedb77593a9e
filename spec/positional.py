"""Section "positional": the sinusoidal positional encoding.

``PE(pos, 2i) = sin(pos / 10000^(2i/d_model))`` and ``PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model))``
for ``pos = 0 .. length-1``: column pair ``i`` is a sine and a cosine of one angle with the
frequency ``w_i = 10000^(-2i/d_model)``. An odd ``d_model`` ends with an unpaired sine column.
Shifting the position by ``k`` rotates every pair by the angle ``k w_i``.
"""

from __future__ import annotations

import sympy

from .checks import evaluated, relation, same_matrix, same_matrix_trig
from .clause import Clause, Derivation, Step
from .notation import c, d_model

SECTION = ("positional", "Positional encoding")
PAGE = "positional"  # the docs page that renders the section

pos = sympy.Symbol("pos", integer=True, nonnegative=True)
i = sympy.Symbol("i", integer=True, nonnegative=True)  # the column pair
k = sympy.Symbol("k", integer=True)  # a shift of the position
m = sympy.Symbol("m", integer=True, positive=True)
PE = sympy.IndexedBase("PE")
wavelength = sympy.IndexedBase("lambda")

BASE = sympy.Integer(10000)


def angle(position: sympy.Expr, column: sympy.Expr, width: sympy.Expr = d_model) -> sympy.Expr:
    """``position / 10000^(2 floor(column/2) / width)``: the angle of a column's pair."""
    return position / BASE ** (2 * sympy.floor(column / 2) / width)


def encoding(position: sympy.Expr, column: sympy.Expr, width: sympy.Expr = d_model) -> sympy.Expr:
    """``PE(position, column)``: sin for even columns, cos for odd ones, of the pair's angle."""
    theta = angle(position, column, width)
    return sympy.Piecewise((sympy.sin(theta), sympy.Eq(sympy.Mod(column, 2), 0)), (sympy.cos(theta), True))


def _row(position: sympy.Expr, width: int) -> sympy.ImmutableMatrix:
    return sympy.ImmutableMatrix([[encoding(position, column, width) for column in range(width)]])


_pe = encoding(pos, c)
_paper_angle = pos / BASE ** (2 * i / d_model)


def _sinusoid() -> Derivation:
    return Derivation((
        Step("even column c = 2i: PE(pos, 2i) = sin(pos / 10000^(2i/d_model))",
             sympy.Subs(_pe, c, 2 * i), sympy.sin(_paper_angle), check=evaluated),
        Step("odd column c = 2i + 1: PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model))",
             sympy.Subs(_pe, c, 2 * i + 1), sympy.cos(_paper_angle), check=evaluated),
        Step("d_model = 4, pos = 1: the row is sin 1, cos 1, sin(1/100), cos(1/100)",
             _row(sympy.Integer(1), 4),
             sympy.ImmutableMatrix([[sympy.sin(1), sympy.cos(1), sympy.sin(sympy.Rational(1, 100)),
                                     sympy.cos(sympy.Rational(1, 100))]]),
             check=same_matrix),
    ))


sinusoid = Clause(
    id="pe.sinusoid",
    title="Sinusoidal positional encoding",
    statement=(
        "PE(pos, 2i) = sin(pos / 10000^(2i/d_model)) and PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model)) "
        "for pos = 0 .. length-1 and column 0 <= c < d_model, i = floor(c/2); PE is (length, d_model)."
    ),
    expr=sympy.Eq(PE[pos, c], _pe),
    derivation=_sinusoid(),
    section=SECTION[0],
    symbols={"pos": "position, 0 .. length-1", "c": "column", "i": "column pair, floor(c/2)"},
)


def _odd() -> Derivation:
    five = [sympy.Integer(1) / BASE ** sympy.Rational(2 * pair, 5) for pair in range(3)]
    return Derivation((
        Step("d_model = 2m + 1: the last column c = 2m is even, a sine of pair i = m = (d_model - 1)/2",
             sympy.Subs(_pe, (c, d_model), (2 * m, 2 * m + 1)),
             sympy.sin(pos / BASE ** (((2 * m + 1) - 1) / (2 * m + 1))), check=evaluated),
        Step("d_model = 5, pos = 1: sin, cos, sin, cos, then one unpaired sin",
             _row(sympy.Integer(1), 5),
             sympy.ImmutableMatrix([[sympy.sin(five[0]), sympy.cos(five[0]), sympy.sin(five[1]), sympy.cos(five[1]),
                                     sympy.sin(five[2])]]),
             check=same_matrix),
    ))


odd_d_model = Clause(
    id="pe.odd-d-model",
    title="Odd d_model",
    statement=(
        "For odd d_model the last column d_model - 1 is a sine with i = (d_model - 1)/2 and no cosine partner: "
        "PE(pos, d_model - 1) = sin(pos / 10000^((d_model - 1)/d_model)); no column is dropped or padded."
    ),
    expr=sympy.Implies(sympy.Eq(sympy.Mod(d_model, 2), 1),
                       sympy.Eq(PE[pos, d_model - 1], sympy.sin(pos / BASE ** ((d_model - 1) / d_model)))),
    derivation=_odd(),
    section=SECTION[0],
)


def _bounded() -> Derivation:
    even, odd = sympy.Subs(_pe, c, 2 * i), sympy.Subs(_pe, c, 2 * i + 1)
    return Derivation((
        Step("each pair lies on the unit circle: PE(pos, 2i)^2 + PE(pos, 2i+1)^2 = 1",
             even**2 + odd**2, sympy.Integer(1), check=evaluated),
        Step("so PE(pos, 2i)^2 = 1 - PE(pos, 2i+1)^2 <= 1",
             sympy.Ge(1 - sympy.sin(_paper_angle) ** 2, 0, evaluate=False), sympy.true, check=relation),
        Step("and PE(pos, 2i+1)^2 = 1 - PE(pos, 2i)^2 <= 1 (the unpaired sine of an odd d_model too)",
             sympy.Ge(1 - sympy.cos(_paper_angle) ** 2, 0, evaluate=False), sympy.true, check=relation),
    ))


bounded = Clause(
    id="pe.bounded",
    title="Bounded",
    statement="|PE(pos, c)| <= 1 for every position and column, and PE(pos, 2i)^2 + PE(pos, 2i+1)^2 = 1 for every pair.",
    expr=sympy.Le(sympy.Abs(PE[pos, c]), 1),
    derivation=_bounded(),
    section=SECTION[0],
)

_frequency = BASE ** (-2 * i / d_model)
_wavelength = 2 * sympy.pi * BASE ** (2 * i / d_model)


def _wavelengths() -> Derivation:
    return Derivation((
        Step("lambda_i is the period of pair i: sin(w_i (pos + lambda_i)) = sin(w_i pos)",
             sympy.sin(_frequency * (pos + _wavelength)), sympy.sin(_frequency * pos),
             check=lambda lhs, rhs: sympy.simplify(sympy.expand(lhs - rhs)) == 0),
        Step("and cos(w_i (pos + lambda_i)) = cos(w_i pos)",
             sympy.cos(_frequency * (pos + _wavelength)), sympy.cos(_frequency * pos),
             check=lambda lhs, rhs: sympy.simplify(sympy.expand(lhs - rhs)) == 0),
        Step("consecutive wavelengths have the constant ratio 10000^(2/d_model): a geometric progression",
             _wavelength.subs(i, i + 1) / _wavelength, BASE ** (2 / d_model)),
        Step("it starts at lambda_0 = 2 pi", sympy.Subs(_wavelength, i, 0), 2 * sympy.pi, check=evaluated),
        Step("even d_model = 2m: the last pair i = m - 1 has exponent 2i/d_model < 1, so lambda < 2 pi 10000",
             sympy.Gt(1 - 2 * (m - 1) / (2 * m), 0, evaluate=False), sympy.true, check=relation),
        Step("odd d_model = 2m + 1: the last (unpaired) i = m has exponent 2i/d_model < 1 too",
             sympy.Gt(1 - 2 * m / (2 * m + 1), 0, evaluate=False), sympy.true, check=relation),
    ))


wavelengths = Clause(
    id="pe.wavelengths",
    title="Wavelengths",
    statement=(
        "Pair i has wavelength lambda_i = 2 pi 10000^(2i/d_model): a geometric progression with ratio 10000^(2/d_model), "
        "from lambda_0 = 2 pi up to below 2 pi 10000."
    ),
    expr=sympy.Eq(wavelength[i], _wavelength),
    derivation=_wavelengths(),
    section=SECTION[0],
    symbols={"lambda": "wavelength of pair i"},
)


def rotation_matrix(theta: sympy.Expr) -> sympy.ImmutableMatrix:
    """``R(theta) = [[cos theta, sin theta], [-sin theta, cos theta]]``."""
    return sympy.ImmutableMatrix([[sympy.cos(theta), sympy.sin(theta)], [-sympy.sin(theta), sympy.cos(theta)]])


def _pair(position: sympy.Expr) -> sympy.ImmutableMatrix:
    return sympy.ImmutableMatrix([sympy.sin(_frequency * position), sympy.cos(_frequency * position)])


def _rotation() -> Derivation:
    frequencies = [sympy.Integer(1), sympy.Rational(1, 100)]
    blocks = sympy.ImmutableMatrix(sympy.diag(*(rotation_matrix(k * w) for w in frequencies)))
    return Derivation((
        Step("the pair at pos + k is the pair at pos rotated by the angle k w_i",
             _pair(pos + k), rotation_matrix(k * _frequency) * _pair(pos), check=same_matrix_trig),
        Step("the rotation does not depend on pos",
             rotation_matrix(k * _frequency).applyfunc(lambda entry: sympy.Derivative(entry, pos)),
             sympy.zeros(2, 2), check=same_matrix),
        Step("d_model = 4: the whole row moves by the block-diagonal diag(R(k w_0), R(k w_1))",
             _row(pos + k, 4).T, blocks * _row(pos, 4).T, check=same_matrix_trig),
    ))


rotation = Clause(
    id="pe.rotation",
    title="A shift of position is a rotation",
    statement=(
        "[PE(pos+k, 2i), PE(pos+k, 2i+1)] = R(k w_i) [PE(pos, 2i), PE(pos, 2i+1)] with w_i = 10000^(-2i/d_model) and "
        "R(t) = [[cos t, sin t], [-sin t, cos t]]: PE(pos + k) is a block-diagonal linear map of PE(pos), independent of pos."
    ),
    expr=sympy.Eq(sympy.ImmutableMatrix([PE[pos + k, 2 * i], PE[pos + k, 2 * i + 1]]),
                  sympy.MatMul(rotation_matrix(k * _frequency),
                               sympy.ImmutableMatrix([PE[pos, 2 * i], PE[pos, 2 * i + 1]]), evaluate=False),
                  evaluate=False),
    derivation=_rotation(),
    section=SECTION[0],
    symbols={"k": "shift of position", "R": "2x2 rotation"},
)

CLAUSES = (sinusoid, odd_d_model, bounded, wavelengths, rotation)
