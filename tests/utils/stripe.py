"""Stripe without the network: the real `stripe` SDK with its HTTP layer pointed at a recorder that
answers like Stripe's API, and webhook payloads signed the way Stripe signs them."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe

WEBHOOK_SECRET = "whsec_test_refrain"
Handler = Callable[["Recorded"], tuple[int, dict[str, Any]]]


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    params: dict[str, str]  # the form-encoded body, flattened as Stripe reads it ("a[b]": "c")
    headers: dict[str, str]
    answered: bool = False


@dataclass
class StripeRecorder(stripe.HTTPClient):
    """Records every request the SDK makes and answers from `routes` ((method, path) -> handler).
    `down` requests in a row fail as a network error would; `lose_answers` requests reach "Stripe"
    but their answers are lost on the way back. Meter events are recorded by identifier the way
    Stripe dedups them, in `billed`."""

    routes: dict[tuple[str, str], Handler] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    down: int = 0
    lose_answers: int = 0
    billed: dict[str, dict[str, str]] = field(default_factory=dict)
    name = "recorder"

    def __post_init__(self) -> None:
        super().__init__()
        self.routes.setdefault(("post", "/v1/billing/meter_events"), self._meter_event)

    def request(
        self, method: str, url: str, headers: Any, post_data: Any = None, *, _usage: Any = None
    ) -> tuple[str, int, dict[str, str]]:
        parts = urlsplit(url)
        body = post_data.decode() if isinstance(post_data, bytes) else (post_data or "")
        recorded = Recorded(
            method.lower(),
            parts.path,
            dict(parse_qsl(parts.query)),
            dict(parse_qsl(body)),
            dict(headers or {}),
        )
        self.requests.append(recorded)
        if self.down:
            self.down -= 1
            raise stripe.APIConnectionError("the recorder is down", should_retry=True)
        handler = self.routes.get((recorded.method, recorded.path))
        status, answer = handler(recorded) if handler else (404, _error(f"no route {method} {parts.path}"))
        if self.lose_answers:
            self.lose_answers -= 1
            raise stripe.APIConnectionError("the answer was lost", should_retry=True)
        recorded.answered = status < 400
        return json.dumps(answer), status, {"request-id": f"req_{uuid.uuid4().hex[:12]}"}

    def close(self) -> None:
        pass

    def _meter_event(self, request: Recorded) -> tuple[int, dict[str, Any]]:
        identifier = request.params["identifier"]
        self.billed.setdefault(identifier, request.params)  # Stripe keeps the first, dedups the rest
        return 200, {
            "object": "billing.meter_event",
            "event_name": request.params["event_name"],
            "identifier": identifier,
            "timestamp": int(request.params["timestamp"]),
            "payload": {
                "stripe_customer_id": request.params["payload[stripe_customer_id]"],
                "value": request.params["payload[value]"],
            },
            "livemode": False,
            "created": int(time.time()),
        }

    def sent(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path == path]


def _error(message: str, code: str = "resource_missing") -> dict[str, Any]:
    return {"error": {"type": "invalid_request_error", "message": message, "code": code}}


def stripe_settings() -> dict[str, Any]:
    return {
        "auth": "accounts",
        "stripe_secret_key": "sk_test_refrain",
        "stripe_webhook_secret": WEBHOOK_SECRET,
        "stripe_network_retries": 0,
        "public_url": "https://studio.example.com",
    }


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, at: int | None = None) -> str:
    """The `Stripe-Signature` header Stripe sends: t=<unix>,v1=<HMAC-SHA256 of "t.payload">."""
    at = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{at}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


def event(kind: str, obj: dict[str, Any], created: int, event_id: str | None = None) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2025-10-29.clover",
        "created": created,
        "livemode": False,
        "pending_webhooks": 1,
        "type": kind,
        "data": {"object": obj},
    }


def subscription(sub_id: str, customer: str, status: str, user_id: str | None = None) -> dict[str, Any]:
    return {
        "id": sub_id,
        "object": "subscription",
        "customer": customer,
        "status": status,
        "metadata": {"refrain_user_id": user_id} if user_id else {},
        "items": {"object": "list", "data": [{"id": "si_1", "price": {"id": "price_song"}}]},
    }


def invoice(customer: str, sub_id: str, status: str = "paid") -> dict[str, Any]:
    """An invoice as API versions since 2025-03 shape it: the subscription under `parent`."""
    return {
        "id": f"in_{uuid.uuid4().hex[:12]}",
        "object": "invoice",
        "customer": customer,
        "status": status,
        "parent": {"type": "subscription_details", "subscription_details": {"subscription": sub_id}},
    }


def checkout_completed(user_id: str, customer: str, sub_id: str) -> dict[str, Any]:
    return {
        "id": f"cs_test_{uuid.uuid4().hex[:12]}",
        "object": "checkout.session",
        "mode": "subscription",
        "status": "complete",
        "payment_status": "paid",
        "client_reference_id": user_id,
        "customer": customer,
        "subscription": sub_id,
        "metadata": {"refrain_user_id": user_id},
    }
