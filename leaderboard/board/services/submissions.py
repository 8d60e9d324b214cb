"""Entering, publishing, withdrawing and hiding submissions; the daily limits."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from leaderboard.board.errors import (
    DuplicateSubmission,
    InvalidState,
    NotAllowed,
    QuotaExceeded,
    StorageUnavailable,
    TaskClosed,
    TrackClosed,
    UploadInvalid,
)
from leaderboard.board.labels import check_participant_text
from leaderboard.board.models import (
    AuditLog,
    Evaluation,
    Submission,
    Task,
    Team,
    TeamMembership,
    Track,
    new_upload_name,
)
from leaderboard.board.services.audit import audit_record
from leaderboard.board.services.boards import board_refresh_later
from leaderboard.board.services.evaluations import evaluation_create
from leaderboard.board.services.identity import (
    check_can_submit,
    lock_quota_holders,
    quota_holder_ids,
)
from leaderboard.board.services.uploads import (
    UploadInfo,
    check_image_upload,
    check_prediction_upload,
)
from leaderboard.containers.inputs import one_prediction_time

S = Submission.Status
V = Submission.Visibility

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubmissionMeta:
    """What a participant says about an entry."""

    method_name: str
    training_data: str
    uses_ehr: bool
    uses_cxr: bool
    # Only the platform's reference entries carry a label here: a participant's entry takes
    # its team from the owner's membership (clients that still send a name are answered by
    # check_team_name).
    team_name: str = ""
    description: str = ""
    paper_url: str = ""
    code_url: str = ""
    threshold: float | None = None
    visibility: str = V.PUBLIC
    # The suite's modality slugs the entry uses; empty: those uses_ehr and uses_cxr say.
    modalities: tuple[str, ...] = ()
    # A container entry that needs a GPU (its runs wait for a GPU host).
    needs_gpu: bool = False

    def modality_slugs(self) -> list[str]:
        if self.modalities:
            return list(self.modalities)
        return [m for m, used in (("ehr", self.uses_ehr), ("cxr", self.uses_cxr)) if used]


def submission_meta(data: Mapping[str, Any], *, modalities: Iterable[str]) -> SubmissionMeta:
    """What the submission form or the API's serializer says about an entry (their cleaned
    data), with the suite's modality slugs the entry uses."""
    used = tuple(modalities)
    return SubmissionMeta(
        method_name=data["method_name"].strip(),
        description=data.get("description", ""),
        paper_url=data.get("paper_url", ""),
        code_url=data.get("code_url", ""),
        uses_ehr="ehr" in used,
        uses_cxr="cxr" in used,
        modalities=used,
        training_data=data["training_data"].strip(),
        threshold=data.get("threshold"),
        visibility=data.get("visibility", V.PUBLIC),
        needs_gpu=bool(data.get("needs_gpu")),
    )


# What the streaming gateway reveals to a container (leaderboard/containers/gateway): the ICU
# time series and the chest X-rays. A suite whose tasks share one fixed prediction time has
# its test inputs cut at it and is run on those files; any other suite declaring more
# inputs takes prediction files.
GATEWAY_MODALITIES = frozenset({"ehr", "cxr"})
ERR_GATEWAY_MODALITIES = (
    "The container track does not run {suite} entries yet: the streaming gateway does not "
    "reveal {what}. Submit a prediction file instead."
)


def check_gateway_streams(task: Task) -> None:
    """Refuse a container entry for a suite whose inputs the platform cannot give a model
    causally: neither streamed by the gateway nor files that end at one prediction time."""
    declaration = task.benchmark.suite_declaration
    if one_prediction_time(declaration):
        return
    missing = [m.title.lower() for m in declaration.modalities if m.slug not in GATEWAY_MODALITIES]
    if missing:
        raise TrackClosed(
            ERR_GATEWAY_MODALITIES.format(suite=declaration.title, what=" or ".join(missing)),
            field="track",
        )


ERR_NO_MODALITY = "Say which inputs the model uses: at least one of {known}."
ERR_UNKNOWN_MODALITY = (
    "{what} {bad} {verb} not an input of the {suite} suite; its inputs are: {known}."
)


