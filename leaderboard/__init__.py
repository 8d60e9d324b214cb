"""The leaderboard platform: a Django project (settings, URLs, Celery app) and its app,
``leaderboard.board`` (models, services, selectors, REST API, web pages, tasks, admin)."""
