# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Price sources, each a dated quote saying where it came from (never a constant in code).

Pure parsing and validation: the AWS Pricing API's ``get_products`` price list, EC2's
``describe_spot_price_history`` and a site's price file all become ``PriceQuote`` values.
The calls themselves live in aws_prices.py.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import json
from dataclasses import asdict, dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional

from ._common import HOURS_PER_YEAR, CostInputError, as_of_date, number

CAPACITY_TYPES = ("on-demand", "spot", "on-prem")
PRICE_FILE_KEYS = ("as_of", "source", "currency", "instance_types", "node_groups")
INSTANCE_PRICE_KEYS = ("on_demand_hourly", "spot_hourly", "commitments")
# Commitments: EC2 Reserved Instances and Savings Plans, as the Pricing API's Reserved terms
# (termAttributes LeaseContractLength, PurchaseOption, OfferingClass) and the Savings Plans
# rate sheets name them.
COMMITMENT_KINDS = ("reserved-instance", "savings-plan")
COMMITMENT_TERMS = ("1yr", "3yr")
PURCHASE_OPTIONS = ("No Upfront", "Partial Upfront", "All Upfront")
OFFERING_CLASSES = {
    "reserved-instance": ("standard", "convertible"),
    "savings-plan": ("compute", "ec2-instance"),
}
COMMITMENT_KEYS = ("kind", "term", "purchase_option", "offering_class", "hourly", "upfront")
GROUP_PRICE_KEYS = ("hourly", "gpu_hourly")


@dataclass(frozen=True)
class PriceQuote:
    """An hourly price for a node (whole node), with where and when it was read."""

    hourly_usd: float
    source: str  # "aws-pricing-api", "aws-spot-price-history", "price-file", "onprem-tco"
    as_of: str
    capacity_type: str = "on-demand"
    zone: Optional[str] = None
    gpu_hourly_usd: Optional[float] = None  # per GPU, when the source splits it out (TCO)
    energy_hourly_usd: Optional[float] = None  # the power part of an on-prem TCO price

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CommitQuote:
    """A 1- or 3-year commitment rate for one instance (a Reserved Instance or a Savings Plan
    rate): its recurring hourly fee and its upfront fee, with where and when it was read."""

    instance_type: str
    kind: str  # COMMITMENT_KINDS
    term: str  # COMMITMENT_TERMS
    purchase_option: str  # PURCHASE_OPTIONS
    offering_class: str
    hourly_usd: float
    upfront_usd: float
    source: str
    as_of: str

    @property
    def years(self) -> int:
        return int(self.term[0])

    @property
    def effective_hourly_usd(self) -> float:
        """The upfront fee spread over every hour of the term, plus the hourly fee."""
        return self.hourly_usd + self.upfront_usd / (self.years * HOURS_PER_YEAR)

    def to_dict(self) -> Dict[str, Any]:
        return dict(asdict(self), effective_hourly_usd=self.effective_hourly_usd)


