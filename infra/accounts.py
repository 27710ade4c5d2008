"""Users, API keys, browser sessions and share links: creation and lookup.

API keys and session tokens are 256-bit random strings shown once; only their SHA-256 is stored, so
a leaked database grants nothing. Passwords are hashed with Argon2id (argon2-cffi)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from infra.db import ApiKey, ShareLink, User, WebSession

KEY_PREFIX = "rf_"
_hasher = PasswordHasher()


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_user(
    session: Session,
    email: str,
    password: str | None = None,
    name: str = "",
    monthly_credits: int | None = None,
) -> User:
    """A new account on the free plan, or, given `monthly_credits`, on a custom plan of that many."""
    user = User(
        email=email.strip().lower(),
        name=name or email.split("@")[0],
        password_hash=_hasher.hash(password) if password else None,
        plan="free" if monthly_credits is None else "custom",
        monthly_credits=monthly_credits or 0,
    )
    session.add(user)
    session.flush()
    return user


def check_password(user: User, password: str) -> bool:
    if not user.password_hash:
        return False
    try:
        return _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def create_api_key(session: Session, user_id: str, name: str = "") -> tuple[ApiKey, str]:
    """Returns the row and the key itself, which is never stored or shown again."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(user_id=user_id, name=name, prefix=key[:10], key_hash=digest(key))
    session.add(row)
    session.flush()
    return row, key


def user_for_key(session: Session, key: str) -> User | None:
    return session.scalar(
        select(User)
        .join(ApiKey, ApiKey.user_id == User.id)
        .where(ApiKey.key_hash == digest(key), ApiKey.revoked_at.is_(None))
    )


def create_web_session(session: Session, user_id: str, days: int) -> str:
    token = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            token_hash=digest(token), user_id=user_id, expires_at=datetime.now(UTC) + timedelta(days=days)
        )
    )
    session.flush()
    return token


def user_for_session(session: Session, token: str) -> User | None:
    row = session.get(WebSession, digest(token))
    if row is None or _aware(row.expires_at) < datetime.now(UTC):
        return None
    return session.get(User, row.user_id)


def end_web_session(session: Session, token: str) -> None:
    row = session.get(WebSession, digest(token))
    if row is not None:
        session.delete(row)


def create_share_link(session: Session, song_id: str, user_id: str) -> ShareLink:
    link = ShareLink(token=secrets.token_urlsafe(24), song_id=song_id, user_id=user_id)
    session.add(link)
    session.flush()
    return link


def shared_song_id(session: Session, token: str) -> str | None:
    link = session.get(ShareLink, token)
    return link.song_id if link is not None and link.revoked_at is None else None


class UrlSigner:
    """Expiring HMAC signatures for file URLs the API serves itself (the local-disk counterpart of
    S3's presigned URLs): `<path>?exp=<unix time>&sig=<hex>`."""

    def __init__(self, secret: bytes, ttl_s: int) -> None:
        self.secret = secret
        self.ttl_s = ttl_s

    def _sig(self, path: str, expires: int) -> str:
        return hmac.new(self.secret, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    def sign(self, path: str, now: float | None = None) -> str:
        expires = int((now or datetime.now(UTC).timestamp()) + self.ttl_s)
        return f"{path}?exp={expires}&sig={self._sig(path, expires)}"

    def valid(self, path: str, exp: str | None, sig: str | None) -> bool:
        if not exp or not sig or not exp.isdigit() or int(exp) < datetime.now(UTC).timestamp():
            return False
        return hmac.compare_digest(self._sig(path, int(exp)), sig)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite returns naive datetimes


class IdentityCache:
    """Who a credential belongs to, remembered for `ttl_s` seconds so that polling clients cost no
    database lookup per request. A revoked key or ended session stops working at once in the process
    that revoked it, and within `ttl_s` in others."""

    def __init__(self, ttl_s: float, max_items: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_items = max_items
        self._items: dict[str, tuple[float, User]] = {}
        self._lock = threading.Lock()

    def get(self, credential: str, load: Callable[[], User | None]) -> User | None:
        key = digest(credential)
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        user = load()
        if user is not None and self.ttl_s > 0:
            with self._lock:
                if len(self._items) >= self.max_items:
                    self._items.clear()
                self._items[key] = (now + self.ttl_s, user)
        return user

    def forget(self, credential: str | None = None, user_id: str | None = None) -> None:
        with self._lock:
            if credential is not None:
                self._items.pop(digest(credential), None)
            if user_id is not None:
                for key in [k for k, (_, u) in self._items.items() if u.id == user_id]:
                    del self._items[key]
