"""Creates or updates, idempotently, what the paid plan needs in a Stripe account: the Billing Meter
that counts songs, the product, and the metered monthly price (found by its lookup key).

    refrain-stripe-setup [--dry-run]      (REFRAIN_STRIPE_SECRET_KEY and the stripe_* settings)

Run it again at any time: what matches is kept. A meter can only be renamed once made; a price's
amount never changes, so a new price takes over the lookup key and the old one is archived
(subscriptions on it keep it until they are moved).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast

import stripe

from infra.settings import Settings, get_settings

METER_NAME = "Refrain songs"
PRODUCT_NAME = "Refrain songs"


@dataclass
class Step:
    verb: str  # keep | create | update | replace
    what: str
    detail: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.verb} {self.what}" + (f"  ({self.detail})" if self.detail else "")


class StripeSetup:
    def __init__(self, settings: Settings, client: stripe.StripeClient) -> None:
        self.settings = settings
        self.client = client

    def run(self, dry_run: bool) -> list[Step]:
        steps: list[Step] = []
        meter_id = self._meter(steps, dry_run)
        self._product(steps, dry_run)
        self._price(steps, dry_run, meter_id)
        return steps

    def _meter(self, steps: list[Step], dry_run: bool) -> str:
        name = self.settings.stripe_meter_event
        meters = self.client.v1.billing.meters.list({"status": "active", "limit": 100}).auto_paging_iter()
        found = next((m for m in meters if m.event_name == name), None)
        if found is None:
            params: Any = {  # the SDK's TypedDicts are checked by Stripe itself at run time
                "display_name": METER_NAME,
                "event_name": name,
                "default_aggregation": {"formula": "sum"},
                "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
                "value_settings": {"event_payload_key": "value"},
            }
            steps.append(Step("create", f"meter {name}", "sums each song's value per customer", params))
            return "(new meter)" if dry_run else self.client.v1.billing.meters.create(params).id
        if found.display_name != METER_NAME:
            steps.append(Step("update", f"meter {name}", f"display name -> {METER_NAME}"))
            if not dry_run:
                self.client.v1.billing.meters.update(found.id, {"display_name": METER_NAME})
        else:
            steps.append(Step("keep", f"meter {name}", found.id))
        return str(found.id)

    def _product(self, steps: list[Step], dry_run: bool) -> None:
        product_id = self.settings.stripe_product_id
        try:
            found = self.client.v1.products.retrieve(product_id)
        except stripe.InvalidRequestError as exc:
            if exc.http_status != 404:
                raise
            params = {
                "id": product_id,
                "name": PRODUCT_NAME,
                "description": "Songs made by Refrain's paid tier",
            }
            steps.append(Step("create", f"product {product_id}", PRODUCT_NAME, params))
            if not dry_run:
                self.client.v1.products.create(cast(Any, params))
            return
        if found.name != PRODUCT_NAME or not found.active:
            steps.append(Step("update", f"product {product_id}", f"name {PRODUCT_NAME}, active"))
            if not dry_run:
                self.client.v1.products.update(product_id, {"name": PRODUCT_NAME, "active": True})
        else:
            steps.append(Step("keep", f"product {product_id}"))

    def wanted_price(self, meter_id: str) -> dict[str, Any]:
        s = self.settings
        amount = str(Decimal(s.stripe_price_per_song).normalize())
        params: dict[str, Any] = {
            "currency": s.stripe_currency,
            "product": s.stripe_product_id,
            "lookup_key": s.stripe_price_lookup_key,
            "nickname": "per song",
            "recurring": {"interval": "month", "usage_type": "metered", "meter": meter_id},
        }
        if s.stripe_included_songs:
            params |= {
                "billing_scheme": "tiered",
                "tiers_mode": "graduated",
                "tiers": [
                    {"up_to": s.stripe_included_songs, "unit_amount": 0},
                    {"up_to": "inf", "unit_amount_decimal": amount},
                ],
            }
        else:
            params["unit_amount_decimal"] = amount
        return params

    def _price(self, steps: list[Step], dry_run: bool, meter_id: str) -> None:
        key = self.settings.stripe_price_lookup_key
        wanted = self.wanted_price(meter_id)
        listed = self.client.v1.prices.list(
            {"lookup_keys": [key], "active": True, "limit": 1, "expand": ["data.tiers"]}
        ).data
        current = listed[0] if listed else None
        what = f"price {key}"
        summary = self._describe(wanted)
        if current is not None and self._same(current.to_dict(), wanted):
            steps.append(Step("keep", what, f"{current.id}: {summary}"))
            return
        if current is None:
            steps.append(Step("create", what, summary, wanted))
            if not dry_run:
                self.client.v1.prices.create(cast(Any, wanted))
            return
        replacing = {**wanted, "transfer_lookup_key": True}
        steps.append(Step("replace", what, f"{current.id} archived; new: {summary}", replacing))
        if not dry_run:
            self.client.v1.prices.create(cast(Any, replacing))
            self.client.v1.prices.update(current.id, {"active": False})

    def _describe(self, price: dict[str, Any]) -> str:
        unit = f"{self.settings.stripe_price_per_song} {price['currency']} minor units a song"
        if self.settings.stripe_included_songs:
            return f"{self.settings.stripe_included_songs} songs a month included, then {unit}"
        return unit

    @staticmethod
    def _same(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
        recurring = current.get("recurring") or {}
        if (
            current.get("currency") != wanted["currency"]
            or current.get("product") != wanted["product"]
            or recurring.get("usage_type") != "metered"
            or recurring.get("interval") != "month"
            or recurring.get("meter") != wanted["recurring"]["meter"]
        ):
            return False
        if "tiers" not in wanted:
            return current.get("billing_scheme") == "per_unit" and _decimal(
                current.get("unit_amount_decimal")
            ) == _decimal(wanted["unit_amount_decimal"])
        tiers = current.get("tiers") or []
        have = [
            (t.get("up_to"), _decimal(t.get("unit_amount_decimal") or t.get("unit_amount"))) for t in tiers
        ]
        want = [(t["up_to"] if t["up_to"] != "inf" else None, _decimal(t.get("unit_amount_decimal",
                 t.get("unit_amount")))) for t in wanted["tiers"]]  # fmt: skip
        return (
            current.get("billing_scheme") == "tiered"
            and current.get("tiers_mode") == "graduated"
            and have == want
        )


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value)).normalize()


def main(argv: list[str] | None = None, http_client: stripe.HTTPClient | None = None) -> int:
    parser = argparse.ArgumentParser(prog="refrain-stripe-setup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="print what would change; change nothing")
    args = parser.parse_args(argv)
    settings = get_settings()
    if not settings.stripe_secret_key:
        print(
            "refrain-stripe-setup: set REFRAIN_STRIPE_SECRET_KEY (a secret or restricted key)",
            file=sys.stderr,
        )
        return 2
    try:
        Decimal(settings.stripe_price_per_song)
    except ArithmeticError:
        print(f"refrain-stripe-setup: REFRAIN_STRIPE_PRICE_PER_SONG is not a number: "
              f"{settings.stripe_price_per_song!r}", file=sys.stderr)  # fmt: skip
        return 2
    client = stripe.StripeClient(settings.stripe_secret_key, http_client=http_client, max_network_retries=2)
    try:
        steps = StripeSetup(settings, client).run(args.dry_run)
    except stripe.StripeError as exc:
        print(f"refrain-stripe-setup: Stripe said: {exc.user_message or exc}", file=sys.stderr)
        return 1
    for step in steps:
        print(("would " if args.dry_run and step.verb != "keep" else "") + str(step))
    return 0


if __name__ == "__main__":
    sys.exit(main())
