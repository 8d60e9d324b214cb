"""E-mails about a user's entries: scored (and published), failed, moved on its board by a
re-score.

Each mail goes to the entry's owner (for a team's entry: the member who submitted it), to a
confirmed address only, when the owner's switch for that kind is on
(:class:`NotificationSettings`; no row: all on). The platform's reference entries never
mail. Mails are sent once the transaction that recorded the event commits
(``transaction.on_commit``), and at most once per event: a :class:`Notification` row, unique
per entry, run and kind, is written before the mail leaves, so a redelivered message or a
second call finds it and sends nothing. The row is also the record of what was sent to
whom. A mail backend that fails is logged and marked on the row; it never fails the
scoring. A mail says only what the entry's page shows its owner, with a link to that page
(``SITE_URL``) and a signed link that turns that kind off without logging in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from leaderboard.board.board_cache import board_ranks
from leaderboard.board.errors import ServiceError
from leaderboard.board.models import (
    Account,
    Evaluation,
    Notification,
    NotificationKind,
    NotificationSettings,
    Submission,
)
from leaderboard.board.templatetags.board_tags import metric_short
from scoring.disclosure import disclose_summary

log = logging.getLogger(__name__)

UNSUBSCRIBE_SALT = "board.notifications.unsubscribe"
# The owner of the platform's own entries (services.baselines.REFERENCE_USERNAME, not
# imported: that module imports the scoring services, which import this one): never mailed.
REFERENCE_USERNAME = "reference"

KIND_TITLES = {
    NotificationKind.PUBLISHED: "your entries are scored (and published)",
    NotificationKind.FAILED: "your entries fail",
    NotificationKind.RANK_CHANGED: "a re-score changes your entries' rank",
}


class UnsubscribeInvalid(ServiceError):
    code = "unsubscribe_invalid"


# Settings -----------------------------------------------------------------------------------
def notification_settings_get(*, user: Any) -> NotificationSettings:
    """The user's switches: their row, or an unsaved one with every kind on."""
    found = NotificationSettings.objects.filter(user_id=user.pk).first()
    return found or NotificationSettings(user_id=user.pk)


