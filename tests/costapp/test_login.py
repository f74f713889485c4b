"""Login: every page needs it, and repeated failures are rate-limited."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from costapp.auth import TOO_MANY


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


def test_pages_redirect_anonymous_visitors_to_login(client, db):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_health_check_is_public(client, db):
    assert client.get("/healthz").status_code == 200


def test_login_is_refused_after_too_many_failures_even_with_the_right_password(
    client, world, settings
):
    settings.COSTAPP_LOGIN_ATTEMPTS = 3
    for _ in range(3):
        r = client.post("/accounts/login/", {"username": "finance", "password": "wrong"})
        assert r.status_code == 200
    r = client.post("/accounts/login/", {"username": "finance", "password": "pw-finance-123"})
    assert r.status_code == 429
    assert TOO_MANY in r.content.decode()


def test_a_good_login_within_the_limit_works(client, world):
    client.post("/accounts/login/", {"username": "finance", "password": "wrong"})
    r = client.post("/accounts/login/", {"username": "finance", "password": "pw-finance-123"})
    assert r.status_code == 302