def entry_modalities(task: Task, meta: SubmissionMeta) -> list[str]:
    """The entry's modalities, checked against the task's suite and put in its order."""
    declared = [m.slug for m in task.benchmark.suite_declaration.modalities]
    used = meta.modality_slugs()
    bad = [m for m in used if m not in declared]
    if bad:
        raise UploadInvalid(
            ERR_UNKNOWN_MODALITY.format(
                what="Modality" if len(bad) == 1 else "Modalities", bad=", ".join(bad),
                verb="is" if len(bad) == 1 else "are", suite=task.suite_slug,
                known=", ".join(declared),
            ),
            field="modalities",
        )  # fmt: skip
    if not used:
        raise UploadInvalid(ERR_NO_MODALITY.format(known=", ".join(declared)), field="modalities")
    return [m for m in declared if m in used]


@dataclass(frozen=True)
class QuotaUsage:
    used: int
    limit: int
    failed: int
    failed_limit: int
    resets_at: datetime


ERR_GATEWAY_ONLY = (
    "{task} has several prediction times per stay (every hour, or every image), and only a "
    "model the platform runs can be asked at each without seeing what comes later: its "
    "public test files list no units, so it takes no prediction files. Submit a model image "
    "on the container track; the streaming gateway runs it causally (docs/containers.md)."
)


def _day_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _usage(entries: Any, *, now: datetime, limit: int, failed_limit: int) -> QuotaUsage:
    start = _day_start(now)
    counts = entries.filter(created_at__gte=start).aggregate(
        used=Count("id", filter=~Q(status=S.FAILED)),
        failed=Count("id", filter=Q(status=S.FAILED, failure_kind=Submission.FailureKind.INPUT)),
    )
    return QuotaUsage(
        used=counts["used"],
        limit=limit,
        failed=counts["failed"],
        failed_limit=failed_limit,
        resets_at=start + timedelta(days=1),
    )


def submission_quota_usage(
    *, owner: Any, task: Task, now: datetime | None = None, holder_ids: list[int] | None = None
) -> QuotaUsage:
    """Today's (UTC) submissions for a task of an owner's verified identity (see
    :func:`~leaderboard.board.services.identity.quota_holder_ids`): those that count against
    the daily limit (everything but failed ones) and failed ones (the file was at fault),
    apart."""
    if holder_ids is None:
        holder_ids = quota_holder_ids(owner=owner)
    return _usage(
        Submission.objects.filter(owner_id__in=holder_ids, task=task),
        now=now or timezone.now(),
        limit=settings.SUBMISSIONS_PER_DAY,
        failed_limit=settings.FAILED_SUBMISSIONS_PER_DAY,
    )


def team_quota_usage(*, team: Team, task: Task, now: datetime | None = None) -> QuotaUsage:
    """Today's (UTC) submissions for a task of a team: its entries, whoever made them."""
    return _usage(
        Submission.objects.filter(team=team, task=task),
        now=now or timezone.now(),
        limit=settings.TEAM_SUBMISSIONS_PER_DAY,
        failed_limit=settings.TEAM_FAILED_SUBMISSIONS_PER_DAY,
    )


def _check_usage(usage: QuotaUsage, *, task: Task, whose: str, who: str) -> None:
    reset = f"{usage.resets_at:%Y-%m-%d %H:%M} UTC"
    if usage.used >= usage.limit:
        raise QuotaExceeded(
            f"{whose} made {usage.used} submissions for {task.title} today, the daily limit "
            f"of {usage.limit} (failed ones are not counted). You can submit again after {reset}."
        )
    if usage.failed >= usage.failed_limit:
        raise QuotaExceeded(
            f"{usage.failed} submissions for {task.title} from {who} failed today, the daily "
            f"limit of {usage.failed_limit} for failed files. Check your file with "
            f"`python -m scoring score --truth` on the validation split first; you can submit "
            f"again after {reset}."
        )


