"""Login with a rate limit: repeated failures from one address or for one user are refused.

Counters live in the cache (Redis in production, so every web process shares them) for
`WINDOW_SECONDS`; after `COSTAPP_LOGIN_ATTEMPTS` failures, the login page answers 429 until the
window passes, even with the right password.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

WINDOW_SECONDS = 15 * 60
TOO_MANY = "Too many failed login attempts. Try again in 15 minutes."


def _keys(request: HttpRequest) -> list[str]:
    ip = request.META.get("REMOTE_ADDR", "?")
    user = (request.POST.get("username") or "").strip().lower()[:150]
    return [f"login-fail:ip:{ip}", f"login-fail:user:{user}"]


def _blocked(request: HttpRequest) -> bool:
    limit = settings.COSTAPP_LOGIN_ATTEMPTS
    return any((cache.get(k) or 0) >= limit for k in _keys(request))


def _record_failure(request: HttpRequest) -> None:
    for key in _keys(request):
        if not cache.add(key, 1, WINDOW_SECONDS):
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.set(key, 1, WINDOW_SECONDS)


class RateLimitedLoginView(auth_views.LoginView):
    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if _blocked(request):
            response = self.render_to_response(self.get_context_data(rate_limited=TOO_MANY))
            response.status_code = 429
            return response
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        _record_failure(self.request)
        return super().form_invalid(form)
