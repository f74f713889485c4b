"""Public price catalogs and OpenCost default unit prices, read from the staged files."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from costapp.billing import catalog
from costapp.billing.focus import BillingFileError


def index(prices):
    return {(p.region, p.instance_type, p.capacity_type): p for p in prices}


def test_aws_m5_large_us_east_1(prices_dir):
    prices = index(catalog.load_aws_catalog(prices_dir / catalog.AWS_FILE))
    od = prices[("us-east-1", "m5.large", "on-demand")]
    assert od.hourly == Decimal("0.096") and od.currency == "USD" and not od.estimated
    assert (od.vcpu, od.memory_gib, od.gpus) == (2, Decimal("8.0"), 0)
    spot = prices[("us-east-1", "m5.large", "spot")]
    assert spot.hourly == Decimal("0.03264") and spot.estimated


def test_aws_counts(prices_dir):
    c = Counter(p.capacity_type for p in catalog.load_aws_catalog(prices_dir / catalog.AWS_FILE))
    assert c == {"on-demand": 1367, "spot": 894}  # 473 types have no Spot Advisor entry


def test_gcp_on_demand_and_spot(prices_dir):
    prices = index(catalog.load_gcp_catalog(prices_dir / catalog.GCP_FILE))
    assert prices[("us-central1", "n2-standard-4", "on-demand")].hourly == Decimal("0.194236")
    assert prices[("us-central1", "n2-standard-4", "spot")].hourly == Decimal("0.09212")
    assert len(prices) == 2 * 12721


def test_azure_on_demand_only(prices_dir):
    prices = list(catalog.load_azure_catalog(prices_dir / catalog.AZURE_FILE))
    assert {p.capacity_type for p in prices} == {"on-demand"}
    d2 = index(prices)[("eastus", "Standard_D2s_v3", "on-demand")]
    assert d2.hourly == Decimal("0.096") and d2.vcpu == 2
    assert len(prices) == 67604  # 68 zero prices of the 67,672 rows are skipped


def test_alibaba_is_cny_and_skips_zero_prices(prices_dir):
    prices = list(catalog.load_alibaba_catalog(prices_dir / catalog.ALIBABA_FILE))
    assert {p.currency for p in prices} == {"CNY"}
    idx = index(prices)
    assert idx[("ap-northeast-1", "ecs.c6.2xlarge", "on-demand")].hourly == Decimal("2.3496")
    assert idx[("ap-northeast-1", "ecs.c6.2xlarge", "spot")].hourly == Decimal("0.502")
    assert ("ap-southeast-2", "ecs.g6.large", "on-demand") not in idx  # listed at 0
    assert all(p.hourly > 0 for p in prices)


def test_all_catalogs(prices_dir):
    c = Counter(p.provider for p in catalog.iter_catalog_prices(prices_dir))
    assert c == {"aws": 2261, "gcp": 25442, "azure": 67604, "alibaba": 10128}


def test_a_catalog_missing_a_column_is_a_billing_error(tmp_path):
    bad = tmp_path / "aws.csv"
    bad.write_text("instance_type,region\nm5.large,us-east-1\n")
    with pytest.raises(BillingFileError) as err:
        list(catalog.load_aws_catalog(bad))
    assert "ondemand_hourly" in err.value.reason and err.value.row == 1


def test_a_non_numeric_price_is_a_billing_error(prices_dir, tmp_path):
    bad = tmp_path / "aws.csv"
    src = (prices_dir / catalog.AWS_FILE).read_text().splitlines()
    src[1] = src[1].replace("0.204", "abc", 1)
    bad.write_text("\n".join(src))
    with pytest.raises(BillingFileError) as err:
        list(catalog.load_aws_catalog(bad))
    assert (err.value.row, err.value.column) == (2, "ondemand_hourly")


def test_opencost_default_unit_prices(prices_dir):
    up = catalog.load_unit_prices(data_dir=prices_dir)
    assert up == catalog.UnitPrices(
        cpu_hourly=Decimal("0.031611"),
        ram_gib_hourly=Decimal("0.004237"),
        gpu_hourly=Decimal("0.95"),
        spot_cpu_hourly=Decimal("0.006655"),
        spot_ram_gib_hourly=Decimal("0.000892"),
        currency="USD",
    )


def test_provider_unit_prices_overlay_the_defaults(prices_dir):
    azure = catalog.load_unit_prices("azure", prices_dir)
    assert azure.cpu_hourly == Decimal("0.03900") and azure.gpu_hourly == Decimal("0.0428925")
    gcp = catalog.load_unit_prices("gcp", prices_dir)
    assert gcp.gpu_hourly == Decimal("0.95")  # gcp.json has no GPU price: the default stays
    oracle = catalog.load_unit_prices("oracle", prices_dir)
    assert oracle.spot_cpu_hourly == oracle.cpu_hourly == Decimal("0.015")  # no spot discount
    with pytest.raises(BillingFileError):
        catalog.load_unit_prices("ibm", prices_dir)


def test_unit_prices_node_cost():
    up = catalog.UnitPrices(
        Decimal("0.031611"),
        Decimal("0.004237"),
        Decimal("0.95"),
        Decimal("0.006655"),
        Decimal("0.000892"),
    )
    assert catalog.unit_prices_node_cost(up, 2, 8, 0, spot=False) == Decimal("0.097118")
    assert catalog.unit_prices_node_cost(up, 2, 8, 1, spot=True) == Decimal("0.970446")
    assert catalog.unit_prices_node_cost(up, Decimal("0.5"), 0.5, 0, spot=False) == Decimal(
        "0.0179240"
    )


def test_default_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("COSTAPP_SHARED_DATA", str(tmp_path))
    assert catalog.default_data_dir() == tmp_path / "03_prices"
