"""The leaderboard app: entries, their scoring runs, the boards, the API and the pages."""
