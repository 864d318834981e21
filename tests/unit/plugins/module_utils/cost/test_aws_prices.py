"""The AWS price calls through botocore's Stubber (moto serves no Pricing API, and its spot
history is a constant): real-shaped responses, pagination, the parameters sent."""

import copy
import json
from datetime import datetime, timezone

import boto3
import pytest
from ansible_collections.gpuops.cluster.plugins.module_utils.cost import aws_prices, prices
from botocore.stub import Stubber
from cost_fixtures import P4D_PRICE_ITEM

CREDS = dict(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")


def p5_item():
    item = copy.deepcopy(P4D_PRICE_ITEM)
    item["product"]["attributes"]["instanceType"] = "p5.48xlarge"
    (term,) = item["terms"]["OnDemand"].values()
    (dim,) = term["priceDimensions"].values()
    dim["pricePerUnit"]["USD"] = "98.3200000000"
    return item


def test_on_demand_quotes_paginated():
    client = boto3.client("pricing", **CREDS)
    stub = Stubber(client)
    base = {"ServiceCode": "AmazonEC2", "FormatVersion": "aws_v1", "MaxResults": 100}
    stub.add_response(
        "get_products",
        {"FormatVersion": "aws_v1", "PriceList": [], "NextToken": "page2"},
        dict(base, Filters=prices.pricing_filters("p4d.24xlarge", "us-east-1")),
    )
    stub.add_response(
        "get_products",
        {"FormatVersion": "aws_v1", "PriceList": [json.dumps(P4D_PRICE_ITEM)]},
        dict(base, Filters=prices.pricing_filters("p4d.24xlarge", "us-east-1"), NextToken="page2"),
    )
    stub.add_response(
        "get_products",
        {"FormatVersion": "aws_v1", "PriceList": [json.dumps(p5_item())]},
        dict(base, Filters=prices.pricing_filters("p5.48xlarge", "us-east-1")),
    )
    with stub:
        quotes = aws_prices.on_demand_quotes(client, ["p5.48xlarge", "p4d.24xlarge", "p4d.24xlarge"], "us-east-1")
    stub.assert_no_pending_responses()
    assert quotes["p4d.24xlarge"].hourly_usd == 32.7726
    assert quotes["p5.48xlarge"].hourly_usd == 98.32
    assert quotes["p5.48xlarge"].source == "aws-pricing-api"


def test_conflicting_prices_refused():
    other = copy.deepcopy(P4D_PRICE_ITEM)
    (term,) = other["terms"]["OnDemand"].values()
    (dim,) = term["priceDimensions"].values()
    dim["pricePerUnit"]["USD"] = "30.0"
    with pytest.raises(ValueError, match="different on-demand prices"):
        prices.parse_price_list("p4d.24xlarge", [json.dumps(P4D_PRICE_ITEM), json.dumps(other)])


def test_spot_quotes_latest_per_zone():
    client = boto3.client("ec2", **CREDS)
    stub = Stubber(client)
    start = datetime(2026, 11, 30, tzinfo=timezone.utc)
    entry = {"AvailabilityZone": "us-east-1a", "InstanceType": "p4d.24xlarge", "ProductDescription": "Linux/UNIX"}
    stub.add_response(
        "describe_spot_price_history",
        {
            "SpotPriceHistory": [
                dict(entry, SpotPrice="10.1", Timestamp=datetime(2026, 11, 30, 1, tzinfo=timezone.utc))
            ],
            "NextToken": "n2",
        },
        {"InstanceTypes": ["p4d.24xlarge"], "ProductDescriptions": ["Linux/UNIX"], "StartTime": start},
    )
    stub.add_response(
        "describe_spot_price_history",
        {"SpotPriceHistory": [dict(entry, SpotPrice="9.9", Timestamp=datetime(2026, 11, 30, 5, tzinfo=timezone.utc))]},
        {
            "InstanceTypes": ["p4d.24xlarge"],
            "ProductDescriptions": ["Linux/UNIX"],
            "StartTime": start,
            "NextToken": "n2",
        },
    )
    with stub:
        quotes = aws_prices.spot_quotes(client, ["p4d.24xlarge"], start)
    assert quotes["p4d.24xlarge"]["us-east-1a"].hourly_usd == 9.9
    assert quotes["p4d.24xlarge"]["us-east-1a"].as_of == "2026-11-30T05:00:00Z"
