"""The Stripe set-up script against a recorded Stripe account: creates what is missing, keeps what
matches, replaces a price whose amount changed, and changes nothing with --dry-run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from infra import stripe_setup
from infra.settings import get_settings
from tests.utils.stripe import Recorded, StripeRecorder


class Catalog:
    """The few Stripe objects the script touches, answered as Stripe's API answers them."""

    def __init__(self) -> None:
        self.meters: list[dict[str, Any]] = []
        self.products: dict[str, dict[str, Any]] = {}
        self.prices: list[dict[str, Any]] = []
        self.recorder = StripeRecorder()
        routes = self.recorder.routes
        routes[("get", "/v1/billing/meters")] = lambda r: (200, self._list(self.meters, "/v1/billing/meters"))
        routes[("post", "/v1/billing/meters")] = self._create_meter
        routes[("get", "/v1/products/refrain_songs")] = self._product
        routes[("post", "/v1/products")] = self._create_product
        routes[("get", "/v1/prices")] = self._list_prices
        routes[("post", "/v1/prices")] = self._create_price

    @staticmethod
    def _list(items: list[dict[str, Any]], url: str) -> dict[str, Any]:
        return {"object": "list", "url": url, "has_more": False, "data": items}

    def _create_meter(self, r: Recorded) -> tuple[int, dict[str, Any]]:
        meter = {
            "id": f"mtr_{len(self.meters) + 1}", "object": "billing.meter", "status": "active",
            "display_name": r.params["display_name"], "event_name": r.params["event_name"],
        }  # fmt: skip
        self.meters.append(meter)
        return 200, meter

    def _product(self, r: Recorded) -> tuple[int, dict[str, Any]]:
        if "refrain_songs" not in self.products:
            return 404, {
                "error": {
                    "type": "invalid_request_error",
                    "message": "No such product",
                    "code": "resource_missing",
                }
            }
        return 200, self.products["refrain_songs"]

    def _create_product(self, r: Recorded) -> tuple[int, dict[str, Any]]:
        product = {"id": r.params["id"], "object": "product", "name": r.params["name"], "active": True}
        self.products[product["id"]] = product
        return 200, product

    def _list_prices(self, r: Recorded) -> tuple[int, dict[str, Any]]:
        key = r.query["lookup_keys[0]"]
        found = [p for p in self.prices if p["lookup_key"] == key and p["active"]]
        return 200, self._list(found, "/v1/prices")

    def _create_price(self, r: Recorded) -> tuple[int, dict[str, Any]]:
        p = r.params
        if p.get("transfer_lookup_key") == "true":
            for old in self.prices:
                if old["lookup_key"] == p["lookup_key"]:
                    old["lookup_key"] = None
        price = {
            "id": f"price_{len(self.prices) + 1}", "object": "price", "active": True,
            "currency": p["currency"], "product": p["product"], "lookup_key": p["lookup_key"],
            "billing_scheme": p.get("billing_scheme", "per_unit"), "tiers_mode": p.get("tiers_mode"),
            "unit_amount_decimal": p.get("unit_amount_decimal"),
            "recurring": {"interval": p["recurring[interval]"], "usage_type": p["recurring[usage_type]"],
                          "meter": p["recurring[meter]"]},
        }  # fmt: skip
        if price["billing_scheme"] == "tiered":
            price["tiers"] = [self._tier(p, i) for i in range(2)]
        self.prices.append(price)
        self.recorder.routes[("post", f"/v1/prices/{price['id']}")] = lambda r, price=price: self._update(
            price, r
        )
        return 200, price

    @staticmethod
    def _tier(p: dict[str, str], i: int) -> dict[str, Any]:
        up_to, amount = p[f"tiers[{i}][up_to]"], p.get(f"tiers[{i}][unit_amount]")
        return {
            "up_to": None if up_to == "inf" else int(up_to),
            "unit_amount": None if amount is None else int(amount),
            "unit_amount_decimal": p.get(f"tiers[{i}][unit_amount_decimal]"),
        }

    @staticmethod
    def _update(price: dict[str, Any], r: Recorded) -> tuple[int, dict[str, Any]]:
        price["active"] = r.params["active"] == "true"
        return 200, price

    def posts(self) -> list[str]:
        return [r.path for r in self.recorder.requests if r.method == "post"]


@pytest.fixture
def catalog(monkeypatch: pytest.MonkeyPatch) -> Iterator[Catalog]:
    monkeypatch.setenv("REFRAIN_STRIPE_SECRET_KEY", "sk_test_setup")
    get_settings.cache_clear()
    yield Catalog()
    get_settings.cache_clear()


def test_setup_creates_once_then_keeps(catalog: Catalog, capsys: pytest.CaptureFixture[str]) -> None:
    assert stripe_setup.main(["--dry-run"], http_client=catalog.recorder) == 0
    assert catalog.posts() == [] and "would create meter refrain_song" in capsys.readouterr().out

    assert stripe_setup.main([], http_client=catalog.recorder) == 0
    assert catalog.posts() == ["/v1/billing/meters", "/v1/products", "/v1/prices"]
    meter, product, price = (r for r in catalog.recorder.requests if r.method == "post")
    assert meter.params == {
        "display_name": "Refrain songs",
        "event_name": "refrain_song",
        "default_aggregation[formula]": "sum",
        "customer_mapping[type]": "by_id",
        "customer_mapping[event_payload_key]": "stripe_customer_id",
        "value_settings[event_payload_key]": "value",
    }
    assert product.params["id"] == "refrain_songs"
    assert price.params == {
        "currency": "usd",
        "product": "refrain_songs",
        "lookup_key": "refrain_song_metered",
        "nickname": "per song",
        "recurring[interval]": "month",
        "recurring[usage_type]": "metered",
        "recurring[meter]": "mtr_1",
        "unit_amount_decimal": "4",
    }
    capsys.readouterr()
    assert stripe_setup.main([], http_client=catalog.recorder) == 0  # again: nothing changes
    assert len(catalog.posts()) == 3
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["keep", "keep", "keep"]


def test_a_new_price_takes_the_lookup_key_and_the_old_is_archived(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert stripe_setup.main([], http_client=catalog.recorder) == 0
    monkeypatch.setenv("REFRAIN_STRIPE_PRICE_PER_SONG", "3.5")
    monkeypatch.setenv("REFRAIN_STRIPE_INCLUDED_SONGS", "20")
    get_settings.cache_clear()
    assert stripe_setup.main(["--dry-run"], http_client=catalog.recorder) == 0
    assert len(catalog.posts()) == 3 and "would replace price refrain_song_metered" in capsys.readouterr().out
    assert stripe_setup.main([], http_client=catalog.recorder) == 0
    assert catalog.posts()[3:] == ["/v1/prices", "/v1/prices/price_1"]
    new = catalog.recorder.requests[-2].params
    assert new["transfer_lookup_key"] == "true" and new["tiers_mode"] == "graduated"
    assert (new["tiers[0][up_to]"], new["tiers[0][unit_amount]"]) == ("20", "0")
    assert (new["tiers[1][up_to]"], new["tiers[1][unit_amount_decimal]"]) == ("inf", "3.5")
    assert [p["active"] for p in catalog.prices] == [False, True]
    assert stripe_setup.main([], http_client=catalog.recorder) == 0
    assert len(catalog.posts()) == 5  # the tiered price matches now


def test_setup_without_a_key_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("REFRAIN_STRIPE_SECRET_KEY", raising=False)
    get_settings.cache_clear()
    assert stripe_setup.main([]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    get_settings.cache_clear()