def check_submission_quota(
    *, owner: Any, task: Task, holder_ids: list[int] | None = None, team: Team | None = None
) -> QuotaUsage:
    """Refuse a submission over the daily limits: the owner's own (shared by the accounts of
    its verified identity) and, for a team member, the team's. Call inside a transaction
    that holds the row locks of everyone sharing the owner's quota and of the team (see
    :func:`submission_create`), so two concurrent requests cannot both take the last place."""
    usage = submission_quota_usage(owner=owner, task=task, holder_ids=holder_ids)
    if owner.is_staff:
        return usage
    shared = bool(holder_ids) and len(holder_ids or ()) > 1
    _check_usage(
        usage,
        task=task,
        whose="You and your other accounts have" if shared else "You have",
        who="you or your other accounts" if shared else "you",
    )
    if team is not None:
        _check_usage(
            team_quota_usage(team=team, task=task),
            task=task,
            whose=f"Your team {team.name} has (its daily limit, shared by its members)",
            who=f"your team {team.name}",
        )
    return usage


ERR_TEAM_NAME = (
    "An entry is shown under its owner's team, which is set on the Team page (or through "
    "/api/teams/), not per entry: {why} Leave team_name out."
)


def check_team_name(*, owner: Any, team_name: str) -> None:
    """Refuse a team name typed with an entry unless it is the owner's own team's (old
    clients send one): entries take their team from the owner's membership."""
    name = " ".join(team_name.split())
    if not name:
        return
    check_participant_text({"team_name": name})
    membership = TeamMembership.objects.filter(user=owner).select_related("team").first()
    if membership is None:
        why = f'you are in no team, so your entries are shown under your user name, not "{name}".'
    elif membership.team.name.lower() != name.lower():
        why = f'your team is "{membership.team.name}", not "{name}".'
    else:
        return
    raise UploadInvalid(ERR_TEAM_NAME.format(why=why), field="team_name")


def submission_create(
    *,
    owner: Any,
    task: Task,
    track: Track,
    upload: UploadedFile | None,
    meta: SubmissionMeta,
    image: UploadedFile | None = None,
    is_reference: bool = False,
    streamed: bool = False,
    enforce_quota: bool = True,
    trigger: str = Evaluation.Trigger.SUBMISSION,
    note: str = "",
) -> Submission:
    """Store the upload, check the limits, record the entry and queue it for scoring.

    A prediction-file entry brings ``upload`` (a CSV); a container entry brings ``image``
    (a ``docker save`` archive), checked by the container runner before it is stored.
    ``streamed``: the platform made the file itself through the streaming gateway (its
    reference baselines only). ``note`` goes on the first evaluation, for the history.
    """
    check_entry_allowed(task=task, track=track, meta=meta, is_reference=is_reference,
                        streamed=streamed)  # fmt: skip
    modalities = entry_modalities(task, meta)
    if not is_reference:
        # The platform's own reference entries may carry its labels; nobody else's may.
        check_participant_text({"method_name": meta.method_name, "description": meta.description})
        check_can_submit(owner=owner)
    checked = _checked_upload(track=track, upload=upload, image=image)
    stored_name = ""
    try:
        with transaction.atomic():
            team = _lock_quota(owner=owner, task=task, is_reference=is_reference,
                               enforce_quota=enforce_quota)  # fmt: skip
            _check_not_entered(owner=owner, task=task, checked=checked)
            submission = _new_submission(
                owner=owner, task=task, track=track, meta=meta, modalities=modalities, team=team,
                is_reference=is_reference, streamed=streamed, info=checked.info,
            )  # fmt: skip
            stored_name = _store(submission, checked=checked, task=task)
            submission.save()
            evaluation_create(submission=submission, trigger=trigger, triggered_by=owner, note=note)
            audit_record(
                actor=owner,
                action=AuditLog.Action.SUBMISSION_CREATE,
                submission=submission,
                sha256=checked.info.sha256,
                size=checked.info.size,
            )
    except IntegrityError as exc:
        _discard(stored_name)
        raise DuplicateSubmission(
            f"This {checked.what} was submitted twice at the same time; it is recorded once.",
            field=checked.what,
        ) from exc
    except BaseException:
        _discard(stored_name)
        raise
    return submission


