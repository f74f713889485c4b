"""The streaming FOCUS reader on the real FOCUS 1.0 sample and the FOCUS spec's examples."""

from __future__ import annotations

import ast
import csv
import gzip
import io
from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from costapp.billing import focus
from costapp.billing.focus import BillingFileError, iter_focus_rows

BILLING = Path(focus.__file__).parent


def plain_rows(path: Path) -> list[dict[str, str]]:
    """The file read independently of the code under test: csv + Decimal, nothing else."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_pure_modules_import_no_django_at_module_level():
    # bench.main() imports Django inside the function, for the database part only
    for name in ("focus.py", "catalog.py", "bench.py"):
        tree = ast.parse((BILLING / name).read_text())
        tree.body = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            (node.module or "").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
        }
        assert "django" not in imported, name


def test_reads_all_1000_rows_with_their_line_numbers(focus_sample):
    rows = list(iter_focus_rows(focus_sample))
    assert len(rows) == 1000
    assert rows[0].row == 2 and rows[-1].row == 1001


def test_effective_cost_totals_by_provider_match_an_independent_read(focus_sample):
    expected: dict[str, Decimal] = defaultdict(Decimal)
    for r in plain_rows(focus_sample):
        expected[r["ProviderName"]] += Decimal(r["EffectiveCost"])
    got: dict[str, Decimal] = defaultdict(Decimal)
    for c in iter_focus_rows(focus_sample):
        got[c.provider_name] += c.effective_cost
    assert got == expected
    assert got["AWS"] == Decimal("13.00000000000")
    assert got["Microsoft"] == Decimal("1.97651418586")
    assert set(got) == {"AWS", "Microsoft", "Oracle"}


def test_every_money_column_is_the_exact_decimal_of_the_text(focus_sample):
    plain = plain_rows(focus_sample)
    for r, c in zip(plain, iter_focus_rows(focus_sample), strict=True):
        for col, attr in (("BilledCost", "billed_cost"), ("ListCost", "list_cost")):
            want = None if r[col] in ("NULL", "") else Decimal(r[col])
            assert getattr(c, attr) == want


def test_the_26_ec2_instance_hour_rows_are_node_charges(focus_sample):
    charges = list(iter_focus_rows(focus_sample))
    ec2 = [c for c in charges if c.charge_description and "Instance Hour" in c.charge_description]
    assert len(ec2) == 26
    assert all(focus.is_node_charge(c) for c in ec2)
    assert all(c.resource_id.startswith("i-") for c in ec2)
    nodes = [c for c in charges if focus.is_node_charge(c)]
    # plus 5 OCI instance rows billed per OCPU-hour and GB-hour
    assert Counter(c.provider_name for c in nodes) == {"AWS": 26, "Oracle": 5}


def test_savings_plan_rows_keep_their_commitment_columns(focus_sample):
    sp = [c for c in iter_focus_rows(focus_sample) if c.commitment_discount_type == "Savings Plan"]
    assert len(sp) == 4
    for c in sp:
        assert c.pricing_category == "Committed"
        assert c.commitment_discount_category == "Spend"
        assert c.commitment_discount_status == "Used"
        assert c.commitment_discount_id.startswith("arn:aws:savingsplans::")
        assert c.effective_cost == 0 and c.list_cost > 0


def test_null_literals_and_empty_cells_are_none(focus_sample):
    charges = list(iter_focus_rows(focus_sample))
    first = charges[0]
    assert first.availability_zone is None and first.charge_class is None
    assert first.tags == {}
    oracle = [c for c in charges if c.provider_name == "Oracle"]
    assert oracle and all(c.pricing_category is None for c in oracle)  # empty cells
    assert sum(1 for c in charges if c.tags) == 711


def test_timestamps_are_aware_utc_and_periods_are_hours(focus_sample):
    c = next(iter(iter_focus_rows(focus_sample)))
    assert c.charge_period_start == datetime(2024, 9, 18, 22, tzinfo=UTC)
    assert c.charge_period_end == datetime(2024, 9, 18, 23, tzinfo=UTC)
    assert c.billing_period_start == datetime(2024, 9, 1, tzinfo=UTC)


def test_tags_are_a_mapping_of_strings(focus_sample):
    aks = [c for c in iter_focus_rows(focus_sample) if c.service_name == "Azure Kubernetes Service"]
    assert len(aks) == 1
    assert aks[0].tags["CostCenter"] == "1234"
    assert focus.charge_kind(aks[0]) == "control-plane"
    assert focus.cluster_from_charge(aks[0]) == "AnalyticsEngine"


def test_charge_categories_are_kept(focus_sample):
    cats = Counter(c.charge_category for c in iter_focus_rows(focus_sample))
    assert cats == {"Usage": 997, "Adjustment": 2, "Credit": 1}


def test_gzip_is_detected_by_magic_bytes_not_the_name(focus_bytes, tmp_path):
    p = tmp_path / "bill.csv"  # no .gz suffix on purpose
    p.write_bytes(gzip.compress(focus_bytes))
    assert sum(1 for _ in iter_focus_rows(p)) == 1000


def test_reads_from_a_binary_file_object(focus_bytes):
    rows = list(iter_focus_rows(io.BytesIO(focus_bytes), source_name="upload.csv"))
    assert len(rows) == 1000


def test_bom_and_crlf_are_tolerated(focus_bytes):
    data = b"\xef\xbb\xbf" + focus_bytes.replace(b"\n", b"\r\n")
    rows = list(iter_focus_rows(io.BytesIO(data)))
    assert len(rows) == 1000
    assert rows[0].availability_zone is None


def test_timestamps_with_t_z_and_offsets_parse_to_the_same_instant(focus_bytes):
    text = focus_bytes.decode()
    for variant in (
        "2024-09-18T22:00:00Z",
        "2024-09-18T22:00:00+00:00",
        "2024-09-19T00:00:00+02:00",
    ):
        data = text.replace('"2024-09-18 22:00:00"', f'"{variant}"', 1).encode()
        first = next(iter(iter_focus_rows(io.BytesIO(data))))
        assert first.charge_period_start == datetime(2024, 9, 18, 22, tzinfo=UTC)


def test_ten_thousand_character_cells_are_fine(focus_bytes):
    data = focus_bytes.replace(b'"SunBird"', b'"' + b"x" * 10_000 + b'"', 1)
    first = next(iter(iter_focus_rows(io.BytesIO(data))))
    assert first.billing_account_name == "x" * 10_000


def test_older_focus_column_names_are_accepted(focus_bytes):
    data = (
        focus_bytes.replace(b'"ChargeCategory"', b'"ChargeType"', 1)
        .replace(b'"EffectiveCost"', b'"AmortizedCost"', 1)
        .replace(b'"ProviderName"', b'"ServiceProviderName"', 1)
    )
    rows = list(iter_focus_rows(io.BytesIO(data)))
    assert rows[0].charge_category == "Usage" and rows[0].provider_name == "AWS"
    assert sum(r.effective_cost for r in rows) == sum(
        r.effective_cost for r in iter_focus_rows(io.BytesIO(focus_bytes))
    )


def test_provider_x_columns_and_unknown_columns_are_ignored(focus_bytes):
    data = focus_bytes.replace(b'"Id"', b'"x_EffectiveCost"', 1)
    assert len(list(iter_focus_rows(io.BytesIO(data)))) == 1000


# -- the FOCUS specification's commitment examples -----------------------------------------------


def commitment_files(shared_data: Path) -> list[Path]:
    return sorted((shared_data / "01_focus" / "focus_spec_commitment_examples").glob("*.csv"))


def test_commitment_examples_without_billing_currency_are_rejected_unless_currency_is_given(
    shared_data,
):
    files = commitment_files(shared_data)
    assert len(files) == 11
    for path in files:
        with pytest.raises(BillingFileError) as err:
            list(iter_focus_rows(path))
        assert err.value.column == "BillingCurrency"
        assert err.value.reason == focus.MSG_MISSING_COLUMN
        assert err.value.row == 1


def test_commitment_examples_parse_with_a_named_currency(shared_data):
    parsed, rejected = {}, {}
    for path in commitment_files(shared_data):
        try:
            parsed[path.name] = list(iter_focus_rows(path, currency="USD"))
        except BillingFileError as exc:
            rejected[path.name] = exc
    assert len(parsed) == 9
    # purchase scenarios 2 and 3 contain '2023-02-01T30:00:00Z' (hour 30): not a timestamp
    assert sorted(rejected) == [
        "commitment_discount_scenarios__commitment_discount_purchase_scenario_2.csv",
        "commitment_discount_scenarios__commitment_discount_purchase_scenario_3.csv",
    ]
    for exc in rejected.values():
        assert exc.column == "ChargePeriodEnd" and "T30:00:00Z" in exc.reason
    flex = parsed[
        "commitment_discount_flexibility__one_hundred_percent_utilization_with_commitment_"
        "discount_flexibility_with_1_resource.csv"
    ]
    # blank lines between rows are skipped; lower-case `null` is null; rows keep line numbers
    assert [c.row for c in flex] == [2, 4, 6]
    assert flex[0].charge_category == "Purchase" and flex[0].consumed_quantity is None
    assert all(c.billing_currency == "USD" for c in flex)
    usage4 = parsed["commitment_discount_scenarios__commitment_discount_usage_scenario_4.csv"]
    assert sum(c.effective_cost for c in usage4) == Decimal("1.50")


def test_azure_native_aks_export_is_rejected_as_not_focus(shared_data):
    for name in ("Template.csv", "VirtualMachine.csv"):
        path = shared_data / "02_billing_native" / "azure_aks_opencost" / name
        with pytest.raises(BillingFileError) as err:
            list(iter_focus_rows(path))
        assert err.value.reason == focus.MSG_NOT_FOCUS
        assert err.value.row == 1
