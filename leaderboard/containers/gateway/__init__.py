"""The streaming evaluation gateway: a model is asked unit by unit in time order and sees
nothing stored after a unit's prediction time (docs/containers.md, "Streaming evaluation").

Pure Python (numpy, pandas, the Docker SDK for containers); no Django.

>>> PROTOCOL, VERSION
('medmod-stream', 1)
"""

from leaderboard.containers.gateway.channel import Channel, SocketListener
from leaderboard.containers.gateway.driver import drive, write_predictions
from leaderboard.containers.gateway.local import run_stream_subprocess
from leaderboard.containers.gateway.protocol import PROTOCOL, REASONS, VERSION
from leaderboard.containers.gateway.record import StreamRecord
from leaderboard.containers.gateway.reveal import Revealer
from leaderboard.containers.gateway.timeline import Timeline, build_timeline

__all__ = [
    "PROTOCOL",
    "REASONS",
    "VERSION",
    "Channel",
    "Revealer",
    "SocketListener",
    "StreamRecord",
    "Timeline",
    "build_timeline",
    "drive",
    "run_stream_subprocess",
    "write_predictions",
]
