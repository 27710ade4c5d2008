"""Stripe's side of the studio: signed webhooks applied once and in any order, Checkout and the
portal through the real SDK (its HTTP recorded), the user's real limits, cancelling a job."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from infra.billing import StripeBilling
from infra.db import CreditEntry, StripeEvent, User
from tests.utils.databases import database_url
from tests.utils.stripe import (
    StripeRecorder,
    checkout_completed,
    event,
    invoice,
    sign,
    stripe_settings,
    subscription,
)
from tests.utils.studio import QUICK_SONG, add_user, quick_settings
from web.main import create_app

HOOK = "/api/v1/billing/webhook"


@pytest.fixture(params=["sqlite", "postgresql"])
def studio(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[TestClient, StripeRecorder]]:
    with database_url(request.param, tmp_path) as url:
        settings = quick_settings(tmp_path / "data", url, **stripe_settings())
        app = create_app(settings)
        recorder = StripeRecorder()
        app.state.billing = StripeBilling(settings, http_client=recorder)
        with TestClient(app) as client:
            yield client, recorder


def deliver(client: TestClient, body: dict[str, Any], **signing: Any) -> Any:
    payload = json.dumps(body).encode()
    return client.post(HOOK, content=payload, headers={"Stripe-Signature": sign(payload, **signing)})


def user_row(client: TestClient, user_id: str) -> User:
    with client.app.state.sessions() as session:  # type: ignore[attr-defined]
        user = session.get(User, user_id)
        assert user is not None
        return user


def new_user(client: TestClient, email: str, customer: str | None = None) -> tuple[str, dict[str, str]]:
    headers = add_user(client, email, monthly_credits=None)
    user_id = client.get("/api/v1/me", headers=headers).json()["id"]
    if customer:
        with client.app.state.sessions() as session:  # type: ignore[attr-defined]
            session.get(User, user_id).stripe_customer_id = customer  # type: ignore[union-attr]
            session.commit()
    return user_id, headers


def count(client: TestClient, model: Any, *where: Any) -> int:
    with client.app.state.sessions() as session:  # type: ignore[attr-defined]
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_a_completed_checkout_makes_the_user_paid_once_however_often_it_arrives(studio: Any) -> None:
    client, _ = studio
    user_id, headers = new_user(client, "ann@example.com")
    paid = event(
        "checkout.session.completed", checkout_completed(user_id, "cus_ann", "sub_ann"), int(time.time())
    )
    answers = [deliver(client, paid) for _ in range(100)]
    assert {a.status_code for a in answers} == {200}
    assert [a.json()["duplicate"] for a in answers] == [False] + [True] * 99
    user = user_row(client, user_id)
    assert (user.plan, user.stripe_customer_id, user.stripe_subscription_id) == ("paid", "cus_ann", "sub_ann")
    assert count(client, CreditEntry, CreditEntry.user_id == user_id, CreditEntry.reason == "allowance") == 1
    assert count(client, StripeEvent) == 1
    me = client.get("/api/v1/me", headers=headers).json()
    assert (me["plan"], me["period"], me["credits_left"], me["billing"]) == ("paid", "month", 10_000, True)
    limit = client.get("/api/get_limit", headers=headers).json()
    assert limit == {"credits_left": 10_000, "period": "month", "monthly_limit": 10_000, "monthly_usage": 0}


def test_bad_signatures_get_400_and_change_nothing(studio: Any) -> None:
    client, _ = studio
    user_id, _ = new_user(client, "bob@example.com")
    body = event(
        "checkout.session.completed", checkout_completed(user_id, "cus_bob", "sub_bob"), int(time.time())
    )
    payload = json.dumps(body).encode()
    wrong_secret = deliver(client, body, secret="whsec_somebody_else")
    stale = deliver(client, body, at=int(time.time()) - 301)  # beyond the 300 s tolerance
    tampered = client.post(
        HOOK, content=payload.replace(b'"paid"', b'"free"'), headers={"Stripe-Signature": sign(payload)}
    )
    unsigned = client.post(HOOK, content=payload)
    garbage = client.post(HOOK, content=b"not json", headers={"Stripe-Signature": sign(b"not json")})
    for answer in (wrong_secret, stale, tampered, unsigned, garbage):
        assert answer.status_code == 400 and answer.json()["detail"], answer.text
    assert user_row(client, user_id).plan == "free" and count(client, StripeEvent) == 0
    assert deliver(client, body).status_code == 200 and user_row(client, user_id).plan == "paid"


def test_unknown_event_types_are_acknowledged_and_ignored(studio: Any) -> None:
    client, _ = studio
    answer = deliver(client, event("charge.refunded", {"id": "ch_1", "object": "charge"}, int(time.time())))
    assert answer.status_code == 200 and answer.json()["outcome"].startswith("ignored")
    # an invoice with many lines is larger than the API's 64 KiB body limit; the webhook takes 1 MiB
    lines = [{"id": f"il_{i}", "object": "line_item", "description": "x" * 200} for i in range(1000)]
    large = event(
        "invoice.created", {"id": "in_big", "object": "invoice", "lines": {"data": lines}}, int(time.time())
    )
    answer = deliver(client, large)
    assert answer.status_code == 200 and answer.json()["outcome"].startswith("ignored")


def _lifecycle(user_id: str, t: int) -> list[dict[str, Any]]:
    """A subscription's first minutes as Stripe sends them, each event at its own time."""
    return [
        event("customer.subscription.created", subscription("sub_1", "cus_1", "incomplete", user_id), t),
        event("checkout.session.completed", checkout_completed(user_id, "cus_1", "sub_1"), t + 1),
        event("customer.subscription.updated", subscription("sub_1", "cus_1", "active", user_id), t + 2),
        event("invoice.paid", invoice("cus_1", "sub_1"), t + 3),
    ]


