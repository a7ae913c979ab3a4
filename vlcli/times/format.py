"""Seconds written as a clock, ``hh:mm:ss`` and a fraction: one rounding rule for every output.

The table of times (``00:01:00.0``), subtitle cues (``00:01:00,000``) and evidence file names
(``clip_00-01-00.000.png``) all write a second through :func:`format_clock`, so that one time
never reads differently in two of them. The rule: round to the last digit shown, halves up, on
the decimal value the float prints as (``repr``), so ``1.45`` gives ``1.5`` although the binary
float is a hair below 1.45, and ``59.95`` carries into the minutes (``00:01:00.0``). Hours grow
past two digits when needed.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

__all__ = ["format_clock", "format_hms"]


def format_clock(seconds: float, decimals: int, *, sep: str = ":", mark: str = ".") -> str:
    """``hh<sep>mm<sep>ss<mark>f...`` with ``decimals`` digits, rounded halves up (see above).

    A negative value gets a ``-`` sign, unless it rounds to zero.

    >>> format_clock(3599.9995, 3, mark=",")
    '01:00:00,000'
    >>> format_clock(2.0625, 3, sep="-")
    '00-00-02.063'
    """
    if not math.isfinite(seconds):
        raise ValueError(f"not a finite number of seconds: {seconds!r}")
    scale = 10**decimals
    units = int(
        Decimal(repr(abs(float(seconds)))).quantize(Decimal(1) / scale, rounding=ROUND_HALF_UP)
        * scale
    )
    hours, rest = divmod(units, 3600 * scale)
    minutes, rest = divmod(rest, 60 * scale)
    secs, fraction = divmod(rest, scale)
    sign = "-" if seconds < 0 and units else ""
    tail = f"{mark}{fraction:0{decimals}d}" if decimals else ""
    return f"{sign}{hours:02d}{sep}{minutes:02d}{sep}{secs:02d}{tail}"


def format_hms(seconds: float) -> str:
    """Seconds as ``hh:mm:ss.s``, rounded to the nearest tenth, halves up (see above).

    >>> format_hms(3725.25)
    '01:02:05.3'
    >>> format_hms(59.95)
    '00:01:00.0'
    >>> format_hms(0.04)
    '00:00:00.0'
    """
    return format_clock(seconds, 1)
