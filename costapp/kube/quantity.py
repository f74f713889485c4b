"""Kubernetes resource quantities (``250m``, ``1.5``, ``2Gi``, ``129e6``, ``100n``, ``1E``) → float.

This follows k8s.io/apimachinery ``resource.ParseQuantity`` step for step, so that a string the
API server accepts parses here to the same value, and a string it rejects is rejected here:

1. Scan ``[sign] digits [. digits] suffix`` the way ``parseQuantityString`` does (leading zeros
   stripped; ``1.`` and ``.5`` allowed; a bare sign or ``.`` is zero).
2. Interpret the suffix: decimal SI (``n u m "" k M G T P E``), binary SI (``Ki … Ei``), or a
   decimal exponent (``e3``, ``E-2``, ``e+6``).
3. Compute the exact value with integers, round a non-zero magnitude *up* to a whole nano
   (``0.1n`` → ``1n``, as ParseQuantity does), and cap a binary-SI value at 2^63-1 (``8Ei``).
4. Return the nearest float: one correctly rounded integer division, nanos / 10^9.

Deviation, stated: a decimal value too large for a float (beyond ~1e308) raises QuantityError
where Go would keep an arbitrary-precision decimal.

Quantities repeat a lot (``100m``, ``128Mi``), so parsed values are cached; the unique values of
metrics.k8s.io (``19816850n``, ``2030384Ki``) take a short fast path that needs no cache.
"""

from __future__ import annotations

__all__ = ["QuantityError", "parse_quantity"]


class QuantityError(ValueError):
    """The string is not a Kubernetes quantity."""


ERR_FORMAT = "quantity {!r} does not match [+-]digits[.digits][suffix]"
ERR_SUFFIX = "quantity {!r} has an unknown suffix {!r}"
ERR_NUMERIC = "quantity {!r} has no numeric part"
ERR_TOO_LARGE = "quantity {!r} is too large for a float"

_DIGITS = frozenset("0123456789")
_SUFFIX_CHARS = frozenset("eEinumkKMGTP")
_DECIMAL_SI = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SI = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_MAX_INT64 = (1 << 63) - 1
_NANO = 1_000_000_000
_MAX_BINARY_NANOS = _MAX_INT64 * _NANO
_MAX_INT64_FACTORS = 18  # decimal digits that always fit an int64

_cache: dict[str, float] = {}
_CACHE_LIMIT = 200_000


def parse_quantity(text: str) -> float:
    """Parse a Kubernetes quantity into a float in base units (cores, bytes, devices).

    Raises QuantityError for anything ``resource.ParseQuantity`` would reject.
    """
    value = _cache.get(text)
    if value is not None:
        return value
    # Fast paths for what metrics-server emits: "<digits>n" (CPU) and "<digits>Ki" (memory).
    if text[-1:] == "n":
        digits = text[:-1]
        if digits.isascii() and digits.isdigit():
            return int(digits) / _NANO
    elif text[-2:] == "Ki":
        digits = text[:-2]
        if digits.isascii() and digits.isdigit():
            return float(int(digits) << 10)
    value = _parse(text)
    if len(_cache) >= _CACHE_LIMIT:
        _cache.clear()
    _cache[text] = value
    return value


def _scan(text: str) -> tuple[bool, str, str, bool, str]:
    """Split like apimachinery's parseQuantityString.

    Returns (positive, num, denom, had_digits, suffix); ``num`` has leading zeros stripped and is
    "0" when empty.
    """
    end = len(text)
    pos = 0
    positive = True
    if end and text[0] in "+-":
        positive = text[0] == "+"
        pos = 1
    start = pos
    while pos < end and text[pos] == "0":
        pos += 1
    num_start = pos
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    num = text[num_start:pos] or "0"
    had_digits = pos > start
    denom = ""
    if pos < end and text[pos] == ".":
        pos += 1
        denom_start = pos
        while pos < end and text[pos] in _DIGITS:
            pos += 1
        denom = text[denom_start:pos]
        had_digits = had_digits or bool(denom)
    suffix_start = pos
    while pos < end and text[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    if pos != end:
        raise QuantityError(ERR_FORMAT.format(text))
    return positive, num, denom, had_digits, text[suffix_start:]


def _interpret(text: str, suffix: str) -> tuple[int, int, str]:
    """Return (base, exponent, format) for a suffix, like apimachinery's quantitySuffixer."""
    if suffix in _DECIMAL_SI:
        return 10, _DECIMAL_SI[suffix], "DecimalSI"
    if suffix in _BINARY_SI:
        return 2, _BINARY_SI[suffix], "BinarySI"
    if len(suffix) > 1 and suffix[0] in "eE":
        body = suffix[1:]
        digits = body[1:] if body[0] in "+-" else body
        if digits and digits.isascii() and digits.isdigit():
            exponent = int(body)
            if -(1 << 63) <= exponent <= _MAX_INT64:
                # Go converts the int64 exponent to int32, wrapping.
                exponent = (exponent + (1 << 31)) % (1 << 32) - (1 << 31)
                return 10, exponent, "DecimalExponent"
    raise QuantityError(ERR_SUFFIX.format(text, suffix))


def _parse(text: str) -> float:
    if not text:
        raise QuantityError(ERR_FORMAT.format(text))
    positive, num, denom, had_digits, suffix = _scan(text)
    base, exponent, fmt = _interpret(text, suffix)

    # Would Go take its int64 fast path? Only then is a digit-less string ("+", ".", "Ki") zero
    # rather than an error.
    if fmt == "BinarySI":
        if exponent >= 0 and not denom:
            precision = 15 - len(num) - int(exponent * 3 / 10) - 1
        else:
            precision = -1
        scale = 0
    else:
        precision = _MAX_INT64_FACTORS - (len(num) + len(denom))
        scale = exponent
    fast = precision >= 0 and scale - len(denom) >= -9
    if not had_digits and not fast:
        raise QuantityError(ERR_NUMERIC.format(text))

    # Exact magnitude in nanos, rounded up (away from zero) to a whole nano.
    mantissa = int(num + denom)
    if mantissa == 0:
        return 0.0
    if base == 2:
        numerator = mantissa << exponent
        nanos = -((-numerator * _NANO) // 10 ** len(denom))
        if fmt == "BinarySI" and nanos > _MAX_BINARY_NANOS:
            nanos = _MAX_BINARY_NANOS
    else:
        shift = exponent + 9 - len(denom)
        if shift >= 0:
            if shift + len(str(mantissa)) > 330:
                raise QuantityError(ERR_TOO_LARGE.format(text))
            nanos = mantissa * 10**shift
        elif -shift > len(str(mantissa)):
            nanos = 1  # 0 < value < 1n rounds up to 1n
        else:
            nanos = -((-mantissa) // 10**-shift)
    value = nanos / _NANO
    return value if positive else -value