def notification_settings_update(*, user: Any, **switches: bool) -> NotificationSettings:
    """Turn kinds on or off (``published=False``, ...); kinds not named stay as they are."""
    unknown = set(switches) - set(NotificationKind.values)
    if unknown:
        raise ValueError(f"unknown notification kinds: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        row, _ = NotificationSettings.objects.select_for_update().get_or_create(user_id=user.pk)
        for kind, on in switches.items():
            setattr(row, kind, bool(on))
        row.save()
    return row


def _wants(user_id: int, kind: str) -> bool:
    row = NotificationSettings.objects.filter(user_id=user_id).values(kind).first()
    return True if row is None else bool(row[kind])


# Unsubscribe links --------------------------------------------------------------------------
def unsubscribe_token(*, user: Any, kind: str) -> str:
    """A signed token that turns one kind off for one user; it does not expire."""
    return signing.dumps({"u": user.pk, "k": kind}, salt=UNSUBSCRIBE_SALT)


@dataclass(frozen=True)
class Unsubscribe:
    user: Any
    kind: str

    @property
    def title(self) -> str:
        return KIND_TITLES[NotificationKind(self.kind)]


def unsubscribe_read(*, token: str) -> Unsubscribe:
    """What a link stands for; :class:`UnsubscribeInvalid` when it was altered or names a
    user that no longer exists."""
    try:
        data = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except signing.BadSignature as exc:
        raise UnsubscribeInvalid(
            "This unsubscribe link is not valid: it may have been cut short or altered. Copy "
            "the whole link from the e-mail, or log in and change your notification settings."
        ) from exc
    user = get_user_model().objects.filter(pk=data.get("u")).first()
    kind = data.get("k")
    if user is None or kind not in NotificationKind.values:
        raise UnsubscribeInvalid(
            "This unsubscribe link names an account or a kind of e-mail that no longer "
            "exists; nothing was changed."
        )
    return Unsubscribe(user=user, kind=kind)


def notification_unsubscribe(*, token: str) -> Unsubscribe:
    """Turn off the kind a signed link names, for the user it names."""
    found = unsubscribe_read(token=token)
    notification_settings_update(user=found.user, **{found.kind: False})
    return found


# Who gets a mail ----------------------------------------------------------------------------
def _recipient(submission: Submission, kind: str) -> Account | None:
    """The owner's confirmed account, when the owner gets mails of this kind."""
    if submission.is_reference or submission.owner.get_username() == REFERENCE_USERNAME:
        return None
    account = Account.objects.filter(user_id=submission.owner_id).first()
    if account is None or not account.is_confirmed:
        return None
    if not _wants(submission.owner_id, kind):
        return None
    return account


def _site_link(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


# Events (called by services.evaluations inside the transaction that records them) --------
def rank_before_rescore(*, evaluation_id: int) -> int | None:
    """The entry's rank on its board before a re-score's result is recorded: None unless
    the run is a re-score of a published entry whose owner would be told of a new rank (or
    when the entry is not ranked now). Never raises."""
    try:
        evaluation = (
            Evaluation.objects.select_related("submission__owner", "submission__task__benchmark")
            .filter(pk=evaluation_id, trigger=Evaluation.Trigger.RESCORE)
            .first()
        )
        if evaluation is None:
            return None
        submission = evaluation.submission
        if submission.status != Submission.Status.PUBLISHED:
            return None
        if _recipient(submission, NotificationKind.RANK_CHANGED) is None:
            return None
        return board_ranks(task=submission.task).get(submission.pk)
    except Exception:
        log.exception("rank of the entry of run %s before its re-score", evaluation_id)
        return None


def notify_after_scoring(
    *, evaluation: Evaluation, submission: Submission, first_result: bool, rank_before: int | None
) -> None:
    """After a run succeeded, once it commits: the scored (published) mail for an entry's
    first result, else the rank mail when a re-score moved it on its board."""
    evaluation_id, submission_id = evaluation.pk, submission.pk
    if first_result:
        transaction.on_commit(
            lambda: _guarded(notification_send, kind=NotificationKind.PUBLISHED,
                             submission_id=submission_id, evaluation_id=evaluation_id)
        )  # fmt: skip
    elif rank_before is not None:
        transaction.on_commit(
            lambda: _guarded(_rank_changed, submission_id=submission_id,
                             evaluation_id=evaluation_id, rank_before=rank_before)
        )  # fmt: skip


def notify_failed(*, evaluation: Evaluation, submission: Submission) -> None:
    """After an entry failed, once it commits: the failure mail with its reason."""
    evaluation_id, submission_id = evaluation.pk, submission.pk
    transaction.on_commit(
        lambda: _guarded(notification_send, kind=NotificationKind.FAILED,
                         submission_id=submission_id, evaluation_id=evaluation_id)
    )  # fmt: skip


def _guarded(func: Any, **kwargs: Any) -> None:
    """Run a notification step; whatever goes wrong is logged, never raised to the run."""
    try:
        func(**kwargs)
    except Exception:
        log.exception("notification %s %s could not be sent", func.__name__, kwargs)


def _rank_changed(*, submission_id: int, evaluation_id: int, rank_before: int) -> None:
    submission = Submission.objects.select_related("task__benchmark").get(pk=submission_id)
    if submission.status != Submission.Status.PUBLISHED:
        return
    rank_after = board_ranks(task=submission.task).get(submission_id)
    if rank_after is None or rank_after == rank_before:
        return
    notification_send(
        kind=NotificationKind.RANK_CHANGED,
        submission_id=submission_id,
        evaluation_id=evaluation_id,
        details={"rank_before": rank_before, "rank_after": rank_after},
    )


# Sending ------------------------------------------------------------------------------------
def notification_send(
    *, kind: str, submission_id: int, evaluation_id: int, details: dict[str, Any] | None = None
) -> Notification | None:
    """Mail the entry's owner about an event, once: None when nobody is to be told or the
    event was mailed already. A backend failure is logged and recorded on the row."""
    submission = Submission.objects.select_related("owner", "task__benchmark").get(pk=submission_id)
    account = _recipient(submission, kind)
    if account is None:
        return None
    evaluation = Evaluation.objects.defer("report", "replicate_values").get(
        pk=evaluation_id, submission_id=submission_id
    )
    details = dict(details or {})
    subject, body = _compose(kind, submission=submission, evaluation=evaluation, details=details)
    try:
        with transaction.atomic():
            note = Notification.objects.create(
                user_id=submission.owner_id,
                submission=submission,
                evaluation=evaluation,
                kind=kind,
                email=account.email,
                subject=subject[:300],
                details=details,
            )
    except IntegrityError:
        log.info("%s of entry %s (run %s) was mailed already", kind, submission_id, evaluation_id)
        return None
    try:
        send_mail(
            subject=subject,
            message=body,
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[account.email],
        )
    except Exception as exc:
        log.exception("mail %s to the owner of entry %s failed", kind, submission.public_id)
        note.status, note.error = Notification.Status.FAILED, f"{type(exc).__name__}: {exc}"
        note.save(update_fields=["status", "error"])
        return note
    note.status, note.sent_at = Notification.Status.SENT, timezone.now()
    note.save(update_fields=["status", "sent_at"])
    return note


def _primary_figure(evaluation: Evaluation) -> str:
    """The primary metric with its 95% CI as the entry's page shows it (bounded)."""
    summary = evaluation.summary or {}
    shown = disclose_summary(
        {
            **summary,
            "value": evaluation.primary_value,
            "ci": [evaluation.primary_ci_low, evaluation.primary_ci_high],
        }
    )
    value, ci = shown.get("value"), shown.get("ci") or [None, None]
    if value is None:
        return ""
    metric = metric_short(summary.get("primary_metric") or evaluation.primary_metric)
    interval = f" (95% CI {ci[0]} to {ci[1]})" if None not in ci[:2] else ""
    return f"{metric} {value}{interval}"


def _compose(
    kind: str, *, submission: Submission, evaluation: Evaluation, details: dict[str, Any]
) -> tuple[str, str]:
    """Subject and plain-text body of a mail."""
    task = submission.task
    name = f'"{submission.method_name}"'
    entry_link = _site_link(submission.get_absolute_url())
    where = f"the {task.title} board"
    if kind == NotificationKind.PUBLISHED:
        figure = _primary_figure(evaluation)
        scored = f"It scored {figure}.\n\n" if figure else ""
        if submission.status == Submission.Status.PUBLISHED:
            subject = f"Your entry {name} is published on {where}"
            lead = f"Your entry {name} for {task.title} was scored and is on its leaderboard."
        else:
            subject = f"Your entry {name} for {task.title} is scored"
            lead = (
                f"Your entry {name} for {task.title} was scored. It is not on the leaderboard: "
                "only you see it until you publish it from its page."
            )
        text = f"{lead}\n\n{scored}See the full report:\n{entry_link}\n"
    elif kind == NotificationKind.FAILED:
        subject = f"Your entry {name} for {task.title} failed"
        text = (
            f"Your entry {name} for {task.title} could not be scored.\n\n"
            f"Why it failed:\n{submission.failure_reason}\n\n"
            f"The entry's page:\n{entry_link}\n"
        )
    else:
        before, after = details["rank_before"], details["rank_after"]
        subject = f"Your entry {name} moved from rank {before} to rank {after} on {where}"
        text = (
            f"A re-score of your entry {name} changed its rank on {where}: "
            f"rank {before} before, rank {after} now.\n\n"
            f"The entry's page:\n{entry_link}\n"
            f"The board:\n{_site_link(task.board_url)}\n"
        )
    unsubscribe = _site_link(
        reverse(
            "notifications-unsubscribe",
            args=[unsubscribe_token(user=submission.owner, kind=kind)],
        )
    )
    footer = (
        f"\n--\nYou get this e-mail because you asked to be told when "
        f"{KIND_TITLES[NotificationKind(kind)]}.\n"
        f"Stop these e-mails: {unsubscribe}\n"
        f"All your notification settings: {_site_link(reverse('notifications'))}\n"
    )
    greeting = f"Hello {submission.owner.get_username()},\n\n"
    return subject, greeting + text + footer
