from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from leaderboard.board.api import views

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("auth/token/", views.TokenView.as_view(), name="api-token"),
    path("limits/", views.LimitsView.as_view(), name="api-limits"),
    path("queue/", views.QueueView.as_view(), name="api-queue"),
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
    path("tasks/<slug:slug>/rescore/", views.TaskRescoreView.as_view(), name="api-task-rescore"),
    path("rescore/", views.RescoreAllView.as_view(), name="api-rescore-all"),
    path("submissions/", views.SubmissionListCreateView.as_view(), name="api-submissions"),
    path("submissions/<int:pk>/", views.SubmissionDetailView.as_view(), name="api-submission"),
    path(
        "submissions/<int:pk>/evaluations/",
        views.SubmissionEvaluationsView.as_view(),
        name="api-submission-evaluations",
    ),
    path(
        "submissions/<int:pk>/report/",
        views.SubmissionReportView.as_view(),
        name="api-submission-report",
    ),
    path(
        "submissions/<int:pk>/publish/",
        views.SubmissionPublishView.as_view(),
        name="api-submission-publish",
    ),
    path(
        "submissions/<int:pk>/unpublish/",
        views.SubmissionUnpublishView.as_view(),
        name="api-submission-unpublish",
    ),
    path(
        "submissions/<int:pk>/hide/", views.SubmissionHideView.as_view(), name="api-submission-hide"
    ),
    path(
        "submissions/<int:pk>/rescore/",
        views.SubmissionRescoreView.as_view(),
        name="api-submission-rescore",
    ),
]