def _choice(value: Any, field: str, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    if value not in allowed:
        raise CostInputError(field, "must be one of %s, got %r" % (", ".join(allowed), value))
    return value


def parse_commitments(instance_type: str, entries: Any, label: str, as_of: str, field: str) -> List[CommitQuote]:
    """A price file's ``commitments`` list for one instance type."""
    if not isinstance(entries, list) or not entries:
        raise CostInputError(field, "must be a non-empty list of mappings with %s" % ", ".join(COMMITMENT_KEYS))
    result = []
    for i, entry in enumerate(entries):
        where = "%s[%d]" % (field, i)
        if not isinstance(entry, Mapping):
            raise CostInputError(where, "must be a mapping with %s" % ", ".join(COMMITMENT_KEYS))
        bad = sorted(set(entry) - set(COMMITMENT_KEYS))
        if bad:
            raise CostInputError("%s.%s" % (where, bad[0]), "unknown key; allowed: %s" % ", ".join(COMMITMENT_KEYS))
        kind = _choice(entry.get("kind", "reserved-instance"), where + ".kind", COMMITMENT_KINDS)
        offering = _choice(
            entry.get("offering_class", OFFERING_CLASSES[kind][0]), where + ".offering_class", OFFERING_CLASSES[kind]
        )
        quote = CommitQuote(
            instance_type=instance_type,
            kind=kind,
            term=_choice(entry.get("term"), where + ".term", COMMITMENT_TERMS),
            purchase_option=_choice(entry.get("purchase_option"), where + ".purchase_option", PURCHASE_OPTIONS),
            offering_class=offering,
            hourly_usd=number(entry.get("hourly", 0.0), where + ".hourly", 0.0, 1000.0),
            upfront_usd=number(entry.get("upfront", 0.0), where + ".upfront", 0.0, 100000000.0),
            source=label,
            as_of=as_of,
        )
        if quote.effective_hourly_usd <= 0:
            raise CostInputError(where, "hourly and upfront are both 0; a commitment costs something")
        if quote.purchase_option == "No Upfront" and quote.upfront_usd:
            raise CostInputError(where + ".upfront", "must be 0 for purchase_option No Upfront")
        if quote.purchase_option == "All Upfront" and quote.hourly_usd:
            raise CostInputError(where + ".hourly", "must be 0 for purchase_option All Upfront")
        result.append(quote)
    return result


# ------------------------------------------------------------------ price file


def parse_price_file(data: Any, origin: str = "price_file") -> Dict[str, Any]:
    """Validate a price file (already parsed YAML/JSON) into quotes by instance type and node group.

    Returns {"instance_types": {type: {"on-demand": PriceQuote, "spot": PriceQuote}},
    "node_groups": {group: PriceQuote}}.
    """
    if not isinstance(data, Mapping):
        raise CostInputError(origin, "must be a mapping with keys %s" % ", ".join(PRICE_FILE_KEYS))
    unknown = sorted(set(data) - set(PRICE_FILE_KEYS))
    if unknown:
        raise CostInputError("%s.%s" % (origin, unknown[0]), "unknown key; allowed: %s" % ", ".join(PRICE_FILE_KEYS))
    as_of = as_of_date(data.get("as_of"), origin + ".as_of")
    source = str(data.get("source") or "").strip()
    if not source:
        raise CostInputError(origin + ".source", "must say where the prices come from (a non-empty string)")
    currency = data.get("currency", "USD")
    if currency != "USD":
        raise CostInputError(origin + ".currency", "must be USD, got %r" % (currency,))
    label = "price-file: %s" % source
    types = data.get("instance_types") or {}
    groups = data.get("node_groups") or {}
    if not isinstance(types, Mapping):
        raise CostInputError(origin + ".instance_types", "must be a mapping of instance type -> prices")
    if not isinstance(groups, Mapping):
        raise CostInputError(origin + ".node_groups", "must be a mapping of node group -> prices")
    if not types and not groups:
        raise CostInputError(origin, "needs instance_types or node_groups (both are empty)")
    result = {"instance_types": {}, "node_groups": {}}  # type: Dict[str, Dict[str, Any]]
    for name, entry in types.items():
        field = "%s.instance_types.%s" % (origin, name)
        if not isinstance(entry, Mapping) or not entry:
            raise CostInputError(field, "must be a mapping with %s" % " and/or ".join(INSTANCE_PRICE_KEYS))
        bad = sorted(set(entry) - set(INSTANCE_PRICE_KEYS))
        if bad:
            raise CostInputError("%s.%s" % (field, bad[0]), "unknown key; allowed: %s" % ", ".join(INSTANCE_PRICE_KEYS))
        quotes = {}
        if "on_demand_hourly" in entry:
            quotes["on-demand"] = PriceQuote(
                number(entry["on_demand_hourly"], field + ".on_demand_hourly", 0.0, 1000.0, False), label, as_of
            )
        if "spot_hourly" in entry:
            quotes["spot"] = PriceQuote(
                number(entry["spot_hourly"], field + ".spot_hourly", 0.0, 1000.0, False), label, as_of, "spot"
            )
        if "commitments" in entry:
            quotes["commitments"] = parse_commitments(
                str(name), entry["commitments"], label, as_of, field + ".commitments"
            )
        result["instance_types"][str(name)] = quotes
    for name, entry in groups.items():
        field = "%s.node_groups.%s" % (origin, name)
        if not isinstance(entry, Mapping) or "hourly" not in entry:
            raise CostInputError(field, "must be a mapping with hourly (and optionally gpu_hourly)")
        bad = sorted(set(entry) - set(GROUP_PRICE_KEYS))
        if bad:
            raise CostInputError("%s.%s" % (field, bad[0]), "unknown key; allowed: %s" % ", ".join(GROUP_PRICE_KEYS))
        hourly = number(entry["hourly"], field + ".hourly", 0.0, 1000.0, False)
        gpu = None
        if entry.get("gpu_hourly") is not None:
            gpu = number(entry["gpu_hourly"], field + ".gpu_hourly", 0.0, hourly)
        result["node_groups"][str(name)] = PriceQuote(hourly, label, as_of, "on-prem", gpu_hourly_usd=gpu)
    return result


# ------------------------------------------------------------------ AWS Pricing API


def pricing_filters(instance_type: str, region: str) -> List[Dict[str, str]]:
    """get_products filters for one Linux, shared-tenancy, on-demand EC2 instance type."""
    return [
        {"Type": "TERM_MATCH", "Field": "instanceType", "Value": instance_type},
        {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region},
        {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
        {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
        {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
        {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"},
    ]


def parse_price_list(instance_type: str, price_list: Iterable[Any]) -> PriceQuote:
    """The on-demand hourly USD price of ``instance_type`` from get_products' PriceList.

    Each item is a JSON string (as the API returns it) or an already-decoded dict; the price is
    terms.OnDemand.*.priceDimensions.*.pricePerUnit.USD with unit Hrs, dated by the item's
    publicationDate.
    """
    found = []
    for raw in price_list:
        item = json.loads(raw) if isinstance(raw, str) else raw
        attributes = (item.get("product") or {}).get("attributes") or {}
        if attributes.get("instanceType") != instance_type:
            continue
        for term in ((item.get("terms") or {}).get("OnDemand") or {}).values():
            for dimension in (term.get("priceDimensions") or {}).values():
                if dimension.get("unit") != "Hrs":
                    continue
                usd = (dimension.get("pricePerUnit") or {}).get("USD")
                if usd is None:
                    continue
                price = float(usd)
                if price > 0:
                    found.append((price, item.get("publicationDate") or term.get("effectiveDate")))
    if not found:
        raise CostInputError(
            "instance_type", "the AWS Pricing API returned no on-demand hourly price for %s" % instance_type
        )
    if len({p for p, _unused in found}) > 1:
        raise CostInputError(
            "instance_type",
            "the AWS Pricing API returned %d different on-demand prices for %s; narrow the filters"
            % (len(found), instance_type),
        )
    price, published = found[0]
    return PriceQuote(price, "aws-pricing-api", as_of_date(published, "publicationDate"))


def parse_reserved_terms(instance_type: str, price_list: Iterable[Any]) -> List[CommitQuote]:
    """The Reserved Instance rates of ``instance_type`` from get_products' PriceList: each
    terms.Reserved.* term with termAttributes LeaseContractLength (1yr, 3yr), PurchaseOption and
    OfferingClass; its priceDimensions hold the hourly fee (unit Hrs) and the upfront fee (unit
    Quantity). Dated by the item's publicationDate, else the term's effectiveDate. Terms of
    other lengths or purchase options AWS no longer sells (e.g. "Heavy Utilization") are skipped.
    """
    found = {}  # type: Dict[tuple, CommitQuote]
    for raw in price_list:
        item = json.loads(raw) if isinstance(raw, str) else raw
        attributes = (item.get("product") or {}).get("attributes") or {}
        if attributes.get("instanceType") != instance_type:
            continue
        for term in ((item.get("terms") or {}).get("Reserved") or {}).values():
            attrs = term.get("termAttributes") or {}
            length, option = attrs.get("LeaseContractLength"), attrs.get("PurchaseOption")
            offering = str(attrs.get("OfferingClass") or "standard")
            if length not in COMMITMENT_TERMS or option not in PURCHASE_OPTIONS:
                continue
            hourly = upfront = 0.0
            for dimension in (term.get("priceDimensions") or {}).values():
                usd = (dimension.get("pricePerUnit") or {}).get("USD")
                if usd is None:
                    continue
                unit = str(dimension.get("unit") or "").lower()
                if unit == "hrs":
                    hourly = float(usd)
                elif unit == "quantity":
                    upfront = float(usd)
            if hourly <= 0 and upfront <= 0:
                continue
            quote = CommitQuote(
                instance_type,
                "reserved-instance",
                length,
                option,
                offering,
                hourly,
                upfront,
                "aws-pricing-api",
                as_of_date(item.get("publicationDate") or term.get("effectiveDate"), "publicationDate"),
            )
            found[(length, option, offering)] = quote
    return [found[key] for key in sorted(found)]


# ------------------------------------------------------------------ spot


def parse_spot_history(history: Iterable[Mapping[str, Any]]) -> Dict[str, Dict[str, PriceQuote]]:
    """Latest spot price per instance type and zone from SpotPriceHistory entries."""
    latest = {}  # type: Dict[tuple, Mapping[str, Any]]
    for entry in history:
        key = (entry["InstanceType"], entry["AvailabilityZone"])
        stamp = entry["Timestamp"]
        if key not in latest or stamp > latest[key]["Timestamp"]:
            latest[key] = entry
    result = {}  # type: Dict[str, Dict[str, PriceQuote]]
    for (instance_type, zone), entry in sorted(latest.items()):
        stamp = entry["Timestamp"]
        as_of = stamp.strftime("%Y-%m-%dT%H:%M:%SZ") if hasattr(stamp, "strftime") else as_of_date(stamp, "Timestamp")
        result.setdefault(instance_type, {})[zone] = PriceQuote(
            float(entry["SpotPrice"]), "aws-spot-price-history", as_of, "spot", zone
        )
    return result
