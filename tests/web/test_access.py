"""Accounts and access control: two users, every song, job and file route; share links; sessions."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.testclient import TestClient

from infra.db import Song
from tests.utils.databases import database_url
from tests.utils.studio import QUICK_SONG, add_user, quick_settings, wait_job
from web.main import create_app


@pytest.fixture(params=["sqlite", "postgresql"])
def accounts(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    settings = quick_settings(tmp_path / "data", auth="accounts", open_signup=True)
    with database_url(request.param, tmp_path) as url:
        settings = settings.model_copy(update={"database_url": url})
        with TestClient(create_app(settings)) as client:
            yield client


@pytest.fixture
def two_users(accounts: TestClient) -> tuple[TestClient, dict[str, str], dict[str, str], dict]:
    """Alice with one finished song, and Bob."""
    alice = add_user(accounts, "alice@example.com")
    bob = add_user(accounts, "bob@example.com")
    created = accounts.post("/api/v1/songs", json=QUICK_SONG, headers=alice)
    assert created.status_code == 202, created.text
    job = wait_job(accounts, created.json()["id"], alice)
    assert job["status"] == "complete", job
    return accounts, alice, bob, job


def test_nobody_gets_in_without_a_key_or_session(accounts: TestClient) -> None:
    for method, path in [
        ("GET", "/api/v1/songs"),
        ("POST", "/api/v1/songs"),
        ("GET", "/api/v1/me"),
        ("GET", "/api/get"),
        ("GET", "/api/get_limit"),
    ]:
        response = accounts.request(method, path, json=QUICK_SONG if method == "POST" else None)
        assert response.status_code == 401, (method, path)
        assert response.headers["www-authenticate"] == "Bearer"
    wrong = {"Authorization": "Bearer rf_not-a-key"}
    assert accounts.get("/api/v1/songs", headers=wrong).status_code == 401
    suno = accounts.get("/api/get", headers=wrong)
    assert suno.status_code == 401 and "API key" in suno.json()["error"]


def test_no_user_can_touch_another_users_songs(two_users: tuple) -> None:
    client, alice, bob, job = two_users
    song = job["songs"][0]
    sid, jid = song["id"], job["id"]
    routes = [
        ("GET", f"/api/v1/songs/{sid}", None),
        ("DELETE", f"/api/v1/songs/{sid}", None),
        ("POST", f"/api/v1/songs/{sid}/extend", {"duration_s": 10}),
        ("POST", f"/api/v1/songs/{sid}/stems", None),
        ("POST", f"/api/v1/songs/{sid}/share", None),
        ("DELETE", f"/api/v1/songs/{sid}/share", None),
        ("GET", f"/api/v1/jobs/{jid}", None),
        ("GET", f"/api/v1/jobs/{jid}/events", None),
        ("GET", f"/files/{sid}/mp3", None),
        ("GET", f"/files/{sid}/hls/index.m3u8", None),
        ("GET", f"/files/{sid}/hls/segment-000.m4s", None),
        ("GET", f"/api/clip?id={sid}", None),
        ("GET", f"/api/get_aligned_lyrics?song_id={sid}", None),
        ("POST", "/api/extend_audio", {"audio_id": sid, "continue_at": 5}),
        ("POST", "/api/generate_stems", {"audio_id": sid}),
    ]
    for method, path, body in routes:
        response = client.request(method, path, json=body, headers=bob)
        assert response.status_code == 404, (method, path, response.status_code, response.text)
    assert client.get("/api/v1/songs", headers=bob).json() == []
    assert client.get(f"/api/get?ids={sid}", headers=bob).json() == []
    assert client.get("/api/get", headers=bob).json() == []
    # and Alice still has everything
    assert client.get(f"/api/v1/songs/{sid}", headers=alice).status_code == 200
    assert client.get(f"/files/{sid}/mp3", headers=alice).status_code == 200
    with client.app.state.sessions() as session:  # type: ignore[attr-defined]
        assert session.get(Song, sid) is not None


def test_file_urls_are_signed_and_expire(two_users: tuple) -> None:
    client, alice, _, job = two_users
    song = client.get(f"/api/v1/songs/{job['songs'][0]['id']}", headers=alice).json()
    url = song["urls"]["mp3"]
    assert client.get(url).status_code == 200  # no credentials: the signature is the permission
    part = client.get(url, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100
    query = parse_qs(urlsplit(url).query)
    tampered = url.replace(query["sig"][0], "0" * 32)
    assert client.get(tampered).status_code == 404
    other_format = url.replace("/mp3?", "/wav?")  # a signature covers exactly one file
    assert client.get(other_format).status_code == 404
    signer = client.app.state.signer  # type: ignore[attr-defined]
    expired = signer.sign(f"/files/{song['id']}/mp3", now=time.time() - signer.ttl_s - 1)
    assert client.get(expired).status_code == 404
    playlist = client.get(song["urls"]["hls"])
    assert playlist.status_code == 200
    segment = next(line for line in playlist.text.splitlines() if line and not line.startswith("#"))
    assert client.get(segment).status_code == 200


def test_a_share_link_opens_one_song_read_only_until_revoked(two_users: tuple) -> None:
    client, alice, bob, job = two_users
    sid = job["songs"][0]["id"]
    shared = client.post(f"/api/v1/songs/{sid}/share", headers=alice)
    assert shared.status_code == 201
    public = client.get(shared.json()["url"])  # anyone, no account
    assert public.status_code == 200 and public.json()["id"] == sid
    assert client.get(public.json()["urls"]["m4a"]).status_code == 200
    # read-only: the link grants nothing on the API
    assert client.delete(f"/api/v1/songs/{sid}", headers=bob).status_code == 404
    assert client.delete(f"/api/v1/songs/{sid}/share", headers=alice).status_code == 204
    assert client.get(shared.json()["url"]).status_code == 404


def test_deleting_a_song_removes_it_and_its_files(two_users: tuple) -> None:
    client, alice, _, job = two_users
    song = job["songs"][0]
    files = client.app.state.settings.data_dir / "songs" / job["id"]  # type: ignore[attr-defined]
    assert any(files.iterdir())
    assert client.delete(f"/api/v1/songs/{song['id']}", headers=alice).status_code == 204
    assert client.get(f"/api/v1/songs/{song['id']}", headers=alice).status_code == 404
    assert not [p for p in files.rglob("*") if p.is_file()]


def test_browser_sessions_sign_up_in_and_out(accounts: TestClient) -> None:
    body = {"email": "carol@example.com", "password": "long enough password"}
    signed_up = accounts.post("/api/v1/auth/signup", json=body)
    assert signed_up.status_code == 201
    me = signed_up.json()  # a new account starts on the free plan: a daily allowance
    assert (me["plan"], me["period"], me["credits_left"], me["billing"]) == ("free", "day", 50, False)
    assert "httponly" in signed_up.headers["set-cookie"].lower()
    assert "samesite=strict" in signed_up.headers["set-cookie"].lower()
    assert accounts.get("/api/v1/me").json()["email"] == "carol@example.com"  # the cookie
    assert accounts.post("/api/v1/auth/signup", json=body).status_code == 409
    assert accounts.post("/api/v1/auth/logout").status_code == 204
    assert accounts.get("/api/v1/me").status_code == 401
    wrong = accounts.post("/api/v1/auth/login", json={**body, "password": "not the password"})
    assert wrong.status_code == 401
    assert accounts.post("/api/v1/auth/login", json=body).status_code == 200
    key = accounts.post("/api/v1/keys", json={"name": "laptop"}).json()
    assert key["key"].startswith("rf_") and key["prefix"] == key["key"][:10]
    assert [k["id"] for k in accounts.get("/api/v1/keys").json()] == [key["id"]]
    assert accounts.get("/api/v1/keys").json()[0]["key"] is None  # shown once, at creation
    accounts.cookies.clear()
    bearer = {"Authorization": f"Bearer {key['key']}"}
    assert accounts.get("/api/v1/me", headers=bearer).status_code == 200
    assert accounts.delete(f"/api/v1/keys/{key['id']}", headers=bearer).status_code == 204
    assert accounts.get("/api/v1/me", headers=bearer).status_code == 401  # revoked


def test_the_page_offers_sign_in_in_accounts_mode(accounts: TestClient) -> None:
    page = accounts.get("/")
    assert page.status_code == 200 and 'id="signin-form"' in page.text
    assert "/api/v1/auth/login" in accounts.get("/static/app.js").text


def test_signup_is_closed_unless_opened(tmp_path: Path) -> None:
    settings = quick_settings(tmp_path / "data", auth="accounts")
    with TestClient(create_app(settings)) as client:
        response = client.post("/api/v1/auth/signup", json={"email": "a@b.c", "password": "long enough pw"})
        assert response.status_code == 403 and "closed" in response.json()["detail"]


def test_the_local_studio_needs_no_login(tmp_path: Path) -> None:
    with TestClient(create_app(quick_settings(tmp_path / "data"))) as client:
        assert client.get("/api/v1/me").json()["id"] == "local"
        assert client.get("/api/v1/songs").status_code == 200
