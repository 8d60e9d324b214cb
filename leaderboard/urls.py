"""URLs: the pages, the REST API under /api/, and the admin under /admin/."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("leaderboard.board.api.urls")),
    path("", include("leaderboard.board.web.urls")),
]

handler404 = "leaderboard.board.web.views.not_found"
handler500 = "leaderboard.board.web.views.server_error"
