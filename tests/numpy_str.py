#!/usr/bin/python3
"""Prints the tables of tests/test_card.c: how NumPy 1.24 prints scalars.

float16, float32, float64: str() of the NumPy scalar; complex64: its repr().
bfloat16, which NumPy lacks: the same rule NumPy's str() follows, computed
here exactly (fractions): the fewest significant digits that round back
(to nearest, ties to even) to the same bfloat16, the nearest such text to
the value (a tie: the even last digit), laid out positionally from 1e-4 up
to 1e16 and in scientific notation outside. `--check` first compares that
rule with NumPy's str() on every float16 and on random float32 and
float64 values.

Usage: /usr/bin/python3 tests/numpy_str.py [--check]
"""
import math
import random
import sys
from fractions import Fraction as F

import numpy as np

FORMATS = {  # bits of precision (implicit one included), emin, emax
    'f16': (11, -14, 15), 'bf16': (8, -126, 127), 'f32': (24, -126, 127),
    'f64': (53, -1022, 1023)}


def round_to(x, fmt):
    """x (a Fraction >= 0) rounded to nearest, ties to even; None past max."""
    p, emin, emax = FORMATS[fmt]
    if x == 0:
        return F(0)
    e = x.numerator.bit_length() - x.denominator.bit_length()
    if F(2) ** e > x:
        e -= 1
    q = F(2) ** (max(e, emin) - p + 1)  # the spacing of the values at x
    m = x / q
    n = m.numerator // m.denominator
    if m - n > F(1, 2) or (m - n == F(1, 2) and n % 2):
        n += 1
    return n * q if n * q <= (2 - F(2) ** (1 - p)) * F(2) ** emax else None


def shortest(v, fmt):
    """The digits (no trailing zeros) and the power of ten of the first."""
    e10 = 0
    while F(10) ** e10 > v:
        e10 -= 1
    while F(10) ** (e10 + 1) <= v:
        e10 += 1
    for nd in range(1, 40):
        scale = F(10) ** (nd - 1 - e10)
        s = v * scale
        lo = s.numerator // s.denominator
        best = None
        for c in ([lo] if lo == s else [lo, lo + 1]):
            if c and round_to(c / scale, fmt) == v:
                d = abs(c / scale - v)
                if best is None or d < best[0] or (d == best[0] and c % 2 == 0):
                    best = (d, c)
        if best:
            digits = str(best[1])
            return digits.rstrip('0') or '0', e10 + len(digits) - nd
    raise AssertionError(v)


def numpy_str(v, fmt):
    """v: a float that fmt holds exactly."""
    if v != v:
        return 'nan'
    if math.isinf(v):
        return '-inf' if v < 0 else 'inf'
    sign = '-' if math.copysign(1, v) < 0 else ''
    a = F(abs(v))
    if a == 0:
        return sign + '0.0'
    digits, exp = shortest(a, fmt)
    if F(1, 10 ** 4) <= a < 10 ** 16:
        if exp < 0:
            return sign + '0.' + '0' * (-exp - 1) + digits
        return sign + digits[:exp + 1].ljust(exp + 1, '0') + '.' + (digits[exp + 1:] or '0')
    return '%s%s%s%se%s%02d' % (sign, digits[0], '.' if len(digits) > 1 else '', digits[1:],
                                '-' if exp < 0 else '+', abs(exp))


def of_bits(bits, utype, ftype):
    return np.array([bits], dtype=utype).view(ftype)[0]


def check():
    bad = 0
    for u in range(65536):
        h = of_bits(u, np.uint16, np.float16)
        bad += str(h) != numpy_str(float(h), 'f16')
    rnd = random.Random(1)
    for _ in range(20000):
        f = of_bits(rnd.getrandbits(32), np.uint32, np.float32)
        bad += str(f) != numpy_str(float(f), 'f32')
        d = of_bits(rnd.getrandbits(64), np.uint64, np.float64)
        bad += str(d) != numpy_str(float(d), 'f64')
    print('/* the rule and NumPy disagree on %d values */' % bad)
    return bad == 0


