"""Data shared by the cost tests (a name no other test folder uses)."""

# Real-shaped get_products PriceList entries (JSON strings, as the API returns them).
P4D_PRICE_ITEM = {
    "product": {
        "productFamily": "Compute Instance",
        "sku": "H7NADMHPFTEKPPVK",
        "attributes": {
            "instanceType": "p4d.24xlarge",
            "regionCode": "us-east-1",
            "location": "US East (N. Virginia)",
            "operatingSystem": "Linux",
            "tenancy": "Shared",
            "preInstalledSw": "NA",
            "capacitystatus": "Used",
            "gpu": "8",
            "vcpu": "96",
            "memory": "1152 GiB",
        },
    },
    "serviceCode": "AmazonEC2",
    "terms": {
        "OnDemand": {
            "H7NADMHPFTEKPPVK.JRTCKXETXF": {
                "priceDimensions": {
                    "H7NADMHPFTEKPPVK.JRTCKXETXF.6YS6EN2CT7": {
                        "unit": "Hrs",
                        "endRange": "Inf",
                        "description": "$32.7726 per On Demand Linux p4d.24xlarge Instance Hour",
                        "appliesTo": [],
                        "rateCode": "H7NADMHPFTEKPPVK.JRTCKXETXF.6YS6EN2CT7",
                        "beginRange": "0",
                        "pricePerUnit": {"USD": "32.7726000000"},
                    }
                },
                "sku": "H7NADMHPFTEKPPVK",
                "effectiveDate": "2026-11-01T00:00:00Z",
                "offerTermCode": "JRTCKXETXF",
                "termAttributes": {},
            }
        }
    },
    "version": "20261101000000",
    "publicationDate": "2026-11-01T00:00:00Z",
}
