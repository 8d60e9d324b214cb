"""Teams through the API: one's team, creating one, members and roles, invitations.

Members are named by user name only: no response carries anyone's e-mail address but the
one an owner typed to invite someone (shown to the team's owners).
"""

from __future__ import annotations

from typing import Any, cast

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from leaderboard.board.models import Team, TeamInvitation, TeamMembership, TeamRole
from leaderboard.board.selectors.teams import (
    can_see_members,
    invitation_list_for_team,
    invitation_list_for_user,
    team_get,
    team_members,
    team_membership_for,
    team_published_entries,
)
from leaderboard.board.services.teams import (
    NotTeamMember,
    NotTeamOwner,
    invitation_accept,
    invitation_decline,
    invitation_withdraw,
    member_remove,
    member_role_change,
    team_create,
    team_delete,
    team_invite,
    team_leave,
    team_update,
)


class MemberSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = TeamMembership
        fields = ["username", "role", "joined_at"]


class TeamInvitationSerializer(serializers.ModelSerializer):
    """An invitation as the team's owners see it: whom they invited, as they typed it."""

    invited = serializers.CharField(source="invited_as", read_only=True)
    invited_by = serializers.SerializerMethodField()

    class Meta:
        model = TeamInvitation
        fields = ["id", "invited", "invited_by", "created_at", "expires_at"]

    @extend_schema_field(OpenApiTypes.STR)
    def get_invited_by(self, obj: TeamInvitation) -> str | None:
        return obj.invited_by.get_username() if obj.invited_by else None


class MyInvitationSerializer(serializers.ModelSerializer):
    """An invitation as the person invited sees it; ``token`` accepts or declines it."""

    team = serializers.CharField(source="team.name", read_only=True)
    team_slug = serializers.CharField(source="team.slug", read_only=True)
    invited_by = serializers.SerializerMethodField()
    accept_url = serializers.SerializerMethodField()
    decline_url = serializers.SerializerMethodField()

    class Meta:
        model = TeamInvitation
        fields = [
            "token", "team", "team_slug", "invited_by", "created_at", "expires_at",
            "accept_url", "decline_url",
        ]  # fmt: skip

    @extend_schema_field(OpenApiTypes.STR)
    def get_invited_by(self, obj: TeamInvitation) -> str | None:
        return obj.invited_by.get_username() if obj.invited_by else None

    def _url(self, name: str, obj: TeamInvitation) -> str:
        path = reverse(name, args=[obj.token])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    @extend_schema_field(OpenApiTypes.URI)
    def get_accept_url(self, obj: TeamInvitation) -> str:
        return self._url("api-invitation-accept", obj)

    @extend_schema_field(OpenApiTypes.URI)
    def get_decline_url(self, obj: TeamInvitation) -> str:
        return self._url("api-invitation-decline", obj)


class TeamSerializer(serializers.ModelSerializer):
    """A team. ``members`` (user names and roles) and ``my_role`` are given to its members
    and the organizers; ``invitations`` (open ones) to its owners; ``entries`` lists its
    published entries for everyone."""

    members = serializers.SerializerMethodField()
    my_role = serializers.SerializerMethodField()
    invitations = serializers.SerializerMethodField()
    entries = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = Team
        fields = [
            "slug", "name", "description", "created_at", "my_role", "members", "invitations",
            "entries", "url",
        ]  # fmt: skip

    def _viewer(self) -> Any:
        request = self.context.get("request")
        return request.user if request else None

    def _role(self, obj: Team) -> str | None:
        viewer = self._viewer()
        if not getattr(viewer, "is_authenticated", False):
            return None
        return (
            TeamMembership.objects.filter(team=obj, user=viewer)
            .values_list("role", flat=True)
            .first()
        )

    @extend_schema_field(OpenApiTypes.STR)
    def get_my_role(self, obj: Team) -> str | None:
        return self._role(obj)

    @extend_schema_field(MemberSerializer(many=True, allow_null=True))
    def get_members(self, obj: Team) -> list[dict[str, Any]] | None:
        if not can_see_members(team=obj, viewer=self._viewer()):
            return None
        # ``many=True`` builds a ListSerializer, whose data is a list; the stubs type the
        # call as a MemberSerializer, whose data would be a dict.
        return cast(
            "list[dict[str, Any]]", MemberSerializer(team_members(team=obj), many=True).data
        )

    @extend_schema_field(TeamInvitationSerializer(many=True, allow_null=True))
    def get_invitations(self, obj: Team) -> list[dict[str, Any]] | None:
        if self._role(obj) != TeamRole.OWNER:
            return None
        invitations = TeamInvitationSerializer(invitation_list_for_team(team=obj), many=True)
        return cast("list[dict[str, Any]]", invitations.data)  # a ListSerializer: see above

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_entries(self, obj: Team) -> list[dict[str, Any]]:
        return [
            {
                "id": s.public_id,
                "method_name": s.method_name,
                "task": s.task.slug,
                "suite": s.task.suite_slug,
                "published_at": s.published_at,
            }
            for s in team_published_entries(team=obj)[:200]
        ]

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, obj: Team) -> str:
        request = self.context.get("request")
        path = obj.get_absolute_url()
        return request.build_absolute_uri(path) if request else path


class TeamCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    description = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, default=""
    )


class TeamUpdateSerializer(serializers.Serializer):
    description = serializers.CharField(max_length=2000, allow_blank=True)


class InviteSerializer(serializers.Serializer):
    invitee = serializers.CharField(
        max_length=254, help_text="The user name, or the e-mail address, of the person invited."
    )


class RoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=TeamRole.values)


def _team_response(request: Request, team: Team, code: int = status.HTTP_200_OK) -> Response:
    return Response(TeamSerializer(team, context={"request": request}).data, status=code)


def _team_page_url(request: Request) -> str:
    return request.build_absolute_uri(reverse("team"))


class TeamListCreateView(APIView):
    """Your team (GET: a list of at most one), or a new one with you as its owner (POST)."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=TeamSerializer(many=True))
    def get(self, request):
        membership = team_membership_for(user=request.user)
        teams = [membership.team] if membership else []
        ctx = {"request": request}
        return Response({"results": TeamSerializer(teams, many=True, context=ctx).data})

    @extend_schema(request=TeamCreateSerializer, responses={201: TeamSerializer})
    def post(self, request):
        body = TeamCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        team = team_create(creator=request.user, **body.validated_data)
        return _team_response(request, team, status.HTTP_201_CREATED)


class TeamDetailView(APIView):
    """A team (GET, anyone: members are listed for its members only); its description
    (PATCH, owners); deleting a team with no entries (DELETE, owners)."""

    permission_classes = [permissions.IsAuthenticatedOrReadOnly]

    @extend_schema(responses=TeamSerializer)
    def get(self, request, slug: str):
        return _team_response(request, team_get(slug=slug))

    @extend_schema(request=TeamUpdateSerializer, responses=TeamSerializer)
    def patch(self, request, slug: str):
        body = TeamUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        team = team_update(
            actor=request.user,
            team=team_get(slug=slug),
            description=body.validated_data["description"],
        )
        return _team_response(request, team)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, slug: str):
        team_delete(actor=request.user, team=team_get(slug=slug))
        return Response(status=status.HTTP_204_NO_CONTENT)


class TeamInvitationsView(APIView):
    """A team's open invitations (GET) and a new one (POST), for its owners."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=TeamInvitationSerializer(many=True))
    def get(self, request, slug: str):
        team = team_get(slug=slug)
        role = (
            TeamMembership.objects.filter(team=team, user=request.user)
            .values_list("role", flat=True)
            .first()
        )
        if role != TeamRole.OWNER:
            raise NotTeamOwner(f"Only an owner of {team.name} can see its invitations.")
        invitations = invitation_list_for_team(team=team)
        return Response(TeamInvitationSerializer(invitations, many=True).data)

    @extend_schema(request=InviteSerializer, responses={201: TeamInvitationSerializer})
    def post(self, request, slug: str):
        body = InviteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        invitation = team_invite(
            actor=request.user,
            team=team_get(slug=slug),
            invitee=body.validated_data["invitee"],
            team_page_url=_team_page_url(request),
        )
        return Response(TeamInvitationSerializer(invitation).data, status=status.HTTP_201_CREATED)


class TeamInvitationWithdrawView(APIView):
    """Take back an open invitation (owners)."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, slug: str, invitation_id: int):
        invitation_withdraw(
            actor=request.user, team=team_get(slug=slug), invitation_id=invitation_id
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class TeamMemberView(APIView):
    """Change a member's role (PATCH, owners) or remove a member (DELETE, owners; a member
    may remove themselves, which is leaving)."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=RoleSerializer, responses=MemberSerializer)
    def patch(self, request, slug: str, username: str):
        body = RoleSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        membership = member_role_change(
            actor=request.user,
            team=team_get(slug=slug),
            username=username,
            role=body.validated_data["role"],
        )
        return Response(MemberSerializer(membership).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, slug: str, username: str):
        member_remove(actor=request.user, team=team_get(slug=slug), username=username)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TeamLeaveView(APIView):
    """Leave the team (its entries stay the team's)."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def post(self, request, slug: str):
        team = team_get(slug=slug)
        membership = team_membership_for(user=request.user)
        if membership is None or membership.team_id != team.pk:
            raise NotTeamMember(f"You are not a member of {team.name}.")
        team_leave(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationListView(APIView):
    """Your open invitations (by user name, or by your confirmed e-mail address)."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=MyInvitationSerializer(many=True))
    def get(self, request):
        invitations = invitation_list_for_user(user=request.user)
        return Response(
            MyInvitationSerializer(invitations, many=True, context={"request": request}).data
        )


class InvitationAcceptView(APIView):
    """Accept an invitation of yours: you join the team."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=None, responses=TeamSerializer)
    def post(self, request, token: str):
        membership = invitation_accept(user=request.user, token=token)
        return _team_response(request, membership.team)


class InvitationDeclineView(APIView):
    """Decline an invitation of yours."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def post(self, request, token: str):
        invitation_decline(user=request.user, token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)