VALUES = [
    0.0, -0.0, 1.0, -1.0, 3.0, -3.0, 0.5, 1.5, 2.5, 0.1, -0.1, 0.2, 0.3, 1 / 3, -2 / 3,
    0.30000000000000004, math.pi, math.e, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
    1e10, 1e15, 9999999999999998.0, 1e16, -1e16, 1e17, 1e20, 1e-3, 1e-4, 1.0001e-4,
    9.999e-5, 1e-5, 1.5e-5, 1e-7, 1e-10, 2.0 ** 10, 2.0 ** 23, 2.0 ** 24, 2.0 ** 24 + 2,
    2.0 ** 53, 2.0 ** 53 + 2, 2.0 ** -10, 2.0 ** -14, 2.0 ** -24, 2.0 ** -126, 2.0 ** -149,
    2.0 ** 127, 123456789.0, 65504.0, 65520.0, 6.103515625e-05, 5.960464477539063e-08,
    0.046875, 0.0078125, 19781.0625, -7387.15625, 1e-38, 1.1754943508222875e-38,
    1.401298464324817e-45, 3.4028234663852886e38, 2.2250738585072014e-308, 1e-308,
    5e-324, 1.7976931348623157e308, math.nan, -math.nan, math.inf, -math.inf,
]


def table(name, ctype, fmt, rows):
    print('static const struct {\n\t%s bits;\n\tconst char *text;\n} %s[] = {' % (ctype, name))
    seen = set()
    width = {'f16': 4, 'bf16': 4, 'f32': 8, 'f64': 16}[fmt]
    for bits, text in rows:
        if bits not in seen:
            seen.add(bits)
            print('\t{0x%0*x, "%s"},' % (width, bits, text))
    print('};')


def main():
    if '--check' in sys.argv[1:] and not check():
        sys.exit(1)
    with np.errstate(over='ignore'):
        f64, f32, f16 = ([t(v) for v in VALUES] for t in (np.float64, np.float32, np.float16))
        # each type's neighbours of the layout's two boundaries
        for vals, t in ((f64, np.float64), (f32, np.float32), (f16, np.float16)):
            for b in (t(1e-4), t(1e16)):
                if np.isfinite(b):
                    vals += [np.nextafter(b, t(0)), np.nextafter(b, t(np.inf))]
    u64 = [int(np.array([v]).view(np.uint64)[0]) for v in f64]
    u32 = [int(np.array([v]).view(np.uint32)[0]) for v in f32]
    u16 = [int(np.array([v]).view(np.uint16)[0]) for v in f16]
    table('f64_text', 'uint64_t', 'f64', [(u, str(v)) for u, v in zip(u64, f64)])
    table('f32_text', 'uint32_t', 'f32', [(u, str(v)) for u, v in zip(u32, f32)])
    table('f16_text', 'uint16_t', 'f16', [(u, str(v)) for u, v in zip(u16, f16)])
    # bfloat16: each float32 rounded to nearest even (NaNs keep their top half)
    b16 = [u >> 16 if (u & 0x7fffffff) > 0x7f800000 else
           (u + 0x7fff + ((u >> 16) & 1)) >> 16 for u in u32]
    table('bf16_text', 'uint16_t', 'bf16',
          [(b, numpy_str(float(of_bits(b << 16, np.uint32, np.float32)), 'bf16')) for b in b16])
    parts = [0.0, -0.0, 1.0, -1.5, 1e-5, 1e16, 3.4028234663852886e38, math.nan, -math.nan,
             -math.inf]
    rows = []
    for re in parts:
        for im in parts:
            c = np.array([re, im], dtype=np.float32)
            rows.append((int(c.view(np.uint64)[0]), repr(c.view(np.complex64)[0])))
    rnd = random.Random(2)
    for _ in range(8):
        c = np.array([rnd.getrandbits(64)], dtype=np.uint64)
        rows.append((int(c[0]), repr(c.view(np.complex64)[0])))
    table('c64_text', 'uint64_t', 'f64', rows)


main()