def test_events_out_of_order_end_in_the_same_state(studio: Any) -> None:
    client, _ = studio
    t = int(time.time()) - 100
    for i, order in enumerate(itertools.permutations(range(4))):
        # the customer exists before Stripe sends anything: the checkout endpoint makes it
        user_id, _ = new_user(client, f"order{i}@example.com", customer=f"cus_{i}")
        events = _lifecycle(user_id, t)
        for j in order:
            events[j]["data"]["object"]["customer"] = f"cus_{i}"
            assert deliver(client, events[j]).status_code == 200
        user = user_row(client, user_id)
        assert (user.plan, user.subscription_status, user.stripe_subscription_id) == (
            "paid",
            "active",
            "sub_1",
        ), order
        assert user.billing_synced_at == t + 3 and user.stripe_customer_id == f"cus_{i}"


def test_a_failed_payment_suspends_the_paid_tier_until_an_invoice_is_paid(studio: Any) -> None:
    client, _ = studio
    user_id, headers = new_user(client, "cat@example.com", customer="cus_cat")
    t = int(time.time()) - 100
    deliver(client, event("customer.subscription.created", subscription("sub_c", "cus_cat", "active"), t))
    assert user_row(client, user_id).plan == "paid"
    deliver(client, event("invoice.payment_failed", invoice("cus_cat", "sub_c", "open"), t + 10))
    assert (user_row(client, user_id).plan, user_row(client, user_id).subscription_status) == (
        "free",
        "past_due",
    )
    assert client.get("/api/get_limit", headers=headers).json()["period"] == "day"
    late = deliver(client, event("invoice.paid", invoice("cus_cat", "sub_c"), t + 5))  # an older one, late
    assert late.json()["outcome"].startswith("stale") and user_row(client, user_id).plan == "free"
    deliver(client, event("invoice.paid", invoice("cus_cat", "sub_c"), t + 20))
    assert user_row(client, user_id).plan == "paid"
    other = deliver(client, event("invoice.payment_failed", invoice("cus_cat", "sub_other", "open"), t + 30))
    assert other.json()["outcome"] == "ignored: not the user's current subscription"


