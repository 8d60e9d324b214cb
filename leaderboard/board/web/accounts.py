"""Account pages: sign up, confirm the e-mail address (and ask for a new link), log in with
lockout after repeated wrong passwords."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from leaderboard.board.services.identity import (
    ConfirmationExpired,
    ConfirmationInvalid,
    EmailTaken,
    account_confirm,
    account_create,
    account_for,
    confirmation_send,
)
from leaderboard.board.web.forms import LockoutAuthenticationForm, SignupForm

RESEND_INTERVAL_SECONDS = 60


def _link_for(request: HttpRequest):
    return lambda token: request.build_absolute_uri(reverse("confirm-email", args=[token]))


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("my-submissions")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                user = form.save()
                account = account_create(user=user, email=form.cleaned_data["email"])
        except EmailTaken as exc:  # the same address signed up at the same moment
            form.add_error("email", exc.message)
        else:
            confirmation_send(account=account, link_for=_link_for(request))
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(
                request,
                f"Welcome, {user.get_username()}. Your account is ready: open the link we sent "
                f"to {account.email} to confirm the address, then you can submit.",
            )
            return redirect("submit")
    return render(
        request, "registration/signup.html", {"form": form}, status=400 if form.errors else 200
    )


def confirm_email(request: HttpRequest, token: str) -> HttpResponse:
    try:
        account = account_confirm(token=token)
    except ConfirmationInvalid as exc:
        return render(
            request,
            "registration/confirm_email.html",
            {"error": exc.message, "expired": isinstance(exc, ConfirmationExpired)},
            status=400,
        )
    return render(request, "registration/confirm_email.html", {"account": account})


@login_required
@require_POST
def confirm_email_resend(request: HttpRequest) -> HttpResponse:
    account = account_for(request.user)
    if account is None:
        messages.error(
            request, "Your account has no e-mail address on record; ask the organizers to add one."
        )
    elif account.is_confirmed:
        messages.info(request, f"{account.email} is confirmed already.")
    elif not cache.add(f"confirm-resend:{account.pk}", 1, timeout=RESEND_INTERVAL_SECONDS):
        messages.error(
            request,
            f"A link was sent less than {RESEND_INTERVAL_SECONDS} seconds ago; check your mail "
            "(and its spam folder) before asking again.",
        )
    else:
        confirmation_send(account=account, link_for=_link_for(request))
        messages.success(request, f"A new confirmation link was sent to {account.email}.")
    return redirect("submit")


class LoginView(auth_views.LoginView):
    """Django's login page with :class:`LockoutAuthenticationForm`; a locked-out attempt is
    answered with 429 and a Retry-After header."""

    authentication_form = LockoutAuthenticationForm

    def form_invalid(self, form):
        response = super().form_invalid(form)
        locked = getattr(form, "locked", None)
        if locked is not None:
            response.status_code = 429
            response["Retry-After"] = str(locked.retry_after)
        return response
