"""Migration 0012: the free-text team names of entries become teams, names equal but for
case are merged, submitters join the team of the name they used last, and the platform's
reference entries keep their label."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [("board", "0011_baseline_jobs")]
AFTER = [("board", "0012_teams")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def old_apps(transactional_db):
    """The database at 0011; brought back to the latest migrations afterwards."""
    apps = _migrate(BEFORE)
    yield apps
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


def _entries(apps):
    """A function making entries at 0011: (owner, team_name, minutes ago, reference)."""
    User = apps.get_model("auth", "User")
    Suite = apps.get_model("board", "Suite")
    Benchmark = apps.get_model("board", "Benchmark")
    Task = apps.get_model("board", "Task")
    Track = apps.get_model("board", "Track")
    Submission = apps.get_model("board", "Submission")
    suite = Suite.objects.create(slug="medmod", title="MedMod")
    bench = Benchmark.objects.create(
        suite=suite, name="b", version="1", manifest_hash="h" * 64, uri="/none", is_current=True
    )
    task = Task.objects.create(benchmark=bench, slug="in-hospital-mortality")
    track, _ = Track.objects.get_or_create(
        slug="prediction-file", defaults={"title": "Prediction file"}
    )
    users: dict[str, object] = {}
    now = timezone.now()

    def make(username: str, team_name: str, minutes_ago: int, reference: bool = False) -> int:
        if username not in users:
            users[username] = User.objects.create(username=username)
        n = Submission.objects.count()
        sub = Submission.objects.create(
            owner=users[username],
            task=task,
            track=track,
            method_name=f"m{n}",
            team_name=team_name,
            modalities=["ehr"],
            uses_ehr=True,
            uses_cxr=False,
            training_data="train split",
            file=f"f{n}.csv",
            sha256=hashlib.sha256(str(n).encode()).hexdigest(),
            size=1,
            is_reference=reference,
        )
        Submission.objects.filter(pk=sub.pk).update(created_at=now - timedelta(minutes=minutes_ago))
        return sub.pk

    return make, users


def test_free_text_team_names_become_teams_merged_by_case(old_apps):
    make, users = _entries(old_apps)
    OldTeam = old_apps.get_model("board", "Team")
    OldMembership = old_apps.get_model("board", "TeamMembership")
    # Fusion Lab: written three ways; bob entered under it most often, ann first.
    a1 = make("ann", "fusion lab", 100)
    b1 = make("bob", "Fusion Lab", 90)
    b2 = make("bob", "FUSION LAB ", 80)
    b3 = make("bob", "Fusion Lab", 70)
    # Ann moved on to another name: she joins it; her old entry stays with Fusion Lab.
    a2 = make("ann", "X-Ray Crew", 60)
    # Cid belonged to a team the organizers set in the admin: he stays in it, while his
    # free-text entry is linked to the team of that name.
    admin_team = OldTeam.objects.create(name="Admin Team")
    make("dan", "", 200)  # no team name: stays alone
    OldMembership.objects.create(team=admin_team, user=users["dan"])
    c1 = make("cid", "x-ray crew", 50)
    OldMembership.objects.create(team=admin_team, user=users["cid"])
    # An admin team named like a free-text one (but for case) takes that name's entries.
    d1 = make("eve", "admin team", 5)
    # Two members with one entry each: the first to enter under the name owns the team.
    make("hal", "Tie Team", 30)
    make("gus", "tie team", 40)
    ref = make("reference", "Platform reference", 300, reference=True)

    apps = _migrate(AFTER)
    Team = apps.get_model("board", "Team")
    Membership = apps.get_model("board", "TeamMembership")
    Submission = apps.get_model("board", "Submission")

    assert sorted(Team.objects.values_list("name", flat=True)) == [
        "Admin Team",
        "Fusion Lab",
        "X-Ray Crew",
        "tie team",  # spelled two ways once each: the first spelling is kept
    ]
    fusion = Team.objects.get(name="Fusion Lab")
    xray = Team.objects.get(name="X-Ray Crew")
    admin = Team.objects.get(name="Admin Team")
    assert (fusion.slug, xray.slug, admin.slug) == ("fusion-lab", "x-ray-crew", "admin-team")

    def team_of(pk):
        return Submission.objects.get(pk=pk).team_id

    assert {team_of(pk) for pk in (a1, b1, b2, b3)} == {fusion.pk}
    assert team_of(a2) == xray.pk and team_of(c1) == xray.pk and team_of(d1) == admin.pk
    # The reference entry keeps its label and no team; the free text is kept as it was.
    reference = Submission.objects.get(pk=ref)
    assert reference.team_id is None and reference.team_name == "Platform reference"
    assert Submission.objects.get(pk=b2).team_name == "FUSION LAB "

    roles = {
        (m.user.username, m.team.name): m.role
        for m in Membership.objects.select_related("user", "team")
    }
    assert roles == {
        ("bob", "Fusion Lab"): "owner",  # the only member; entered under it most often
        ("ann", "X-Ray Crew"): "owner",  # its only member (cid stays in the admin team)
        ("dan", "Admin Team"): "owner",  # the admin team's first member
        ("cid", "Admin Team"): "member",  # kept in the admin's team
        ("eve", "Admin Team"): "member",
        ("gus", "tie team"): "owner",
        ("hal", "tie team"): "member",
    }
    assert fusion.created_by_id == users["bob"].pk


def test_admin_team_names_equal_but_for_case_are_told_apart(old_apps):
    OldTeam = old_apps.get_model("board", "Team")
    OldTeam.objects.create(name="Lab")
    OldTeam.objects.create(name="lab")
    apps = _migrate(AFTER)
    Team = apps.get_model("board", "Team")
    assert sorted(Team.objects.values_list("name", "slug")) == [
        ("Lab", "lab"),
        ("lab (2)", "lab-2"),
    ]
