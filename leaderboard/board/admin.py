"""The admin: browse everything, re-score, publish and hide through the services (so the
audit log records who did it). Scoring runs and the audit log are read-only."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from leaderboard.board.errors import ServiceError
from leaderboard.board.models import (
    Account,
    AuditLog,
    Benchmark,
    Evaluation,
    Notification,
    RescoreRun,
    Submission,
    Task,
    Team,
    TeamInvitation,
    TeamMembership,
    Track,
)
from leaderboard.board.services.benchmarks import benchmark_make_current
from leaderboard.board.services.rescoring import rescore_progress, submissions_rescore
from leaderboard.board.services.submissions import submission_hide, submission_publish


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Benchmark)
class BenchmarkAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "is_current", "short_hash", "uri", "created_at"]
    readonly_fields = [
        "name",
        "version",
        "manifest_hash",
        "manifest",
        "n_files",
        "is_current",
        "created_at",
    ]
    actions = ["make_current"]

    @admin.display(description="manifest")
    def short_hash(self, obj: Benchmark) -> str:
        return obj.manifest_hash[:12]

    def has_add_permission(self, request):
        return False  # register with `manage.py load_benchmark`, which verifies the files

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Make the selected benchmark current")
    def make_current(self, request: HttpRequest, queryset: QuerySet[Benchmark]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one benchmark.", messages.ERROR)
            return
        benchmark_make_current(benchmark=queryset.get(), actor=request.user)
        self.message_user(request, "Done.")


@admin.register(Task)
class TaskAdmin(ReadOnlyAdmin):
    list_display = ["slug", "benchmark", "n_test_units"]
    list_filter = ["benchmark"]


@admin.register(Track)
class TrackAdmin(admin.ModelAdmin):
    list_display = ["slug", "title", "is_open"]
    readonly_fields = ["slug"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# The inline's fields, every one read-only (a tuple, which types as both ``fields`` and
# ``readonly_fields``).
EVALUATION_INLINE_FIELDS = (
    "id",
    "status",
    "trigger",
    "triggered_by",
    "scorer_version",
    "primary_value",
    "error_code",
    "created_at",
    "duration_seconds",
)


class EvaluationInline(admin.TabularInline):
    model = Evaluation
    fields = EVALUATION_INLINE_FIELDS
    readonly_fields = EVALUATION_INLINE_FIELDS
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).defer("report", "replicate_values", "summary")


@admin.register(Submission)
class SubmissionAdmin(admin.ModelAdmin):
    # Narrow enough for one line per entry beside the admin's two sidebars at 1,280 px: the
    # public id is the link, the team is the one the entry shows, the visibility its value.
    list_display = [
        "public_id",
        "method_name",
        "team_shown",
        "owner",
        "task_slug",
        "status",
        "visibility_value",
        "is_reference",
        "created_at",
    ]
    list_display_links = ["public_id"]
    list_filter = ["status", "visibility", "is_reference", "task__slug", "task__benchmark", "track"]
    search_fields = ["public_id", "method_name", "team_name", "owner__username", "sha256"]
    list_select_related = ["owner", "team", "task__benchmark"]
    readonly_fields = [
        "public_id", "owner", "team", "task", "track", "file", "original_filename", "sha256", "size", "status",
        "failure_kind", "failure_code", "failure_reason", "visibility", "is_reference",
        "created_at", "queued_at", "started_at", "scored_at", "published_at", "failed_at",
    ]  # fmt: skip
    inlines = [EvaluationInline]
    # Links typed without a scheme are taken as https, as on the submission form.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    actions = ["rescore", "publish", "hide"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="team", ordering="team_name")
    def team_shown(self, obj: Submission) -> str:
        return obj.team_label

    @admin.display(description="visibility", ordering="visibility")
    def visibility_value(self, obj: Submission) -> str:
        """The visibility's value (public, private, hidden); the filter explains each."""
        return str(obj.visibility)

    @admin.display(description="task", ordering="task__slug")
    def task_slug(self, obj: Submission) -> str:
        """The task's slug, its benchmark on hover: the list stays narrow enough to scan."""
        return format_html('<span title="{}">{}</span>', obj.task.benchmark, obj.task.slug)

    @admin.action(description="Re-score the selected submissions")
    def rescore(self, request: HttpRequest, queryset: QuerySet[Submission]) -> None:
        result = submissions_rescore(
            actor=request.user,
            submissions=list(queryset.select_related("task__benchmark")),
            scope="admin selection",
            from_request=True,
        )
        if result.preparing:  # many entries: a job makes the runs
            self.message_user(
                request,
                f"Re-score number {result.rescore_run} of {result.preparing} entries is "
                "starting: its runs are being made. Progress: Re-scores, number "
                f"{result.rescore_run}.",
            )
            return
        self.message_user(
            request,
            f"{len(result.queued)} re-scoring run(s) queued; {len(result.skipped)} skipped "
            "(a run already in flight, not yet stored, or no kept predictions). Progress: "
            f"Re-scores, number {result.rescore_run}.",
        )

    @admin.action(description="Publish the selected submissions")
    def publish(self, request: HttpRequest, queryset: QuerySet[Submission]) -> None:
        done, problems = 0, []
        for sub in queryset:
            try:
                submission_publish(actor=request.user, submission=sub)
                done += 1
            except ServiceError as exc:
                problems.append(f"{sub.public_id}: {exc.message}")
        self.message_user(request, f"{done} published.")
        for p in problems:
            self.message_user(request, p, messages.WARNING)

    @admin.action(description="Hide the selected submissions from the leaderboard")
    def hide(self, request: HttpRequest, queryset: QuerySet[Submission]) -> None:
        for sub in queryset:
            submission_hide(actor=request.user, submission=sub, reason="hidden from the admin")
        self.message_user(request, f"{queryset.count()} hidden.")


