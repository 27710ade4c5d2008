"""Paid-tier billing through Stripe: usage metering, Checkout and the customer portal, and the state
changes that Stripe's webhook events carry.

Money moves in three places, each made safe against retries and duplicates by a unique key:
- usage: a finished paid job writes one outbox row per song (identifier = the clip's id) in the
  transaction that completes it; `UsageReporter` sends each row as a Stripe meter event with that
  identifier until Stripe accepts it, so usage is never dropped and a resend is never billed twice;
- credits: the ledger (infra.credits) with unique entry keys;
- subscription state: each Stripe event is handled once (its id is stored), and an event older than
  the state already applied to the user changes nothing, so out-of-order delivery ends in the right
  state.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import stripe
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from functions.errors import RefrainError
from infra.credits import allowance, ensure_allowance
from infra.db import Job, MeterOutbox, StripeEvent, User, utcnow

if TYPE_CHECKING:
    from infra.settings import Settings

log = logging.getLogger(__name__)
ACTIVE = ("active", "trialing")  # subscription states that keep the paid plan
HANDLED = (
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_failed",
    "customer.deleted",
)


class BillingUnavailable(RefrainError):
    """Stripe could not be reached, or its set-up is incomplete (no price): 503."""


class BillingNotOffered(RefrainError):
    """This studio sells no paid plan (no Stripe key, or no accounts): 404, as for a missing route."""


class BillingConflict(RefrainError):
    """The request does not fit the account's billing state (e.g. subscribing twice): 409."""


# --- usage ----------------------------------------------------------------------------------


def record_usage(session: Session, settings: Settings, job: Job, at: datetime) -> None:
    """The outbox rows for a completed paid job: one per song made (value 1, identifier = clip id);
    a stems job is one song's worth (identifier = the job's id). Callers hold the job's row lock
    and commit these with the job's completion."""
    user = session.get(User, job.user_id)
    assert user is not None
    identifiers = [job.id] if job.kind == "stems" else [s.id for s in job.songs if s.status == "complete"]
    for identifier in identifiers:
        row = MeterOutbox(
            identifier=identifier,
            user_id=user.id,
            job_id=job.id,
            customer_id=user.stripe_customer_id or "",
            event_name=settings.stripe_meter_event,
            value=1,
            timestamp=int(at.timestamp()),
            state="pending",
            attempts=0,
            next_try_at=at,
            created_at=at,
        )
        if not user.stripe_customer_id:  # cannot be billed; kept for the operator, never dropped
            row.state, row.last_error = "rejected", "the user has no Stripe customer"
            log.error("paid job %s finished for user %s, who has no Stripe customer", job.id, user.id)
        session.add(row)


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


