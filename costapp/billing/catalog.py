"""Public price catalogs (instance type -> hourly price) and OpenCost default unit prices.

The catalogs are the second source of a node-hour's cost, after the bill (ARCHITECTURE.md,
step 2); OpenCost's per-unit defaults are the last. Each loader streams one staged file from
`shared/data/03_prices/` and yields `CatalogPrice` records. Pure: no Django.

What the files are (see 03_prices/SOURCES.md):

* AWS `aws/aws_us-east-1_catalog_joined.csv`: us-east-1 only. On-demand is Karpenter's table;
  spot is an *estimate* (on-demand x (1 - Spot Advisor savings %)), marked `estimated=True`.
* GCP `gcp/gcp_prices_karpenter-gcp_all_regions_joined.csv`: on-demand and spot, 43 regions.
  GPU count is known only for `-Ng` machine names (a2/a3/a4); otherwise None, not 0.
* Azure `azure/azure_ondemand_prices_karpenter_all_regions_joined.csv`: on-demand only (no spot or
  reservation prices exist in any staged source); dedicated-host SKUs have no specs.
* Alibaba `alibaba/alibaba_ecs_prices_priceserver_2024-06.csv`: on-demand and the cheapest zone's
  spot. The source does not state its currency; the values are ~7.2x Alibaba's USD list prices,
  so they are read as **CNY** (`ALIBABA_CURRENCY`) — never mix them with USD bills unconverted.

A price of 0 (a type not sold in a region) or a blank price is skipped, never loaded as free.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from costapp.billing.focus import BillingFileError

__all__ = [
    "ALIBABA_CURRENCY",
    "CatalogPrice",
    "UnitPrices",
    "default_data_dir",
    "iter_catalog_prices",
    "load_alibaba_catalog",
    "load_aws_catalog",
    "load_azure_catalog",
    "load_gcp_catalog",
    "load_unit_prices",
    "unit_prices_node_cost",
]

ALIBABA_CURRENCY = "CNY"
"""Currency assumed for the Alibaba priceserver table (not stated in the source; see above)."""

AWS_FILE = "aws/aws_us-east-1_catalog_joined.csv"
GCP_FILE = "gcp/gcp_prices_karpenter-gcp_all_regions_joined.csv"
AZURE_FILE = "azure/azure_ondemand_prices_karpenter_all_regions_joined.csv"
ALIBABA_FILE = "alibaba/alibaba_ecs_prices_priceserver_2024-06.csv"
OPENCOST_DIR = "opencost_configs"

MSG_MISSING_COLUMNS = "catalog is missing columns: {names}"
MSG_BAD_NUMBER = "not a number: {value!r}"
MSG_UNKNOWN_PROVIDER = "no OpenCost price config for provider {provider!r}"


@dataclass(frozen=True, slots=True)
class CatalogPrice:
    """The public hourly price of one instance type in one region and purchase option.

    Fields:
        provider: "aws", "gcp", "azure" or "alibaba".
        region: the provider's region code ("us-east-1", "us-central1", "eastus", "cn-hangzhou").
        instance_type: the provider's machine type name ("m5.large", "n2-standard-4").
        capacity_type: "on-demand" or "spot" (the node label values Karpenter uses).
        hourly: price of one instance for one hour, in `currency` (Decimal, exact from the file).
        currency: ISO 4217 code ("USD"; "CNY" for the Alibaba table, see the module docstring).
        vcpu: virtual CPUs, or None when the source has no specs for the type.
        memory_gib: memory in GiB (GCP's file says GB; GCE machine memory is in GiB), or None.
        gpus: GPU devices, or None when unknown (not the same as 0).
        source_file: the catalog file, relative to the `03_prices` folder.
        estimated: True when the price is derived rather than quoted (AWS spot).
    """

    provider: str
    region: str
    instance_type: str
    capacity_type: str
    hourly: Decimal
    currency: str
    vcpu: int | None
    memory_gib: Decimal | None
    gpus: int | None
    source_file: str
    estimated: bool = False


@dataclass(frozen=True, slots=True)
class UnitPrices:
    """Per-unit hourly prices (OpenCost's defaults): a node costs cpu x cores + ram x GiB + gpu x
    GPUs per hour. Fields are in `currency` per unit-hour: `cpu_hourly` per core, `ram_gib_hourly`
    per GiB, `gpu_hourly` per GPU, and the spot variants for CPU and RAM (GPUs have no spot
    price in OpenCost's configs, so spot nodes pay `gpu_hourly`)."""

    cpu_hourly: Decimal
    ram_gib_hourly: Decimal
    gpu_hourly: Decimal
    spot_cpu_hourly: Decimal
    spot_ram_gib_hourly: Decimal
    currency: str = "USD"


def default_data_dir() -> Path:
    """`$COSTAPP_SHARED_DATA/03_prices` if set, else `../shared/data/03_prices` next to the repo."""
    env = os.environ.get("COSTAPP_SHARED_DATA")
    if env:
        return Path(env) / "03_prices"
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "03_prices"


def _dec(value: str, source: str, row: int, column: str) -> Decimal | None:
    """Blank -> None; otherwise an exact finite Decimal or a BillingFileError."""
    value = value.strip()
    if not value:
        return None
    try:
        d = Decimal(value)
    except InvalidOperation:
        raise BillingFileError(source, row, column, MSG_BAD_NUMBER.format(value=value)) from None
    if not d.is_finite():
        raise BillingFileError(source, row, column, MSG_BAD_NUMBER.format(value=value))
    return d


def _int(value: str, source: str, row: int, column: str) -> int | None:
    d = _dec(value, source, row, column)
    return None if d is None else int(d)


def _rows(path: Path, needed: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(row number with header = 1, row) for a CSV catalog, after checking its columns."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in needed if c not in (reader.fieldnames or [])]
        if missing:
            raise BillingFileError(
                str(path), 1, None, MSG_MISSING_COLUMNS.format(names=", ".join(missing))
            )
        yield from enumerate(reader, start=2)


def _load(
    path: Path | None,
    rel: str,
    provider: str,
    currency: str,
    type_col: str,
    mem_col: str,
    gpu_col: str | None,
    prices: tuple[tuple[str, str, bool], ...],
) -> Iterator[CatalogPrice]:
    """Shared loader: one CatalogPrice per (row, price column) with a positive price."""
    path = path or default_data_dir() / rel
    src = str(path)
    needed = (type_col, "region", "vcpu", mem_col, *((gpu_col,) if gpu_col else ()))
    needed += tuple(col for col, _, _ in prices)
    for i, row in _rows(path, needed):
        vcpu = _int(row["vcpu"], src, i, "vcpu")
        mem = _dec(row[mem_col], src, i, mem_col)
        gpus = _int(row[gpu_col], src, i, gpu_col) if gpu_col else None
        for col, capacity_type, estimated in prices:
            hourly = _dec(row[col], src, i, col)
            if hourly is None or hourly <= 0:
                continue
            yield CatalogPrice(
                provider=provider,
                region=row["region"].strip(),
                instance_type=row[type_col].strip(),
                capacity_type=capacity_type,
                hourly=hourly,
                currency=currency,
                vcpu=vcpu,
                memory_gib=mem,
                gpus=gpus,
                source_file=rel,
                estimated=estimated,
            )


def load_aws_catalog(path: Path | None = None) -> Iterator[CatalogPrice]:
    """AWS us-east-1: on-demand (quoted) and spot (estimated from Spot Advisor savings)."""
    return _load(
        path,
        AWS_FILE,
        "aws",
        "USD",
        "instance_type",
        "memory_gib",
        "gpu",
        (("ondemand_hourly", "on-demand", False), ("spot_hourly_est", "spot", True)),
    )


def load_gcp_catalog(path: Path | None = None) -> Iterator[CatalogPrice]:
    """GCP, all regions: on-demand and spot (USD)."""
    return _load(
        path,
        GCP_FILE,
        "gcp",
        "USD",
        "machine_type",
        "memory_gb",
        "gpu_from_name",
        (("ondemand_hourly_usd", "on-demand", False), ("spot_hourly_usd", "spot", False)),
    )


def load_azure_catalog(path: Path | None = None) -> Iterator[CatalogPrice]:
    """Azure, all regions: on-demand only (USD)."""
    return _load(
        path,
        AZURE_FILE,
        "azure",
        "USD",
        "vm_size",
        "memory_gib",
        "gpu",
        (("ondemand_hourly_usd", "on-demand", False),),
    )


def load_alibaba_catalog(
    path: Path | None = None, currency: str = ALIBABA_CURRENCY
) -> Iterator[CatalogPrice]:
    """Alibaba ECS, 28 regions: on-demand and cheapest-zone spot, in CNY unless told otherwise."""
    return _load(
        path,
        ALIBABA_FILE,
        "alibaba",
        currency,
        "instance_type",
        "memory_gib",
        "gpu",
        (("ondemand_hourly", "on-demand", False), ("spot_hourly_min", "spot", False)),
    )


def iter_catalog_prices(data_dir: Path | None = None) -> Iterator[CatalogPrice]:
    """Every staged catalog in turn: AWS, GCP, Azure, Alibaba."""
    root = data_dir or default_data_dir()
    yield from load_aws_catalog(root / AWS_FILE)
    yield from load_gcp_catalog(root / GCP_FILE)
    yield from load_azure_catalog(root / AZURE_FILE)
    yield from load_alibaba_catalog(root / ALIBABA_FILE)


_PROVIDER_FILES = {
    "aws": "aws.json",
    "gcp": "gcp.json",
    "azure": "azure.json",
    "alibaba": "alibaba.json",
    "oracle": "oracle.json",
}


def load_unit_prices(provider: str | None = None, data_dir: Path | None = None) -> UnitPrices:
    """OpenCost's default unit prices, optionally overlaid with one provider's config.

    1. Start from `default.json` (OpenCost's defaults, GCP us-central1 list prices, USD).
    2. Overlay the provider's file (`aws`, `gcp`, `azure`, `alibaba`, `oracle`) key by key.
    3. A provider file that prices CPU/RAM but gives no spot price (Oracle) gets its own
       on-demand prices for spot: no discount is assumed that the source does not state.
    A missing GPU price (gcp.json) keeps the default.
    """
    root = (data_dir or default_data_dir()) / OPENCOST_DIR
    merged = _read_json(root / "default.json")
    if provider is not None:
        name = _PROVIDER_FILES.get(provider.lower())
        if name is None:
            raise BillingFileError(
                str(root), None, None, MSG_UNKNOWN_PROVIDER.format(provider=provider)
            )
        own = _read_json(root / name)
        merged.update({k: v for k, v in own.items() if v not in ("", None)})
        if "CPU" in own and "spotCPU" not in own:
            merged["spotCPU"] = own["CPU"]
        if "RAM" in own and "spotRAM" not in own:
            merged["spotRAM"] = own["RAM"]
    src = str(root)

    def price(key: str) -> Decimal:
        value = _dec(str(merged.get(key, "")), src, 0, key)
        if value is None:
            raise BillingFileError(src, None, key, MSG_BAD_NUMBER.format(value=""))
        return value

    return UnitPrices(
        cpu_hourly=price("CPU"),
        ram_gib_hourly=price("RAM"),
        gpu_hourly=price("GPU"),
        spot_cpu_hourly=price("spotCPU"),
        spot_ram_gib_hourly=price("spotRAM"),
        currency="USD",
    )


def _read_json(path: Path) -> dict[str, object]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise BillingFileError(str(path), None, None, f"cannot read price config: {exc}") from None
    if not isinstance(data, dict):
        raise BillingFileError(str(path), None, None, "price config is not a JSON object")
    return data


def _as_decimal(x: Decimal | int | float | str) -> Decimal:
    return x if isinstance(x, Decimal) else Decimal(str(x))


def unit_prices_node_cost(
    unit_prices: UnitPrices,
    cpu_cores: Decimal | int | float,
    ram_gib: Decimal | int | float,
    gpus: Decimal | int | float,
    spot: bool,
) -> Decimal:
    """Hourly cost of a node from unit prices: cores x cpu + GiB x ram + GPUs x gpu (currency of
    `unit_prices` per hour). Spot nodes use the spot CPU and RAM prices."""
    cpu = unit_prices.spot_cpu_hourly if spot else unit_prices.cpu_hourly
    ram = unit_prices.spot_ram_gib_hourly if spot else unit_prices.ram_gib_hourly
    return (
        _as_decimal(cpu_cores) * cpu
        + _as_decimal(ram_gib) * ram
        + _as_decimal(gpus) * unit_prices.gpu_hourly
    )
