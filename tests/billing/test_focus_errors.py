"""Broken variants of the real FOCUS sample: always a BillingFileError naming file, row, column."""

from __future__ import annotations

import gzip
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costapp.billing import focus
from costapp.billing.focus import BillingFileError, iter_focus_rows


def read(data: bytes, **kw) -> list[focus.FocusCharge]:
    return list(iter_focus_rows(io.BytesIO(data), source_name="bill.csv", **kw))


def error(data: bytes, **kw) -> BillingFileError:
    with pytest.raises(BillingFileError) as err:
        read(data, **kw)
    assert str(err.value).startswith("bill.csv")
    return err.value


def test_truncated_file_names_the_short_row(focus_bytes):
    cut = focus_bytes[: len(focus_bytes) // 2]
    err = error(cut)
    assert err.reason.startswith("row has ") and "header has 44" in err.reason
    assert err.row == cut.count(b"\n") + 1


def test_truncated_gzip_names_the_file(focus_bytes, tmp_path):
    p = tmp_path / "bill.csv.gz"
    p.write_bytes(gzip.compress(focus_bytes)[:-100])
    with pytest.raises(BillingFileError) as err:
        list(iter_focus_rows(p))
    assert err.value.file == str(p)
    assert err.value.reason.startswith("compressed stream is truncated or corrupt")


def test_corrupt_gzip_is_a_billing_error(focus_bytes):
    data = bytearray(gzip.compress(focus_bytes))
    data[2000:2010] = b"\x00" * 10
    assert error(bytes(data)).reason.startswith("compressed stream is truncated or corrupt")


def test_missing_required_column(focus_bytes):
    for col in ("ChargePeriodStart", "ChargePeriodEnd", "EffectiveCost", "BillingCurrency"):
        err = error(focus_bytes.replace(f'"{col}"'.encode(), b'"Renamed"', 1))
        assert (err.row, err.column, err.reason) == (1, col, focus.MSG_MISSING_COLUMN)


def test_missing_resource_id_column_is_fine(focus_bytes):
    rows = read(focus_bytes.replace(b'"ResourceId"', b'"Other"', 1))
    assert len(rows) == 1000 and all(r.resource_id is None for r in rows)


def test_text_in_a_cost_column(focus_bytes):
    data = focus_bytes.replace(b"0.00000080000", b'"12,50"', 1)
    err = error(data)
    assert (err.row, err.column) == (2, "BilledCost")
    assert err.reason == focus.MSG_NOT_A_NUMBER.format(value="12,50")


@pytest.mark.parametrize("bad", [b"NaN", b"inf", b"-Infinity", b"sNaN"])
def test_nan_and_infinity_are_rejected(focus_bytes, bad):
    err = error(focus_bytes.replace(b"0.00000080000", bad, 1))
    assert err.column == "BilledCost"
    assert err.reason == focus.MSG_NOT_FINITE.format(value=bad.decode())


def test_null_effective_cost_is_rejected(focus_bytes):
    lines = focus_bytes.split(b"\n")
    cells = lines[1].split(b",")
    cells[22] = b"NULL"  # EffectiveCost
    lines[1] = b",".join(cells)
    err = error(b"\n".join(lines))
    assert (err.row, err.column, err.reason) == (2, "EffectiveCost", focus.MSG_REQUIRED_NULL)


def test_unparseable_timestamp(focus_bytes):
    err = error(focus_bytes.replace(b'"2024-09-18 22:00:00"', b'"18/09/2024 22:00"', 1))
    assert (err.row, err.column) == (2, "ChargePeriodStart")
    assert err.reason == focus.MSG_BAD_TIMESTAMP.format(value="18/09/2024 22:00")


def test_end_before_start(focus_bytes):
    err = error(focus_bytes.replace(b'"2024-09-18 23:00:00"', b'"2024-09-18 21:00:00"', 1))
    assert (err.row, err.column) == (2, "ChargePeriodEnd")
    assert err.reason.startswith("ends before it starts")


def test_currency_mix_is_reported_at_the_first_odd_row(focus_bytes):
    err = error(focus_bytes.replace(b'"USD"', b'"EUR"', 3))  # rows 2-4 in EUR, row 5 in USD
    assert (err.row, err.column) == (5, "BillingCurrency")
    assert err.reason == focus.MSG_CURRENCY_MIX.format(value="USD", expected="EUR")


def test_import_currency_must_match_the_file(focus_bytes):
    err = error(focus_bytes, currency="EUR")
    assert (err.row, err.column) == (2, "BillingCurrency")


def test_latin1_bytes_name_row_and_column(focus_bytes):
    err = error(focus_bytes.replace(b'"Atlas Nimbus"', b'"Atlas N\xeembus"', 1))
    assert (err.row, err.column, err.reason) == (2, "SubAccountName", focus.MSG_NOT_UTF8)


def test_duplicated_header(focus_bytes):
    err = error(focus_bytes.replace(b'"AvailabilityZone"', b'"Tags"', 1))
    assert (err.row, err.column, err.reason) == (1, "Tags", focus.MSG_DUPLICATE_COLUMN)


def test_a_field_beyond_the_csv_limit_errors_cleanly(focus_bytes):
    err = error(focus_bytes.replace(b'"SunBird"', b'"' + b"x" * 200_000 + b'"', 1))
    assert err.row == 2 and err.reason.startswith("a field is larger than the CSV field limit")


def test_a_line_beyond_the_line_limit_errors_without_reading_it_whole(focus_bytes):
    huge = b"x" * (focus.MAX_LINE_BYTES + 10)
    err = error(focus_bytes.replace(b'"SunBird"', huge, 1))
    assert err.row == 2 and err.reason == focus.MSG_LINE_TOO_LONG.format(limit=focus.MAX_LINE_BYTES)


def test_bad_tags_json(focus_bytes):
    err = error(focus_bytes.replace(b'"{""application"": ""BrightLensMatrix""', b'"{oops', 1))
    assert err.column == "Tags" and err.reason.startswith("Tags is not a JSON object")


def test_tags_that_are_a_list_are_rejected_and_empty_object_is_fine(focus_bytes):
    assert error(focus_bytes.replace(b",NULL\n", b',"[1]"\n', 1)).column == "Tags"
    rows = read(focus_bytes.replace(b",NULL\n", b',"{}"\n', 1))
    assert rows[0].tags == {}


def test_unbalanced_quote_is_a_csv_error(focus_bytes):
    err = error(focus_bytes.replace(b'"SunBird"', b'"Sun"Bird"', 1))
    assert err.row == 2 and err.reason.startswith("malformed CSV")


def test_empty_and_header_only_files(focus_bytes):
    assert error(b"").reason == focus.MSG_EMPTY_FILE
    header = focus_bytes.split(b"\n", 1)[0] + b"\n"
    assert read(header) == []


def test_text_stream_is_a_programming_error():
    with pytest.raises(TypeError):
        list(iter_focus_rows(io.StringIO("a,b\n")))


# -- mutation fuzzing of the real file -----------------------------------------------------------

MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["replace", "delete", "insert", "truncate"]),
        st.integers(min_value=0, max_value=10**9),
        st.binary(min_size=1, max_size=8)
        | st.sampled_from([b'"', b",", b"\n", b"\r", b"NaN", b"NULL", b"\xff", b"\x00", b"e9"]),
    ),
    min_size=1,
    max_size=4,
)


def mutate(data: bytes, ops) -> bytes:
    buf = bytearray(data)
    for op, pos, blob in ops:
        i = pos % (len(buf) + 1)
        if op == "replace":
            buf[i : i + len(blob)] = blob
        elif op == "delete":
            del buf[i : i + len(blob)]
        elif op == "insert":
            buf[i:i] = blob
        else:
            del buf[i:]
    return bytes(buf)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=MUTATIONS, compress=st.booleans())
def test_any_mutation_parses_correctly_or_raises_billing_file_error(focus_bytes, ops, compress):
    data = mutate(focus_bytes, ops)
    if compress:
        data = mutate(gzip.compress(focus_bytes), ops)
    try:
        rows = read(data)
    except BillingFileError as exc:
        assert exc.file == "bill.csv" and exc.reason
        return
    for r in rows:  # whatever parsed honours the record's promises
        assert r.effective_cost.is_finite()
        assert r.charge_period_start <= r.charge_period_end
        assert r.charge_period_start.tzinfo is not None
        assert r.billing_currency
