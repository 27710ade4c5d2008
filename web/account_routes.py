"""Accounts: sign-up and sign-in for the browser (session cookie), API keys for programs, credits."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from infra.accounts import (
    check_password,
    create_api_key,
    create_user,
    create_web_session,
    end_web_session,
)
from infra.credits import balance
from infra.db import ApiKey, User
from web.deps import SESSION_COOKIE, SessionDep, UserDep

router = APIRouter(prefix="/api/v1", tags=["accounts"])


class Credentials(BaseModel):
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    password: str = Field(min_length=8, max_length=200)
    name: str = Field(default="", max_length=200)


class KeyCreate(BaseModel):
    name: str = Field(default="", max_length=200)


class KeyPublic(BaseModel):
    id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    key: str | None = Field(default=None, description="shown once, at creation")


class MePublic(BaseModel):
    id: str
    email: str | None
    name: str
    plan: str = Field(description="free (daily allowance) | paid (billed per song) | custom")
    period: str = Field(description="day | month: how often the allowance renews")
    credits_left: int
    monthly_limit: int = Field(description="the period's allowance (Suno's name for it)")
    monthly_usage: int = Field(description="credits spent this period, net of refunds")
    resets_at: datetime
    subscription_status: str | None
    billing: bool = Field(description="whether this studio sells the paid plan")


def _me(request: Request, session: SessionDep, user: User) -> MePublic:
    settings = request.app.state.settings
    now = balance(session, settings, user)
    return MePublic(
        id=user.id,
        email=user.email,
        name=user.name,
        plan=user.plan,
        period=now.allowance.period,
        credits_left=now.left,
        monthly_limit=now.allowance.credits,
        monthly_usage=now.used,
        resets_at=now.allowance.resets_at,
        subscription_status=user.subscription_status,
        billing=settings.billing_enabled,
    )


def _set_cookie(request: Request, response: Response, token: str) -> None:
    settings = request.app.state.settings
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_days * 86400,
        httponly=True,
        samesite="strict",  # never sent on cross-site requests: the cookie cannot be ridden (CSRF)
        secure=settings.environment == "production",
    )


@router.post("/auth/signup", status_code=201, responses={403: {}, 409: {}})
def signup(body: Credentials, request: Request, response: Response, session: SessionDep) -> MePublic:
    settings = request.app.state.settings
    if settings.auth != "accounts" or not settings.open_signup:
        raise HTTPException(403, "sign-up is closed on this studio")
    if session.scalar(select(User).where(User.email == body.email.strip().lower())) is not None:
        raise HTTPException(409, "an account with this email exists")
    user = create_user(session, body.email, body.password, body.name)
    _set_cookie(request, response, create_web_session(session, user.id, settings.session_days))
    session.commit()
    return _me(request, session, user)


@router.post("/auth/login", responses={401: {}})
def login(body: Credentials, request: Request, response: Response, session: SessionDep) -> MePublic:
    user = session.scalar(select(User).where(User.email == body.email.strip().lower()))
    if user is None or not check_password(user, body.password):
        raise HTTPException(401, "wrong email or password")
    _set_cookie(
        request, response, create_web_session(session, user.id, request.app.state.settings.session_days)
    )
    session.commit()
    return _me(request, session, user)


@router.post("/auth/logout", status_code=204)
def logout(request: Request, session: SessionDep) -> Response:
    if token := request.cookies.get(SESSION_COOKIE):
        end_web_session(session, token)
        session.commit()
        request.app.state.identities.forget("session:" + token)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/me", responses={401: {}})
def me(request: Request, user: UserDep, session: SessionDep) -> MePublic:
    return _me(request, session, user)


@router.post("/keys", status_code=201, responses={401: {}})
def new_key(body: KeyCreate, user: UserDep, session: SessionDep) -> KeyPublic:
    row, key = create_api_key(session, user.id, body.name)
    session.commit()
    return KeyPublic(
        id=row.id, name=row.name, prefix=row.prefix, created_at=row.created_at, last_used_at=None, key=key
    )


@router.get("/keys", responses={401: {}})
def list_keys(user: UserDep, session: SessionDep) -> list[KeyPublic]:
    rows = session.scalars(
        select(ApiKey)
        .where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
        .order_by(ApiKey.created_at)
    ).all()
    return [
        KeyPublic(id=r.id, name=r.name, prefix=r.prefix, created_at=r.created_at, last_used_at=r.last_used_at)
        for r in rows
    ]


@router.delete("/keys/{key_id}", status_code=204, responses={401: {}, 404: {}})
def revoke_key(key_id: str, request: Request, user: UserDep, session: SessionDep) -> Response:
    row = session.get(ApiKey, key_id)
    if row is None or row.user_id != user.id or row.revoked_at is not None:
        raise HTTPException(404, f"no key {key_id}")
    row.revoked_at = datetime.now(UTC)
    session.commit()
    request.app.state.identities.forget(user_id=user.id)  # keys are stored hashed: forget the user's
    return Response(status_code=204)
