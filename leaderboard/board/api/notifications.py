"""The caller's notification settings: which e-mails about their own entries they get.

Only one's own settings are reachable (``/api/me/notifications/``): no address names
another user."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from leaderboard.board.models import NotificationKind
from leaderboard.board.services.identity import account_for
from leaderboard.board.services.notifications import (
    notification_settings_get,
    notification_settings_update,
)

KINDS = list(NotificationKind.values)


class NotificationSettingsSerializer(serializers.Serializer):
    """One switch per kind of e-mail (all on until turned off), and where mails go:
    ``email`` (null without one) and whether it is confirmed (mails go to a confirmed
    address only)."""

    email = serializers.EmailField(read_only=True, allow_null=True)
    email_confirmed = serializers.BooleanField(read_only=True)
    published = serializers.BooleanField(
        required=False, help_text="an entry of yours is scored (and published on its board)"
    )
    failed = serializers.BooleanField(
        required=False, help_text="an entry of yours fails; the mail says why"
    )
    rank_changed = serializers.BooleanField(
        required=False, help_text="a re-score changes the rank of an entry of yours"
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - set(KINDS))
        if unknown:
            raise serializers.ValidationError(
                f"Unknown or read-only field{'s' if len(unknown) > 1 else ''}: "
                f"{', '.join(unknown)}. Send any of {', '.join(KINDS)} as true or false."
            )
        if not attrs:
            raise serializers.ValidationError(
                f"Nothing to change: send any of {', '.join(KINDS)} as true or false."
            )
        return attrs


def _payload(user: Any) -> dict[str, Any]:
    current = notification_settings_get(user=user)
    account = account_for(user)
    return {
        "email": account.email if account else None,
        "email_confirmed": bool(account and account.is_confirmed),
        **{kind: getattr(current, kind) for kind in KINDS},
    }


class MyNotificationsView(APIView):
    """Your notification settings (GET) and changes to them (PATCH: the switches you send;
    the others stay as they are)."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=NotificationSettingsSerializer)
    def get(self, request: Request) -> Response:
        return Response(_payload(request.user))

    @extend_schema(request=NotificationSettingsSerializer, responses=NotificationSettingsSerializer)
    def patch(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise serializers.ValidationError(
                {"non_field_errors": [f"Send a JSON object with any of {', '.join(KINDS)}."]}
            )
        body = NotificationSettingsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        notification_settings_update(user=request.user, **body.validated_data)
        return Response(_payload(request.user))
