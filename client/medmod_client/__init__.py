"""The MedMod leaderboard's participant client: ``medmod`` on the command line.

It talks to the site's REST API (docs/api.md) with the standard library and ``requests``
only; ``medmod validate`` alone loads the platform's scoring engine, when it is installed
(the ``validate`` extra)."""

__version__ = "0.1.0"
