from django.urls import path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

import leaderboard.board.entry_ids  # noqa: F401 (registers the "entry" converter)
from leaderboard.board.api import compare, notifications, queues, teams, views
from leaderboard.board.api.training_missingness import TrainingMissingnessView

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI works under the Content-Security-Policy (leaderboard.board.csp): its set-up
    # script is served as a file (?script). ReDoc is not offered: its side menu always loads
    # Redocly's logo from Redocly's server, a request to a third party from every reader.
    # Its old address leads to Swagger UI.
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="api-schema", template_name="board/api_swagger.html"
        ),
        name="api-docs",
    ),
    path("redoc/", RedirectView.as_view(pattern_name="api-docs", permanent=True)),
    path("auth/token/", views.TokenView.as_view(), name="api-token"),
    path("limits/", views.LimitsView.as_view(), name="api-limits"),
    path(
        "me/notifications/",
        notifications.MyNotificationsView.as_view(),
        name="api-my-notifications",
    ),
    path("queue/", queues.QueueView.as_view(), name="api-queue"),
    path("rescores/", queues.RescoreRunListView.as_view(), name="api-rescores"),
    path("rescores/<int:pk>/", queues.RescoreRunDetailView.as_view(), name="api-rescore-run"),
    path("benchmarks/", views.BenchmarkListView.as_view(), name="api-benchmarks"),
    path(
        "benchmarks/<str:manifest_hash>/files/",
        views.BenchmarkFilesView.as_view(),
        name="api-benchmark-files",
    ),
    path("suites/", views.SuiteListView.as_view(), name="api-suites"),
    path("suites/<slug:suite>/tasks/", views.TaskListView.as_view(), name="api-suite-tasks"),
    path(
        "suites/<slug:suite>/tasks/<slug:slug>/",
        views.TaskDetailView.as_view(),
        name="api-suite-task",
    ),
    path(
        "suites/<slug:suite>/tasks/<slug:slug>/leaderboard/",
        views.LeaderboardView.as_view(),
        name="api-suite-leaderboard",
    ),
    path(
        "suites/<slug:suite>/tasks/<slug:slug>/compare/",
        compare.CompareView.as_view(),
        name="api-suite-compare",
    ),
    path(
        "suites/<slug:suite>/tasks/<slug:slug>/files/",
        views.TaskFilesView.as_view(),
        name="api-suite-task-files",
    ),
    path("tasks/", views.TaskListView.as_view(), name="api-tasks"),
    path("tasks/<slug:slug>/files/", views.TaskFilesView.as_view(), name="api-task-files"),
    path("tasks/<slug:slug>/", views.TaskDetailView.as_view(), name="api-task"),
    path(
        "tasks/<slug:slug>/leaderboard/",
        views.LeaderboardView.as_view(),
        name="api-leaderboard",
    ),
    path("tasks/<slug:slug>/compare/", compare.CompareView.as_view(), name="api-compare"),
    path(
        "tasks/<slug:slug>/training-missingness/",
        TrainingMissingnessView.as_view(),
        name="api-task-training-missingness",
    ),
    path("tasks/<slug:slug>/rescore/", views.TaskRescoreView.as_view(), name="api-task-rescore"),
    path("rescore/", views.RescoreAllView.as_view(), name="api-rescore-all"),
    path("submissions/", views.SubmissionListCreateView.as_view(), name="api-submissions"),
    # The container track's uploads: a body of up to CONTAINER_MAX_UPLOAD_BYTES.
    path(
        "submissions/images/",
        views.SubmissionImageCreateView.as_view(),
        name="api-submission-images",
    ),
    path(
        "submissions/<entry:public_id>/",
        views.SubmissionDetailView.as_view(),
        name="api-submission",
    ),
    path(
        "submissions/<entry:public_id>/evaluations/",
        views.SubmissionEvaluationsView.as_view(),
        name="api-submission-evaluations",
    ),
    path(
        "submissions/<entry:public_id>/report/",
        views.SubmissionReportView.as_view(),
        name="api-submission-report",
    ),
    path(
        "submissions/<entry:public_id>/publish/",
        views.SubmissionPublishView.as_view(),
        name="api-submission-publish",
    ),
    path(
        "submissions/<entry:public_id>/unpublish/",
        views.SubmissionUnpublishView.as_view(),
        name="api-submission-unpublish",
    ),
    path(
        "submissions/<entry:public_id>/hide/",
        views.SubmissionHideView.as_view(),
        name="api-submission-hide",
    ),
    path(
        "submissions/<entry:public_id>/rescore/",
        views.SubmissionRescoreView.as_view(),
        name="api-submission-rescore",
    ),
    path("teams/", teams.TeamListCreateView.as_view(), name="api-teams"),
    path("teams/<slug:slug>/", teams.TeamDetailView.as_view(), name="api-team"),
    path(
        "teams/<slug:slug>/invitations/",
        teams.TeamInvitationsView.as_view(),
        name="api-team-invitations",
    ),
    path(
        "teams/<slug:slug>/invitations/<int:invitation_id>/",
        teams.TeamInvitationWithdrawView.as_view(),
        name="api-team-invitation",
    ),
    path(
        "teams/<slug:slug>/members/<str:username>/",
        teams.TeamMemberView.as_view(),
        name="api-team-member",
    ),
    path("teams/<slug:slug>/leave/", teams.TeamLeaveView.as_view(), name="api-team-leave"),
    path("invitations/", teams.InvitationListView.as_view(), name="api-invitations"),
    path(
        "invitations/<str:token>/accept/",
        teams.InvitationAcceptView.as_view(),
        name="api-invitation-accept",
    ),
    path(
        "invitations/<str:token>/decline/",
        teams.InvitationDeclineView.as_view(),
        name="api-invitation-decline",
    ),
    # The entries' old integer addresses: a redirect for staff, the 404 of a missing entry
    # for anyone else.
    re_path(
        r"^submissions/(?P<pk>[0-9]{1,18})/(?P<rest>.*)$", views.SubmissionLegacyView.as_view()
    ),
]
