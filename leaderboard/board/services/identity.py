"""Who is behind an account: e-mail confirmation, verified identities and teams.

A new account confirms its e-mail address through a signed link that expires
(``EMAIL_CONFIRM_DAYS``) before it can submit. The confirmed address, normalised
(:func:`email_identity`), is the account's verified identity: every account of one identity
shares one daily quota per task (:func:`quota_holder_ids`). A team's members have the
team's quota besides (``services/submissions.py``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from leaderboard.board.errors import NotAllowed, ServiceError
from leaderboard.board.models import Account
from leaderboard.board.selectors.identity import account_for

CONFIRM_SALT = "board.account.confirm-email"

# Providers that ignore dots in the local part; "googlemail.com" is the same mailbox.
DOTLESS_DOMAINS = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}

NOT_CONFIRMED_MESSAGE = (
    "Confirm your e-mail address before submitting: open the link we sent to {email}, or ask "
    "for a new one on the submission page."
)


class EmailTaken(ServiceError):
    status_code = 409
    code = "email_taken"


class NotConfirmed(NotAllowed):
    code = "email_not_confirmed"


class ConfirmationInvalid(ServiceError):
    code = "confirmation_invalid"


class ConfirmationExpired(ConfirmationInvalid):
    code = "confirmation_expired"


def email_identity(email: str) -> str:
    """The verified identity an address stands for: lower case, without a ``+tag``
    sub-address, and for Gmail without the dots it ignores.

    >>> email_identity("Ada.Lovelace+run2@GoogleMail.com")
    'adalovelace@gmail.com'
    """
    local, _, domain = email.strip().lower().rpartition("@")
    base = local.split("+", 1)[0]
    local = base or local
    domain = DOTLESS_DOMAINS.get(domain, domain)
    if domain == "gmail.com":
        local = local.replace(".", "")
    return f"{local}@{domain}"


def email_is_taken(*, email: str, exclude_user_id: int | None = None) -> bool:
    """Whether an address (case-insensitive) already belongs to an account."""
    qs = Account.objects.filter(email__iexact=email.strip())
    if exclude_user_id is not None:
        qs = qs.exclude(user_id=exclude_user_id)
    return qs.exists()


def account_create(*, user: Any, email: str, confirmed: bool = False) -> Account:
    """Record a user's e-mail address, unconfirmed unless the platform vouches for it
    (``confirmed``: accounts it makes itself, such as the demo user)."""
    email = email.strip()
    try:
        with transaction.atomic():
            return Account.objects.create(
                user=user,
                email=email,
                identity=email_identity(email),
                confirmed_at=timezone.now() if confirmed else None,
            )
    except IntegrityError as exc:
        raise EmailTaken(
            f"An account with the address {email} exists already; log in to it instead.",
            field="email",
        ) from exc


def account_ensure_confirmed(*, user: Any, email: str) -> Account:
    """Give an account the platform itself made a confirmed address (idempotent)."""
    account = Account.objects.filter(user=user).first()
    if account is None:
        return account_create(user=user, email=email, confirmed=True)
    if account.confirmed_at is None:
        account.confirmed_at = timezone.now()
        account.save(update_fields=["confirmed_at"])
    return account


def is_verified(user: Any) -> bool:
    """Whether a user counts as a verified identity (a confirmed address)."""
    account = account_for(user)
    return account is not None and account.is_confirmed


def check_can_submit(*, owner: Any) -> None:
    """Refuse a participant whose address is not confirmed (staff are trusted)."""
    if owner.is_staff or is_verified(owner):
        return
    account = account_for(owner)
    email = account.email if account else (owner.email or "your address")
    raise NotConfirmed(NOT_CONFIRMED_MESSAGE.format(email=email))


def confirmation_token(account: Account) -> str:
    return signing.dumps({"a": account.pk, "e": account.email.lower()}, salt=CONFIRM_SALT)


def confirmation_send(*, account: Account, link_for: Any) -> None:
    """E-mail the confirmation link; ``link_for(token)`` makes the absolute URL."""
    days = settings.EMAIL_CONFIRM_DAYS
    link = link_for(confirmation_token(account))
    send_mail(
        subject="Confirm your e-mail address for the MedMod leaderboard",
        message=(
            f"Hello {account.user.get_username()},\n\n"
            f"Open this link to confirm {account.email} and start submitting:\n\n{link}\n\n"
            f"The link works for {days} day{'s' if days != 1 else ''}. If you did not sign up, "
            "ignore this message.\n"
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[account.email],
    )


def account_confirm(*, token: str) -> Account:
    """Confirm the address a link was made for: :class:`ConfirmationExpired` when it is
    older than ``EMAIL_CONFIRM_DAYS``, :class:`ConfirmationInvalid` when it was altered or
    the account's address changed since."""
    max_age = timedelta(days=settings.EMAIL_CONFIRM_DAYS)
    try:
        data = signing.loads(token, salt=CONFIRM_SALT, max_age=max_age)
    except signing.SignatureExpired as exc:
        raise ConfirmationExpired(
            f"This confirmation link is more than {settings.EMAIL_CONFIRM_DAYS} days old and "
            "has expired. Log in and ask for a new one."
        ) from exc
    except signing.BadSignature as exc:
        raise ConfirmationInvalid(
            "This confirmation link is not valid: it may have been cut short or altered. "
            "Copy the whole link from the e-mail, or log in and ask for a new one."
        ) from exc
    account = Account.objects.filter(pk=data.get("a")).select_related("user").first()
    if account is None or account.email.lower() != data.get("e"):
        raise ConfirmationInvalid(
            "This confirmation link is for an address the account no longer has. Log in and "
            "ask for a new one."
        )
    if account.confirmed_at is None:
        account.confirmed_at = timezone.now()
        account.save(update_fields=["confirmed_at"])
    return account


def quota_holder_ids(*, owner: Any) -> list[int]:
    """The users whose submissions count against ``owner``'s own daily quota, sorted: the
    accounts sharing its verified identity. (A team's quota is counted by the team.)"""
    identities = Account.objects.filter(user_id=owner.pk, confirmed_at__isnull=False).values(
        "identity"
    )
    found = set(
        Account.objects.filter(identity__in=identities, confirmed_at__isnull=False).values_list(
            "user_id", flat=True
        )
    )
    return sorted(found | {owner.pk})


def lock_quota_holders(*, owner: Any) -> list[int]:
    """Lock the user rows of everyone sharing ``owner``'s quota, in id order (so that two
    accounts submitting at once wait for each other and never deadlock). Call inside a
    transaction; returns the ids. A team's row is locked after these (never before)."""
    ids = quota_holder_ids(owner=owner)
    list(get_user_model().objects.select_for_update().filter(pk__in=ids).order_by("pk"))
    return ids
