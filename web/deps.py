"""Request dependencies: the database session, the caller (user) and their limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session, joinedload

from infra.accounts import user_for_key, user_for_session
from infra.db import LOCAL_USER_ID, Job, Song, User
from infra.jobs import JobService

SESSION_COOKIE = "refrain_session"


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One session per request, opened and closed on the event loop: a sync generator dependency
    would need a free worker thread to close it, and under load every thread can be waiting for a
    connection that only such a close would return (a deadlock until the pool times out)."""
    session = request.app.state.sessions()
    try:
        yield session
    finally:
        session.close()


def get_service(request: Request) -> JobService:
    return request.app.state.jobs


SessionDep = Annotated[Session, Depends(get_session)]
ServiceDep = Annotated[JobService, Depends(get_service)]


async def current_user(request: Request, session: SessionDep) -> User:
    """The caller (see `resolve_user`). Async on purpose, as are the ownership checks below: a few
    indexed lookups run faster on the event loop than a hop to a worker thread and back."""
    return resolve_user(request, session)


def resolve_user(request: Request, session: Session) -> User:
    """Local mode: the studio's one user. Accounts mode: `Authorization: Bearer <API key>` or the
    browser session cookie; anything else is 401. Every caller is rate-limited."""
    settings = request.app.state.settings
    identities = request.app.state.identities
    user: User | None
    if settings.auth == "local":
        user = identities.get("local", lambda: session.get(User, LOCAL_USER_ID))
        principal = request.client.host if request.client else "local"
    else:
        user = None
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        if scheme.lower() == "bearer" and (key := credential.strip()):
            user = identities.get("key:" + key, lambda: user_for_key(session, key))
        elif token := request.cookies.get(SESSION_COOKIE):
            user = identities.get("session:" + token, lambda: user_for_session(session, token))
        if user is None:
            raise HTTPException(
                401,
                "sign in, or send an API key as 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        principal = user.id
    assert user is not None, "the local user is created by migration 0003"
    # end the read transaction now: its connection goes back to the pool while the endpoint works
    # (a submission takes a second connection; holding both under load exhausts the pool)
    session.commit()
    request.state.principal = principal
    request.app.state.limits.hit(principal)
    return user


UserDep = Annotated[User, Depends(current_user)]


async def owned_job(job_id: str, user: UserDep, session: SessionDep) -> Job:
    """The caller's job (its clips loaded in the same query), or 404: another user's job is
    indistinguishable from no job."""
    job = session.get(Job, job_id, options=[joinedload(Job.songs)])
    if job is None or job.user_id != user.id:
        raise HTTPException(404, f"no job {job_id}")
    return job


def song_of(session: Session, user: User, song_id: str, noun: str = "song") -> Song:
    """The caller's song, or 404 (as for an id that does not exist)."""
    song = session.get(Song, song_id)
    if song is None or song.user_id != user.id:
        raise HTTPException(404, f"no {noun} {song_id}")
    return song


async def owned_song(song_id: str, user: UserDep, session: SessionDep) -> Song:
    return song_of(session, user, song_id)


JobDep = Annotated[Job, Depends(owned_job)]
SongDep = Annotated[Song, Depends(owned_song)]