class UsageReporter:
    """Sends the outbox to Stripe: one row per transaction, locked while it is sent (other reporters
    skip it on PostgreSQL), marked sent only once Stripe has accepted it."""

    def __init__(self, sessions: sessionmaker, billing: StripeBilling) -> None:
        self.sessions = sessions
        self.billing = billing
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def flush(self, limit: int = 500, now: datetime | None = None) -> dict[str, int]:
        counts = {"sent": 0, "retry": 0, "rejected": 0}
        for _ in range(limit):
            outcome = self._send_one(now or utcnow())
            if outcome is None:
                break
            counts[outcome] += 1
            if outcome == "retry":  # Stripe is unreachable or refusing us: the rest waits too
                break
        return counts

    def _send_one(self, now: datetime) -> str | None:
        with self.sessions() as session, session.begin():
            row = session.scalar(
                select(MeterOutbox)
                .where(MeterOutbox.state == "pending", MeterOutbox.next_try_at <= now)
                .order_by(MeterOutbox.next_try_at, MeterOutbox.created_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if row is None:
                return None
            row.attempts += 1
            try:
                self.billing.send_meter_event(row)
            except stripe.InvalidRequestError as exc:  # Stripe refuses this event as it is: no retry
                row.state, row.last_error = "rejected", f"{exc.http_status}: {exc.user_message}"
                log.error("meter event %s rejected by Stripe: %s", row.identifier, row.last_error)
                return "rejected"
            except stripe.StripeError as exc:  # unreachable, rate-limited, 5xx, bad key: try later
                row.next_try_at = now + backoff(row.attempts)
                row.last_error = f"{type(exc).__name__}: {exc.user_message or exc}"
                log.warning("meter event %s not sent (%s); retry at %s", row.identifier, row.last_error,
                            row.next_try_at)  # fmt: skip
                return "retry"
            row.state, row.sent_at, row.last_error = "sent", utcnow(), None
            return "sent"

    # a background thread in the API process: woken when a paid job completes, else every interval
    def nudge(self) -> None:
        self._wake.set()

    def start(self, interval_s: float) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.flush()
                except Exception:  # the reporter must outlive a database or Stripe hiccup
                    log.exception("usage report failed; the outbox keeps the events")
                self._wake.wait(interval_s)
                self._wake.clear()

        self._thread = threading.Thread(target=loop, name="refrain-usage", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


# --- Stripe calls ---------------------------------------------------------------------------


class StripeBilling:
    """Our side of Stripe's API. `http_client` replaces the SDK's transport (tests record it)."""

    def __init__(self, settings: Settings, http_client: stripe.HTTPClient | None = None) -> None:
        if not settings.stripe_secret_key:
            raise BillingNotOffered("billing is not configured on this studio (REFRAIN_STRIPE_SECRET_KEY)")
        self.settings = settings
        self.client = stripe.StripeClient(
            settings.stripe_secret_key,
            http_client=http_client,
            max_network_retries=settings.stripe_network_retries,
        )
        self._price_id: str | None = None

    def send_meter_event(self, row: MeterOutbox) -> None:
        self.client.v1.billing.meter_events.create(
            {
                "event_name": row.event_name,
                "identifier": row.identifier,
                "timestamp": row.timestamp,
                "payload": {"stripe_customer_id": row.customer_id, "value": str(row.value)},
            }
        )

    def price_id(self) -> str:
        """The paid plan's metered price, found by its lookup key (made by infra.stripe_setup)."""
        if self._price_id is None:
            key = self.settings.stripe_price_lookup_key
            prices = self._call(
                self.client.v1.prices.list, {"lookup_keys": [key], "active": True, "limit": 1}
            )
            if not prices.data:
                raise BillingUnavailable(
                    f"no active Stripe price has the lookup key {key}: run refrain-stripe-setup"
                )
            self._price_id = prices.data[0].id
        return self._price_id

    def customer_for(self, session: Session, user: User) -> str:
        """The user's Stripe customer, made once (the idempotency key makes a double click one)."""
        if user.stripe_customer_id:
            return user.stripe_customer_id
        params: dict[str, Any] = {"metadata": {"refrain_user_id": user.id}}
        if user.email:
            params["email"] = user.email
        if user.name:
            params["name"] = user.name
        customer = self._call(
            self.client.v1.customers.create, params, {"idempotency_key": f"refrain-customer-{user.id}"}
        )
        user.stripe_customer_id = customer.id
        session.commit()
        return customer.id

    def checkout_url(self, session: Session, user: User, base_url: str) -> str:
        if user.plan == "paid":
            raise BillingConflict("this account is on the paid plan already; manage it in the billing portal")
        if user.plan == "custom":
            raise BillingConflict("this account has a custom plan set by the studio's operator")
        price = self.price_id()
        customer = self.customer_for(session, user)
        checkout = self._call(
            self.client.v1.checkout.sessions.create,
            {
                "mode": "subscription",
                "customer": customer,
                "client_reference_id": user.id,
                "line_items": [{"price": price}],  # metered: no quantity, usage decides
                "success_url": f"{base_url}/?billing=success",
                "cancel_url": f"{base_url}/?billing=cancelled",
                "metadata": {"refrain_user_id": user.id},
                "subscription_data": {"metadata": {"refrain_user_id": user.id}},
            },
        )
        return str(checkout.url)

    def portal_url(self, user: User, base_url: str) -> str:
        if not user.stripe_customer_id:
            raise BillingConflict("this account has no billing history yet: upgrade first")
        portal = self._call(
            self.client.v1.billing_portal.sessions.create,
            {"customer": user.stripe_customer_id, "return_url": f"{base_url}/"},
        )
        return str(portal.url)

    @staticmethod
    def _call(method: Any, params: dict[str, Any], options: dict[str, Any] | None = None) -> Any:
        try:
            return method(params, options) if options else method(params)
        except stripe.StripeError as exc:
            log.error("Stripe call failed: %s", exc)
            raise BillingUnavailable(
                f"the payment provider could not be reached ({type(exc).__name__})"
            ) from exc


# --- webhook events -------------------------------------------------------------------------


def verify_event(payload: bytes, signature: str, secret: str, tolerance_s: int) -> dict[str, Any]:
    """The event, if `Stripe-Signature` proves Stripe sent these bytes recently; else ValueError."""
    try:
        stripe.WebhookSignature.verify_header(payload.decode("utf-8"), signature, secret, tolerance_s)
        event = json.loads(payload)
    except (stripe.SignatureVerificationError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(str(exc) or "bad signature") from exc
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or "type" not in event:
        raise ValueError("not a Stripe event")
    return event


@dataclass(frozen=True)
class Handled:
    first: bool  # False: delivered before (a retry, a replay, a duplicate)
    outcome: str  # what it did, in words (also stored with the event)
    user_id: str | None = None  # whose billing state it changed


def handle_event(sessions: sessionmaker, settings: Settings, event: dict[str, Any]) -> Handled:
    """Apply a verified event once. The event's id is stored in the transaction that applies it:
    a concurrent duplicate waits on the unique key and then finds it, a replay finds it at once."""
    with sessions() as session:
        try:
            with session.begin():
                record = StripeEvent(
                    id=event["id"], type=str(event["type"])[:100], created=int(event.get("created") or 0),
                    outcome="",
                )  # fmt: skip
                session.add(record)
                session.flush()  # claims the id now (or raises: handled before)
                outcome, user = _apply(session, settings, event)
                record.outcome = outcome[:200]
                user_id = user.id if user is not None else None
        except IntegrityError:
            return Handled(False, "duplicate: handled before")
    log.info("stripe event %s %s: %s", event["id"], event["type"], outcome)
    return Handled(True, outcome, user_id)


def _apply(session: Session, settings: Settings, event: dict[str, Any]) -> tuple[str, User | None]:
    kind = event["type"]
    if kind not in HANDLED:
        return "ignored: not an event Refrain uses", None
    obj = (event.get("data") or {}).get("object") or {}
    created = int(event.get("created") or 0)
    if kind == "customer.deleted":
        user = _user(session, customer=obj.get("id"))
        if user is None:
            return "ignored: no user has this customer", None
        user.stripe_customer_id = None
        return _apply_state(session, settings, user, "canceled", created, None), user
    metadata = obj.get("metadata") or {}
    if kind == "checkout.session.completed":
        if obj.get("mode") != "subscription":
            return "ignored: not a subscription checkout", None
        user = _user(
            session,
            user_id=obj.get("client_reference_id") or metadata.get("refrain_user_id"),
            customer=obj.get("customer"),
        )
        if user is None:
            return "ignored: no such user", None
        if obj.get("customer") and user.stripe_customer_id != obj["customer"]:
            user.stripe_customer_id = obj["customer"]
        done = obj.get("status") == "complete" and obj.get("payment_status") in (
            "paid",
            "no_payment_required",
        )
        state = "active" if done else "incomplete"
        return _apply_state(session, settings, user, state, created, obj.get("subscription")), user
    if kind.startswith("customer.subscription."):
        user = _user(session, user_id=metadata.get("refrain_user_id"), customer=obj.get("customer"))
        if user is None:
            return "ignored: no user has this customer", None
        if obj.get("customer") and not user.stripe_customer_id:
            user.stripe_customer_id = obj["customer"]
        status = "canceled" if kind.endswith(".deleted") else str(obj.get("status"))
        if user.stripe_subscription_id not in (None, obj.get("id")) and status not in ACTIVE:
            return "ignored: not the user's current subscription", None
        return _apply_state(session, settings, user, status, created, obj.get("id")), user
    # invoices: the subscription they bill (top level before API 2025-03, under parent since)
    parent = (obj.get("parent") or {}).get("subscription_details") or {}
    subscription = obj.get("subscription") or parent.get("subscription")
    user = _user(session, customer=obj.get("customer"))
    if user is None:
        return "ignored: no user has this customer", None
    status = "active" if kind == "invoice.paid" else "past_due"
    if not subscription or (user.stripe_subscription_id not in (None, subscription) and status not in ACTIVE):
        return "ignored: not the user's current subscription", None
    return _apply_state(session, settings, user, status, created, subscription), user


def _user(session: Session, user_id: str | None = None, customer: str | None = None) -> User | None:
    """The user, row-locked: by our id where the event carries it, else by Stripe customer."""
    if user_id:
        user = session.get(User, user_id, with_for_update=True)
        if user is not None:
            return user
    if customer:
        return session.scalar(select(User).where(User.stripe_customer_id == customer).with_for_update())
    return None


def _apply_state(
    session: Session, settings: Settings, user: User, status: str, created: int, subscription: str | None
) -> str:
    if created < user.billing_synced_at:
        return f"stale: the state of {user.billing_synced_at} is newer"
    user.billing_synced_at = created
    user.subscription_status = status
    if subscription:
        user.stripe_subscription_id = subscription
    if status == "canceled":
        user.stripe_subscription_id = None
    if user.plan == "custom":
        return f"subscription {status}; the custom plan stays"
    user.plan = "paid" if status in ACTIVE else "free"
    if user.plan == "paid":
        ensure_allowance(session, user, allowance(settings, user))
    return f"plan {user.plan} (subscription {status})"
