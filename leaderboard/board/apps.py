from django.apps import AppConfig


class BoardConfig(AppConfig):
    name = "leaderboard.board"
    label = "board"
    verbose_name = "Leaderboard"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from leaderboard.board import signals

        signals.connect()
