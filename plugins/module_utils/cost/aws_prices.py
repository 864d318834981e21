# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWS calls for prices and the Cost Explorer cross-check (clients come from
module_utils/aws/client.py; parsing is in prices.py)."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from typing import Any, Dict, Iterable, List, Mapping

from .prices import CommitQuote, PriceQuote, parse_price_list, parse_reserved_terms, parse_spot_history, pricing_filters


def price_lists(pricing_client: Any, instance_types: Iterable[str], region: str) -> Dict[str, List[Any]]:
    """get_products per instance type (all pages): its PriceList items, which carry both the
    OnDemand and the Reserved terms of each product."""
    result = {}
    for instance_type in sorted(set(instance_types)):
        items = []  # type: List[Any]
        token = None
        while True:
            kwargs = dict(
                ServiceCode="AmazonEC2",
                Filters=pricing_filters(instance_type, region),
                FormatVersion="aws_v1",
                MaxResults=100,
            )
            if token:
                kwargs["NextToken"] = token
            page = pricing_client.get_products(**kwargs)
            items.extend(page.get("PriceList") or [])
            token = page.get("NextToken")
            if not token:
                break
        result[instance_type] = items
    return result


def on_demand_quotes(pricing_client: Any, instance_types: Iterable[str], region: str) -> Dict[str, PriceQuote]:
    """get_products per instance type (all pages), parsed into one on-demand quote each."""
    return {t: parse_price_list(t, items) for t, items in price_lists(pricing_client, instance_types, region).items()}


def reserved_quotes(lists: Mapping[str, Iterable[Any]]) -> Dict[str, List[CommitQuote]]:
    """The Reserved Instance rates in price lists already read (price_lists' answer)."""
    result = {}
    for instance_type, items in lists.items():
        found = parse_reserved_terms(instance_type, items)
        if found:
            result[instance_type] = found
    return result


def spot_quotes(ec2_client: Any, instance_types: Iterable[str], start_time: Any) -> Dict[str, Dict[str, PriceQuote]]:
    """describe_spot_price_history for Linux/UNIX since ``start_time`` (all pages)."""
    types = sorted(set(instance_types))
    if not types:
        return {}
    history = []  # type: List[Mapping[str, Any]]
    kwargs = dict(InstanceTypes=types, ProductDescriptions=["Linux/UNIX"], StartTime=start_time)
    while True:
        page = ec2_client.describe_spot_price_history(**kwargs)
        history.extend(page.get("SpotPriceHistory") or [])
        token = page.get("NextToken")
        if not token:
            break
        kwargs["NextToken"] = token
    return parse_spot_history(history)


def cost_explorer_by_tag(ce_client: Any, start: str, end: str, tag_key: str) -> Dict[str, Any]:
    """GetCostAndUsage (UnblendedCost, DAILY) grouped by a cost-allocation tag, summed per tag value."""
    totals = {}  # type: Dict[str, float]
    kwargs = dict(
        TimePeriod={"Start": start, "End": end},
        Granularity="DAILY",
        Metrics=["UnblendedCost"],
        GroupBy=[{"Type": "TAG", "Key": tag_key}],
    )
    while True:
        page = ce_client.get_cost_and_usage(**kwargs)
        for period in page.get("ResultsByTime") or []:
            for group in period.get("Groups") or []:
                key = (group.get("Keys") or ["?"])[0]
                value = key.split("$", 1)[1] if "$" in key else key
                amount = float(((group.get("Metrics") or {}).get("UnblendedCost") or {}).get("Amount") or 0)
                totals[value or "(untagged)"] = totals.get(value or "(untagged)", 0.0) + amount
        token = page.get("NextPageToken")
        if not token:
            break
        kwargs["NextPageToken"] = token
    return {"start": start, "end": end, "tag_key": tag_key, "by_tag": totals, "total": sum(totals.values())}