def test_cancelling_the_subscription_or_deleting_the_customer_returns_to_free(studio: Any) -> None:
    client, _ = studio
    t = int(time.time()) - 100
    first, _ = new_user(client, "dan@example.com", customer="cus_dan")
    deliver(client, event("customer.subscription.created", subscription("sub_d", "cus_dan", "active"), t))
    deliver(
        client, event("customer.subscription.deleted", subscription("sub_d", "cus_dan", "canceled"), t + 50)
    )
    user = user_row(client, first)
    assert (user.plan, user.subscription_status, user.stripe_subscription_id) == ("free", "canceled", None)

    second, _ = new_user(client, "eve@example.com", customer="cus_eve")
    deliver(client, event("customer.subscription.created", subscription("sub_e", "cus_eve", "active"), t))
    deliver(client, event("customer.deleted", {"id": "cus_eve", "object": "customer"}, t + 60))
    user = user_row(client, second)
    assert (user.plan, user.stripe_customer_id) == ("free", None)


def test_checkout_and_portal_send_exactly_these_requests(studio: Any) -> None:
    client, recorder = studio
    recorder.routes[("get", "/v1/prices")] = lambda r: (
        200,
        {"object": "list", "url": "/v1/prices", "has_more": False,
         "data": [{"id": "price_song", "object": "price", "lookup_key": "refrain_song_metered"}]},
    )  # fmt: skip
    recorder.routes[("post", "/v1/customers")] = lambda r: (200, {"id": "cus_new", "object": "customer"})
    recorder.routes[("post", "/v1/checkout/sessions")] = lambda r: (
        200,
        {"id": "cs_1", "object": "checkout.session", "url": "https://checkout.stripe.com/c/pay/cs_1"},
    )
    recorder.routes[("post", "/v1/billing_portal/sessions")] = lambda r: (
        200,
        {"id": "bps_1", "object": "billing_portal.session", "url": "https://billing.stripe.com/p/session/1"},
    )
    user_id, headers = new_user(client, "fay@example.com")
    assert client.post("/api/v1/billing/portal", headers=headers).status_code == 409  # nothing to manage yet
    answer = client.post("/api/v1/billing/checkout", headers=headers)
    assert answer.status_code == 200 and answer.json() == {"url": "https://checkout.stripe.com/c/pay/cs_1"}

    (prices,) = recorder.sent("get", "/v1/prices")
    assert prices.query == {"lookup_keys[0]": "refrain_song_metered", "active": "true", "limit": "1"}
    (customer,) = recorder.sent("post", "/v1/customers")
    assert customer.params == {
        "metadata[refrain_user_id]": user_id,
        "email": "fay@example.com",
        "name": "fay",
    }
    assert customer.headers["Idempotency-Key"] == f"refrain-customer-{user_id}"
    (checkout,) = recorder.sent("post", "/v1/checkout/sessions")
    assert checkout.params == {
        "mode": "subscription",
        "customer": "cus_new",
        "client_reference_id": user_id,
        "line_items[0][price]": "price_song",
        "success_url": "https://studio.example.com/?billing=success",
        "cancel_url": "https://studio.example.com/?billing=cancelled",
        "metadata[refrain_user_id]": user_id,
        "subscription_data[metadata][refrain_user_id]": user_id,
    }
    assert user_row(client, user_id).stripe_customer_id == "cus_new"

    client.post("/api/v1/billing/checkout", headers=headers)  # again: the customer and price are reused
    assert len(recorder.sent("post", "/v1/customers")) == 1 and len(recorder.sent("get", "/v1/prices")) == 1
    portal = client.post("/api/v1/billing/portal", headers=headers)
    assert portal.json() == {"url": "https://billing.stripe.com/p/session/1"}
    (opened,) = recorder.sent("post", "/v1/billing_portal/sessions")
    assert opened.params == {"customer": "cus_new", "return_url": "https://studio.example.com/"}

    deliver(
        client,
        event(
            "checkout.session.completed", checkout_completed(user_id, "cus_new", "sub_f"), int(time.time())
        ),
    )
    assert client.post("/api/v1/billing/checkout", headers=headers).status_code == 409  # paid already


