"""Request dependencies: the database session, the caller (user) and their limits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from infra.accounts import user_for_key, user_for_session
from infra.db import LOCAL_USER_ID, Job, Song, User
from infra.jobs import JobService

SESSION_COOKIE = "refrain_session"


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


def get_service(request: Request) -> JobService:
    return request.app.state.jobs


SessionDep = Annotated[Session, Depends(get_session)]
ServiceDep = Annotated[JobService, Depends(get_service)]


def current_user(request: Request, session: SessionDep) -> User:
    """Local mode: the studio's one user. Accounts mode: `Authorization: Bearer <API key>` or the
    browser session cookie; anything else is 401. Every caller is rate-limited."""
    settings = request.app.state.settings
    user: User | None
    if settings.auth == "local":
        user = session.get(User, LOCAL_USER_ID)
        principal = request.client.host if request.client else "local"
    else:
        user = None
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        if scheme.lower() == "bearer" and credential.strip():
            user = user_for_key(session, credential.strip())
        elif token := request.cookies.get(SESSION_COOKIE):
            user = user_for_session(session, token)
        if user is None:
            raise HTTPException(
                401,
                "sign in, or send an API key as 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        principal = user.id
    assert user is not None, "the local user is created by migration 0003"
    request.state.principal = principal
    request.app.state.limits.hit(principal)
    return user


UserDep = Annotated[User, Depends(current_user)]


def owned_job(job_id: str, user: UserDep, session: SessionDep) -> Job:
    """The caller's job, or 404: another user's job is indistinguishable from no job."""
    job = session.get(Job, job_id)
    if job is None or job.user_id != user.id:
        raise HTTPException(404, f"no job {job_id}")
    return job


def owned_song(song_id: str, user: UserDep, session: SessionDep) -> Song:
    song = session.get(Song, song_id)
    if song is None or song.user_id != user.id:
        raise HTTPException(404, f"no song {song_id}")
    return song


JobDep = Annotated[Job, Depends(owned_job)]
SongDep = Annotated[Song, Depends(owned_song)]
