"""Notification settings: the page where a user turns each kind of e-mail on or off, and the
page a mail's unsubscribe link opens (no login: the link is signed)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt

from leaderboard.board.models import NotificationKind, NotificationSettings
from leaderboard.board.services.identity import account_for
from leaderboard.board.services.notifications import (
    UnsubscribeInvalid,
    notification_settings_get,
    notification_settings_update,
    notification_unsubscribe,
    unsubscribe_read,
)


class NotificationSettingsForm(forms.ModelForm):
    class Meta:
        model = NotificationSettings
        fields = list(NotificationKind.values)
        labels = {
            "published": "An entry of mine is scored (and published on its board)",
            "failed": "An entry of mine fails, with the reason",
            "rank_changed": "A re-score changes the rank of an entry of mine on its board",
        }


@login_required
def notification_settings(request: HttpRequest) -> HttpResponse:
    current = notification_settings_get(user=request.user)
    form = NotificationSettingsForm(request.POST or None, instance=current)
    if request.method == "POST" and form.is_valid():
        notification_settings_update(
            user=request.user, **{k: form.cleaned_data[k] for k in NotificationKind.values}
        )
        messages.success(request, "Your notification settings are saved.")
        return redirect("notifications")
    return render(
        request,
        "board/notifications.html",
        {"form": form, "account": account_for(request.user)},
        status=400 if form.errors else 200,
    )


# The signed token is the whole authority of this page (no session is needed, and a forged
# request without the token can do nothing): no CSRF cookie, so that it works in a browser
# that has never visited the site.
@csrf_exempt
def notification_unsubscribe_page(request: HttpRequest, token: str) -> HttpResponse:
    """GET: what the link turns off, with a button (mail scanners open links; only the
    button changes anything). POST: turn it off."""
    try:
        if request.method == "POST":
            found = notification_unsubscribe(token=token)
            done = True
        else:
            found = unsubscribe_read(token=token)
            done = False
    except UnsubscribeInvalid as exc:
        return render(request, "board/unsubscribe.html", {"error": exc.message}, status=400)
    return render(
        request,
        "board/unsubscribe.html",
        {"kind_title": found.title, "username": found.user.get_username(), "done": done},
    )