@admin.register(Evaluation)
class EvaluationAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "submission",
        "status",
        "trigger",
        "triggered_by",
        "scorer_version",
        "primary_value",
        "attempts",
        "created_at",
        "duration_seconds",
    ]
    list_filter = ["status", "trigger", "scorer_version"]
    list_select_related = ["submission__task", "triggered_by"]
    search_fields = ["submission__method_name"]

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        return (
            qs.defer("report", "replicate_values", "container_logs")
            if request.resolver_match.url_name.endswith("changelist")
            else qs
        )


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor", "action", "submission", "evaluation", "benchmark"]
    list_filter = ["action"]
    list_select_related = ["actor", "submission__task", "evaluation", "benchmark"]
    search_fields = ["actor__username", "action"]


class TeamMembershipInline(admin.TabularInline):
    model = TeamMembership
    extra = 1
    fields = ["user", "role", "joined_at"]
    raw_id_fields = ["user"]


# Read-only too (see EVALUATION_INLINE_FIELDS).
INVITATION_INLINE_FIELDS = (
    "invited_as",
    "invited_by",
    "created_at",
    "expires_at",
    "accepted_at",
    "declined_at",
)


class TeamInvitationInline(admin.TabularInline):
    """Open and answered invitations, as the team's owners made them (read-only)."""

    model = TeamInvitation
    extra = 0
    fields = INVITATION_INLINE_FIELDS
    readonly_fields = INVITATION_INLINE_FIELDS
    can_delete = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    """Teams: participants make and run their own (the Team page, /api/teams/); the
    organizers may add or remove members and owners here. A team with entries cannot be
    deleted."""

    list_display = ["name", "slug", "n_members", "created_by", "created_at"]
    search_fields = ["name", "slug", "memberships__user__username"]
    readonly_fields = ["created_by", "created_at"]
    fields = ["name", "slug", "description", "created_by", "created_at"]
    inlines = [TeamMembershipInline, TeamInvitationInline]

    @admin.display(description="members")
    def n_members(self, obj: Team) -> int:
        return obj.memberships.count()


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    """E-mail addresses of the accounts; the organizers may confirm one by hand."""

    list_display = ["user", "email", "identity", "confirmed_at"]
    list_filter = [("confirmed_at", admin.EmptyFieldListFilter)]
    search_fields = ["user__username", "email", "identity"]
    readonly_fields = ["identity", "created_at"]
    raw_id_fields = ["user"]
    actions = ["confirm"]

    def save_model(self, request, obj, form, change):
        from leaderboard.board.services.identity import email_identity

        obj.identity = email_identity(obj.email)
        super().save_model(request, obj, form, change)

    @admin.action(description="Confirm the selected addresses")
    def confirm(self, request: HttpRequest, queryset: QuerySet) -> None:
        from django.utils import timezone

        n = queryset.filter(confirmed_at__isnull=True).update(confirmed_at=timezone.now())
        self.message_user(request, f"{n} address(es) confirmed.", messages.SUCCESS)


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    """The e-mails sent about entries (one per entry, run and kind), read-only."""

    list_display = ["created_at", "kind", "user", "email", "submission", "status", "sent_at"]
    list_filter = ["kind", "status"]
    list_select_related = ["user", "submission__task"]
    search_fields = ["user__username", "email", "submission__public_id"]


@admin.register(RescoreRun)
class RescoreRunAdmin(ReadOnlyAdmin):
    """Re-scores: progress while they run, then the entries whose rank changed."""

    list_display = [
        "id", "scope", "status", "requested_by", "scorer_version", "progress", "created_at",
        "finished_at",
    ]  # fmt: skip
    list_filter = ["status", "scorer_version"]
    list_select_related = ["requested_by"]
    exclude = ["evaluations", "ranks_before", "rank_changes", "skipped", "entries"]
    readonly_fields = [
        "scope", "note", "requested_by", "status", "error", "scorer_version", "progress",
        "created_at", "finished_at", "skipped_entries", "rank_change_table",
    ]  # fmt: skip

    @admin.display(description="progress (done / failed / total)")
    def progress(self, obj: RescoreRun) -> str:
        p = rescore_progress(run=obj)
        rest = {
            "running": f", {p['running']} running, {p['waiting']} waiting",
            "starting": ", being prepared (its runs are being made)",
        }.get(obj.status, "")
        return f"{p['done']} / {p['failed']} / {p['total']}{rest}"

    @admin.display(description="skipped")
    def skipped_entries(self, obj: RescoreRun) -> str:
        return (
            format_html_join(
                "", "<div>{}: {}</div>", ((s["entry"], s["reason"]) for s in obj.skipped)
            )
            or "none"
        )

    @admin.display(description="entries whose rank changed")
    def rank_change_table(self, obj: RescoreRun) -> str:
        if obj.rank_changes is None:
            return "known when every run has finished"
        if not obj.rank_changes:
            return "no rank changed"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (c["task"], f"{c['entry']} {c['method']}", c["old_rank"] or "-",
                 c["new_rank"] or "-", "yes" if c["rescored"] else "no")
                for c in obj.rank_changes
            ),
        )  # fmt: skip
        return format_html(
            "<table><tr><th>task</th><th>entry</th><th>old rank</th><th>new rank</th>"
            "<th>re-scored</th></tr>{}</table>",
            rows,
        )