def test_stripe_unreachable_at_checkout_is_a_clear_503(studio: Any) -> None:
    client, recorder = studio
    _, headers = new_user(client, "gus@example.com")
    recorder.down = 10
    answer = client.post("/api/v1/billing/checkout", headers=headers)
    assert answer.status_code == 503 and "could not be reached" in answer.json()["detail"]


def test_a_studio_without_billing_says_so(tmp_path: Path) -> None:
    with TestClient(create_app(quick_settings(tmp_path / "data"))) as client:
        assert client.post("/api/v1/billing/checkout").status_code == 404
        assert client.get("/api/v1/me").json()["billing"] is False
        answer = client.post(HOOK, content=b"{}", headers={"Stripe-Signature": "t=1,v1=0"})
        assert answer.status_code == 503


def test_a_paid_users_jobs_are_metered_and_a_cancelled_one_is_refunded(studio: Any) -> None:
    client, recorder = studio
    _, headers = new_user(client, "hal@example.com", customer="cus_hal")
    deliver(
        client,
        event("customer.subscription.created", subscription("sub_h", "cus_hal", "active"), int(time.time())),
    )
    spawned: list[str] = []

    class Paid:
        name = "modal"

        def dispatch(self, job_id: str) -> None:
            spawned.append(job_id)

        def shutdown(self) -> None:
            pass

    client.app.state.jobs.paid_dispatcher = Paid()  # type: ignore[attr-defined]
    job = client.post("/api/v1/songs", json=QUICK_SONG, headers=headers).json()
    assert spawned == [job["id"]] and job["status"] == "queued"
    cancelled = client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "error"
    assert client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=headers).status_code == 409
    assert client.get("/api/get_limit", headers=headers).json()["monthly_usage"] == 0

    second = client.post("/api/v1/songs", json=QUICK_SONG, headers=headers).json()
    assert client.app.state.jobs.run(second["id"]) == "complete"  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30  # the reporter thread was nudged by the completion
    while time.monotonic() < deadline and not recorder.billed:
        time.sleep(0.05)
    clip = second["songs"][0]["id"]
    assert (
        list(recorder.billed) == [clip] and recorder.billed[clip]["payload[stripe_customer_id]"] == "cus_hal"
    )
    assert client.get("/api/get_limit", headers=headers).json()["monthly_usage"] == 5


def test_paid_users_get_the_modal_tiers_engine_without_weights_here(tmp_path: Path) -> None:
    from infra.queue import ModalDispatcher

    settings = quick_settings(tmp_path / "data", **stripe_settings(), paid_runner="modal")
    app = create_app(settings)
    spawned: list[str] = []
    app.state.jobs.paid_dispatcher = ModalDispatcher("refrain", spawn=spawned.append)
    with TestClient(app) as client:
        assert client.get("/api/v1/engines").json()["engines"] == ["acestep", "sketch"]
        _, payer = new_user(client, "ivy@example.com", customer="cus_ivy")
        sub = subscription("sub_i", "cus_ivy", "active")
        deliver(client, event("customer.subscription.created", sub, int(time.time())))
        _, free = new_user(client, "joe@example.com")
        song = {**QUICK_SONG, "engine": "acestep"}
        job = client.post("/api/v1/songs", json=song, headers=payer)
        assert job.status_code == 202 and spawned == [job.json()["id"]]  # to the GPU class, unloaded here
        refused = client.post("/api/v1/songs", json=song, headers=free)
        assert refused.status_code == 402 and "paid plan" in refused.json()["detail"]
