# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""On-prem total cost of ownership per server class, as an hourly price, and the
OpenCost-style on-prem pricing CSV (``configs/pricing_schema.csv`` columns) of those numbers.

hourly = (server capex + GPU capex x GPUs) / (years x 8760)
       + power kW x $/kWh x PUE
       + (support/opex per year + rack/space per month x 12) / 8760

Power is the measured draw when given (DCGM_FI_DEV_POWER_USAGE summed over the node's GPUs,
plus the server's base draw), else the GPUs' TDP. The GPU part of the hourly price (GPU capex and
GPU power) is kept apart so allocation need not guess it.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import csv
import io
from typing import Any, Dict, Mapping, Optional

from ._common import HOURS_PER_YEAR, CostInputError, as_of_date, number
from .prices import PriceQuote

TCO_KEYS = (
    "as_of",
    "source",
    "server_capex_usd",
    "gpu_capex_usd",
    "gpus_per_server",
    "amortization_years",
    "gpu_tdp_watts",
    "server_base_watts",
    "usd_per_kwh",
    "pue",
    "opex_usd_per_year",
    "rack_usd_per_month",
)
REQUIRED = (
    "as_of",
    "source",
    "server_capex_usd",
    "gpu_capex_usd",
    "gpus_per_server",
    "amortization_years",
    "usd_per_kwh",
)
OPENCOST_COLUMNS = (
    "EndTimestamp",
    "InstanceID",
    "Region",
    "AssetClass",
    "InstanceIDField",
    "InstanceType",
    "MarketPriceHourly",
    "Version",
)


def validate_tco(params: Any, field: str) -> Dict[str, Any]:
    """Checked TCO parameters of one server class (``field`` names it in errors)."""
    if not isinstance(params, Mapping):
        raise CostInputError(field, "must be a mapping with %s" % ", ".join(REQUIRED))
    unknown = sorted(set(params) - set(TCO_KEYS))
    if unknown:
        raise CostInputError("%s.%s" % (field, unknown[0]), "unknown key; allowed: %s" % ", ".join(TCO_KEYS))
    for key in REQUIRED:
        if params.get(key) is None:
            raise CostInputError("%s.%s" % (field, key), "is required")
    source = str(params["source"]).strip()
    if not source:
        raise CostInputError(field + ".source", "must say where the figures come from (a non-empty string)")
    checked = {
        "as_of": as_of_date(params["as_of"], field + ".as_of"),
        "source": source,
        "server_capex_usd": number(params["server_capex_usd"], field + ".server_capex_usd", 0.0, 1e8),
        "gpu_capex_usd": number(params["gpu_capex_usd"], field + ".gpu_capex_usd", 0.0, 1e7),
        "amortization_years": number(params["amortization_years"], field + ".amortization_years", 0.0, 15.0, False),
        "gpu_tdp_watts": number(params.get("gpu_tdp_watts", 0), field + ".gpu_tdp_watts", 0.0, 5000.0),
        "server_base_watts": number(params.get("server_base_watts", 0), field + ".server_base_watts", 0.0, 50000.0),
        "usd_per_kwh": number(params["usd_per_kwh"], field + ".usd_per_kwh", 0.0, 10.0),
        "pue": number(params.get("pue", 1.0), field + ".pue", 1.0, 3.0),
        "opex_usd_per_year": number(params.get("opex_usd_per_year", 0), field + ".opex_usd_per_year", 0.0, 1e7),
        "rack_usd_per_month": number(params.get("rack_usd_per_month", 0), field + ".rack_usd_per_month", 0.0, 1e6),
    }
    gpus = params["gpus_per_server"]
    if isinstance(gpus, bool) or not isinstance(gpus, int) or not 0 <= gpus <= 16:
        raise CostInputError(field + ".gpus_per_server", "must be an integer 0..16, got %r" % (gpus,))
    checked["gpus_per_server"] = gpus
    return checked


def tco_quote(params: Mapping[str, Any], measured_gpu_watts: Optional[float] = None) -> PriceQuote:
    """Hourly price of one server from checked TCO parameters.

    ``measured_gpu_watts``: mean draw of all the server's GPUs together (from Prometheus); when
    None the GPUs count at TDP.
    """
    hours = params["amortization_years"] * HOURS_PER_YEAR
    gpus = params["gpus_per_server"]
    gpu_watts = measured_gpu_watts if measured_gpu_watts is not None else params["gpu_tdp_watts"] * gpus
    energy = params["usd_per_kwh"] * params["pue"] / 1000.0  # $ per watt-hour, facility included
    gpu_hourly = params["gpu_capex_usd"] * gpus / hours + gpu_watts * energy
    rest_hourly = (
        params["server_capex_usd"] / hours
        + params["server_base_watts"] * energy
        + (params["opex_usd_per_year"] + params["rack_usd_per_month"] * 12.0) / HOURS_PER_YEAR
    )
    per_gpu = gpu_hourly / gpus if gpus else None
    source = "onprem-tco: %s" % params["source"]
    if measured_gpu_watts is not None:
        source += " (measured GPU power)"
    return PriceQuote(
        gpu_hourly + rest_hourly,
        source,
        params["as_of"],
        "on-prem",
        gpu_hourly_usd=per_gpu,
        energy_hourly_usd=(gpu_watts + params["server_base_watts"]) * energy,
    )


def opencost_csv(node_quotes: Mapping[str, PriceQuote], gpus: Mapping[str, Any]) -> str:
    """OpenCost CSV provider rows: one node row per node (keyed by metadata.name) and one gpu
    row per GPU product (per-GPU hourly, keyed by the GFD label nvidia.com/gpu.product).

    OpenCost's CSV provider adds a matched gpu row's price x the node's GPU count to the node
    row's price, so a node row carries the node's price without its GPUs.
    ``gpus``: node name -> (product label value, GPU count)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(OPENCOST_COLUMNS)
    gpu_rows = {}
    for name in sorted(node_quotes):
        quote = node_quotes[name]
        product, count = gpus.get(name) or (None, 0)
        node_part = quote.hourly_usd
        if product and count and quote.gpu_hourly_usd is not None:
            node_part -= quote.gpu_hourly_usd * count
            gpu_rows.setdefault(product, (quote.as_of, quote.gpu_hourly_usd))
        writer.writerow([quote.as_of, name, "", "node", "metadata.name", "", "%.6f" % node_part, "v1"])
    for product in sorted(gpu_rows):
        as_of, hourly = gpu_rows[product]
        writer.writerow([as_of, product, "", "gpu", "nvidia.com/gpu.product", "", "%.6f" % hourly, "v1"])
    return out.getvalue()
