from django.contrib.auth import views as auth_views
from django.urls import path, re_path

import leaderboard.board.entry_ids  # noqa: F401 (registers the "entry" converter)
from leaderboard.board.web import accounts, compare, notifications, queues, teams, views

urlpatterns = [
    path("", views.home, name="home"),
    path("metrics/", views.metric_help, name="metrics"),
    path("downloads/<str:manifest_hash>/<path:name>", views.download, name="download"),
    path("tasks/<slug:slug>/", views.task_board, name="task-board"),
    path("suites/<slug:suite>/tasks/<slug:slug>/", views.task_board, name="suite-task-board"),
    path("tasks/<slug:slug>/compare/", compare.task_compare, name="task-compare"),
    path(
        "suites/<slug:suite>/tasks/<slug:slug>/compare/",
        compare.task_compare,
        name="suite-task-compare",
    ),
    path("entries/<entry:public_id>/", views.entry, name="entry"),
    path(
        "entries/<entry:public_id>/evaluations/<int:evaluation_id>/",
        views.entry_evaluation,
        name="entry-evaluation",
    ),
    path("entries/<entry:public_id>/publish/", views.entry_publish, name="entry-publish"),
    # The entries' old integer addresses: a redirect for staff, the 404 of a missing entry
    # for anyone else.
    re_path(r"^entries/(?P<pk>[0-9]{1,18})/(?P<rest>.*)$", views.entry_legacy),
    path("submit/", views.submit, name="submit"),
    path("me/submissions/", views.my_submissions, name="my-submissions"),
    path("queue/", queues.queue_page, name="queue"),
    path("me/team/", teams.team_page, name="team"),
    path("teams/<slug:slug>/", teams.team_public, name="team-public"),
    path("accounts/signup/", accounts.signup, name="signup"),
    path("accounts/confirm/resend/", accounts.confirm_email_resend, name="confirm-email-resend"),
    path("accounts/confirm/<str:token>/", accounts.confirm_email, name="confirm-email"),
    path("accounts/login/", accounts.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/token/", views.api_token, name="api-token-page"),
    path("accounts/notifications/", notifications.notification_settings, name="notifications"),
    path(
        "accounts/notifications/unsubscribe/<str:token>/",
        notifications.notification_unsubscribe_page,
        name="notifications-unsubscribe",
    ),
]