def check_entry_allowed(
    *, task: Task, track: Track, meta: SubmissionMeta, is_reference: bool, streamed: bool
) -> None:
    """Refuse an entry the task, the track or its visibility does not take (before the
    upload is read)."""
    if streamed and not is_reference:
        raise NotAllowed("Only the platform's reference entries are streamed by the platform.")
    if not track.is_open:
        raise TrackClosed(f"The {track.title} track is not open for submissions.", field="track")
    if not task.benchmark.is_current:
        raise TaskClosed(
            f"{task.title} of benchmark {task.benchmark} is closed: submit to the current benchmark.",
            field="task",
        )
    container = track.slug == Track.CONTAINER
    if container and not is_reference:
        check_gateway_streams(task)
    if task.gateway_only and not container and not is_reference:
        raise TaskClosed(ERR_GATEWAY_ONLY.format(task=task.title), field="track")
    if meta.visibility not in (V.PUBLIC, V.PRIVATE):
        raise NotAllowed("An entry can be public or private.", field="visibility")


@dataclass(frozen=True)
class CheckedUpload:
    """An upload that passed its checks: the file, what it is and where it is stored."""

    file: UploadedFile
    info: UploadInfo
    folder: str  # under the file store
    what: str  # "file" or "image": the form field, and the word in messages


def _checked_upload(
    *, track: Track, upload: UploadedFile | None, image: UploadedFile | None
) -> CheckedUpload:
    """The prediction file, or on the container track the model image, hashed and checked."""
    if track.slug != Track.CONTAINER:
        info = check_prediction_upload(upload=upload)
        assert upload is not None  # check_prediction_upload refuses a missing file
        return CheckedUpload(file=upload, info=info, folder="submissions", what="file")
    if image is None and upload is not None:
        raise UploadInvalid(
            "A container entry is a model image: send the output of `docker save` in the "
            "image field, not a prediction file.",
            field="image",
        )
    info = check_image_upload(upload=image)
    assert image is not None  # check_image_upload refuses a missing image
    return CheckedUpload(file=image, info=info, folder="images", what="image")


def _lock_quota(*, owner: Any, task: Task, is_reference: bool, enforce_quota: bool) -> Team | None:
    """Lock the rows of everyone sharing the owner's quota, then the owner's team, and check
    the daily limits; the owner's team (None for a reference entry or a user in no team).

    Concurrent submissions against one quota are serialized on those locks, so the count
    cannot be read twice before either is written. The team is read once the owner's row
    is locked: joining or leaving a team locks it too."""
    holder_ids = lock_quota_holders(owner=owner)
    team = None if is_reference else _lock_team_of(owner)
    if enforce_quota:
        check_submission_quota(owner=owner, task=task, holder_ids=holder_ids, team=team)
    return team


def _check_not_entered(*, owner: Any, task: Task, checked: CheckedUpload) -> None:
    """Refuse a file the owner has already entered for the task (and that did not fail)."""
    duplicate = (
        Submission.objects.filter(owner=owner, task=task, sha256=checked.info.sha256)
        .exclude(status=S.FAILED)
        .first()
    )
    if duplicate is not None:
        what = checked.what
        raise DuplicateSubmission(
            f"This {what} was already submitted as entry {duplicate.public_id} "
            f"({duplicate.method_name}); a {what} is scored once. Use re-scoring instead.",
            field=what,
        )


def _new_submission(
    *,
    owner: Any,
    task: Task,
    track: Track,
    meta: SubmissionMeta,
    modalities: list[str],
    team: Team | None,
    is_reference: bool,
    streamed: bool,
    info: UploadInfo,
) -> Submission:
    """The entry's row, not saved yet."""
    return Submission(
        owner=owner,
        task=task,
        track=track,
        method_name=meta.method_name,
        team=team,
        # The team's name as it was when the entry was made; the platform's own entries
        # keep their label.
        team_name=team.name if team is not None else (meta.team_name if is_reference else ""),
        description=meta.description,
        paper_url=meta.paper_url,
        code_url=meta.code_url,
        modalities=modalities,
        uses_ehr="ehr" in modalities,
        uses_cxr="cxr" in modalities,
        training_data=meta.training_data,
        threshold=meta.threshold,
        visibility=meta.visibility,
        needs_gpu=meta.needs_gpu,
        is_reference=is_reference,
        streamed=streamed,
        sha256=info.sha256,
        size=info.size,
        original_filename=info.original_name,
    )


