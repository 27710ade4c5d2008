"""Billing routes: Stripe Checkout and the customer portal for the signed-in user, and Stripe's
webhook (its own router: no user, no rate limit; the signature is the authentication)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from infra.billing import BillingNotOffered, StripeBilling, handle_event, verify_event
from infra.db import User
from web.deps import SessionDep, UserDep
from web.schemas import ProblemPublic

log = logging.getLogger(__name__)
WEBHOOK_PATH = "/api/v1/billing/webhook"
WEBHOOK_MAX_BYTES = 1024 * 1024  # invoices with many lines are larger than an API request

router = APIRouter(prefix="/api/v1/billing", tags=["billing"])
webhook_router = APIRouter(tags=["billing"])
ERRORS: dict[int | str, dict[str, object]] = {code: {"model": ProblemPublic} for code in (401, 404, 409, 503)}


class RedirectPublic(BaseModel):
    url: str


def stripe_billing_of(app: FastAPI) -> StripeBilling:
    """The studio's Stripe side, made on first use."""
    if app.state.billing is None:
        app.state.billing = StripeBilling(app.state.settings)
    return app.state.billing


def stripe_billing(request: Request) -> StripeBilling:
    """404 where billing is off."""
    if not request.app.state.settings.billing_enabled:
        raise BillingNotOffered("this studio does not sell a paid plan (billing is not configured)")
    return stripe_billing_of(request.app)


@router.post("/checkout", responses=ERRORS)
def checkout(request: Request, user: UserDep, session: SessionDep) -> RedirectPublic:
    """A Stripe Checkout page that subscribes the caller to the paid plan; open its `url`."""
    billing = stripe_billing(request)
    return RedirectPublic(
        url=billing.checkout_url(session, _fresh(session, user), request.app.state.settings.base_url)
    )


@router.post("/portal", responses=ERRORS)
def portal(request: Request, user: UserDep, session: SessionDep) -> RedirectPublic:
    """Stripe's customer portal for the caller: invoices, payment method, cancelling."""
    billing = stripe_billing(request)
    return RedirectPublic(url=billing.portal_url(_fresh(session, user), request.app.state.settings.base_url))


def _fresh(session: Session, user: User) -> User:
    """The caller's row as stored now: the identity cache may hold a copy a few seconds old."""
    row = session.get(User, user.id, populate_existing=True)
    assert row is not None
    return row


@webhook_router.post(WEBHOOK_PATH, include_in_schema=False)
async def stripe_webhook(
    request: Request, stripe_signature: str | None = Header(default=None, alias="Stripe-Signature")
) -> JSONResponse:
    """Stripe's events. A bad signature changes nothing (400); an event is applied once (its id is
    stored), so Stripe's retries and replays are no-ops; unknown types are acknowledged and ignored.
    A failure of ours answers 500 so Stripe delivers the event again later."""
    settings = request.app.state.settings
    if not settings.stripe_webhook_secret:
        raise HTTPException(503, "this studio has no Stripe webhook secret (REFRAIN_STRIPE_WEBHOOK_SECRET)")
    if not stripe_signature:
        raise HTTPException(400, "missing Stripe-Signature header")
    payload = await request.body()
    try:
        event = verify_event(payload, stripe_signature, settings.stripe_webhook_secret,
                             settings.stripe_webhook_tolerance_s)  # fmt: skip
    except ValueError as exc:
        log.warning("stripe webhook refused: %s", exc)
        raise HTTPException(400, f"invalid Stripe event: {exc}") from exc
    handled = await run_in_threadpool(handle_event, request.app.state.sessions, settings, event)
    if handled.user_id is not None:  # this process forgets the user now; others within auth_cache_s
        request.app.state.identities.forget(user_id=handled.user_id)
    return JSONResponse({"received": True, "duplicate": not handled.first, "outcome": handled.outcome})