def _store(submission: Submission, *, checked: CheckedUpload, task: Task) -> str:
    """Write the upload to the file store under a new name and point the entry at it."""
    try:
        checked.file.seek(0)
        stored_name = submission.file.storage.save(
            new_upload_name(task.slug, checked.info.suffix, folder=checked.folder), checked.file
        )
    except Exception as exc:
        log.exception("could not store an upload")
        raise StorageUnavailable(
            "The file store cannot be reached right now; nothing was recorded. "
            "Please try again in a few minutes."
        ) from exc
    submission.file.name = stored_name
    return stored_name


def _lock_team_of(owner: Any) -> Team | None:
    """The owner's team, its row locked for the transaction; None for a user in no team."""
    team_id = TeamMembership.objects.filter(user=owner).values_list("team_id", flat=True).first()
    if team_id is None:
        return None
    return Team.objects.select_for_update().get(pk=team_id)


def _discard(name: str) -> None:
    if not name:
        return
    from django.core.files.storage import default_storage

    try:
        default_storage.delete(name)
    except Exception:
        log.warning("could not delete the orphan upload %s", name)


def _can_manage(actor: Any, submission: Submission) -> bool:
    return bool(actor and (actor.is_staff or actor.pk == submission.owner_id))


def submission_publish(*, actor: Any, submission: Submission) -> Submission:
    """Put a scored entry on the leaderboard (its owner, or staff)."""
    if not _can_manage(actor, submission):
        raise NotAllowed("Only the entry's owner or the organizers can publish it.")
    with transaction.atomic():
        sub = Submission.objects.select_for_update().get(pk=submission.pk)
        if sub.visibility == V.HIDDEN and not actor.is_staff:
            raise NotAllowed("The organizers hid this entry; ask them to publish it again.")
        if sub.status == S.PUBLISHED:
            return sub
        if sub.status != S.SCORED:
            raise InvalidState(
                f"Entry {sub.public_id} is {sub.get_status_display().lower()}; only a scored entry "
                "can be published."
            )
        sub.status = S.PUBLISHED
        sub.visibility = V.PUBLIC
        sub.published_at = timezone.now()
        sub.save(update_fields=["status", "visibility", "published_at"])
        audit_record(actor=actor, action=AuditLog.Action.SUBMISSION_PUBLISH, submission=sub)
        board_refresh_later(task_id=sub.task_id)
    return sub


def submission_unpublish(*, actor: Any, submission: Submission) -> Submission:
    """Take one's own entry off the leaderboard (it stays scored and private)."""
    if not _can_manage(actor, submission):
        raise NotAllowed("Only the entry's owner or the organizers can withdraw it.")
    with transaction.atomic():
        sub = Submission.objects.select_for_update().get(pk=submission.pk)
        if sub.visibility == V.HIDDEN:
            return sub
        sub.visibility = V.PRIVATE
        if sub.status == S.PUBLISHED:
            sub.status = S.SCORED
            sub.published_at = None
        sub.save(update_fields=["status", "visibility", "published_at"])
        audit_record(actor=actor, action=AuditLog.Action.SUBMISSION_UNPUBLISH, submission=sub)
        board_refresh_later(task_id=sub.task_id)
    return sub


def submission_hide(*, actor: Any, submission: Submission, reason: str) -> Submission:
    """Staff: take an entry off the leaderboard; its owner cannot publish it again."""
    if not (actor and actor.is_staff):
        raise NotAllowed("Only the organizers can hide an entry.")
    if not reason.strip():
        raise NotAllowed(
            "Say why the entry is hidden: the reason is kept in the audit log.", field="reason"
        )
    with transaction.atomic():
        sub = Submission.objects.select_for_update().get(pk=submission.pk)
        sub.visibility = V.HIDDEN
        if sub.status == S.PUBLISHED:
            sub.status = S.SCORED
            sub.published_at = None
        sub.save(update_fields=["status", "visibility", "published_at"])
        audit_record(
            actor=actor, action=AuditLog.Action.SUBMISSION_HIDE, submission=sub, reason=reason
        )
        board_refresh_later(task_id=sub.task_id)
    return sub
