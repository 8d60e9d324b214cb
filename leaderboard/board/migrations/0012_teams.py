"""Teams that participants run themselves: a slug, a description and its creator; members
with a role (owner or member) and the time they joined; invitations; and each entry's team.

The free-text team names of the participants' entries become teams (names equal but for
case are one team): each entry is linked to its team, and each user who entered under a
name joins the team of the name they used last. The platform's reference entries keep their
"Platform reference" label and no team.
"""

from collections import Counter

import django.db.models.deletion
import django.db.models.functions.text
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import leaderboard.board.models

# As the platform's reference entries are labelled (services/baselines.REFERENCE_TEAM).
REFERENCE_TEAM = "Platform reference"
SLUG_LENGTH = 60
NAME_LENGTH = 120


def _slug(name, taken):
    # As leaderboard.board.models.team_slug_for at the time of this migration.
    from django.utils.text import slugify

    base = slugify(name)[: SLUG_LENGTH - 6].strip("-") or "team"
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    taken.add(slug)
    return slug


def _key(name):
    return " ".join(name.split()).lower()


def link_free_text_teams(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        # Check foreign keys at once, so that the schema changes after this step find no
        # pending trigger events on the tables written here.
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    Team = apps.get_model("board", "Team")
    Membership = apps.get_model("board", "TeamMembership")
    Submission = apps.get_model("board", "Submission")

    # Teams the organizers made in the admin: names unique but for case, a slug each, and
    # their first member (by when they were added) as owner.
    slugs: set[str] = set()
    teams_by_key = {}
    for team in Team.objects.order_by("created_at", "pk"):
        name, n = team.name, 1
        while _key(name) in teams_by_key:
            n += 1
            name = f"{team.name[: NAME_LENGTH - 5]} ({n})"
        team.name = name
        team.slug = _slug(name, slugs)
        team.save(update_fields=["name", "slug"])
        teams_by_key[_key(name)] = team
        first = Membership.objects.filter(team=team).order_by("pk").first()
        if first is not None and not Membership.objects.filter(team=team, role="owner").exists():
            first.role = "owner"
            first.save(update_fields=["role"])

    # The participants' free-text names, oldest entry first.
    entries = (
        Submission.objects.filter(is_reference=False)
        .exclude(team_name="")
        .order_by("created_at", "pk")
        .values_list("pk", "owner_id", "team_name", "created_at")
    )
    spellings: dict[str, Counter] = {}
    entry_ids: dict[str, list[int]] = {}
    submitters: dict[str, Counter] = {}
    first_entry: dict[tuple[str, int], object] = {}
    latest_name: dict[int, str] = {}
    for pk, owner_id, raw, created_at in entries:
        key = _key(raw)
        if not key or key == REFERENCE_TEAM.lower():
            continue
        spellings.setdefault(key, Counter())[" ".join(raw.split())] += 1
        entry_ids.setdefault(key, []).append(pk)
        submitters.setdefault(key, Counter())[owner_id] += 1
        first_entry.setdefault((key, owner_id), created_at)
        latest_name[owner_id] = key  # entries come oldest first: the last one wins

    for key, ids in entry_ids.items():
        team = teams_by_key.get(key)
        if team is None:
            # The spelling used most often (the first seen among equals).
            name = spellings[key].most_common(1)[0][0][:NAME_LENGTH]
            team = Team.objects.create(name=name, slug=_slug(name, slugs))
            teams_by_key[key] = team
        Submission.objects.filter(pk__in=ids).update(team=team)

    # Each submitter joins the team of the name they entered under last (one team per
    # user; a team set in the admin is kept). Their entries under other names stay linked
    # to those names' teams.
    in_a_team = set(Membership.objects.values_list("user_id", flat=True))
    for owner_id, key in latest_name.items():
        if owner_id in in_a_team:
            continue
        Membership.objects.create(
            team=teams_by_key[key],
            user_id=owner_id,
            role="member",
            joined_at=first_entry[(key, owner_id)],
        )
        in_a_team.add(owner_id)

    # The owner of each team: the member who entered under its name most often (the
    # first to do so among equals), when the team has none yet.
    for key, counts in submitters.items():
        team = teams_by_key[key]
        if Membership.objects.filter(team=team, role="owner").exists():
            continue
        members = set(Membership.objects.filter(team=team).values_list("user_id", flat=True))
        ranked = sorted(
            (uid for uid in counts if uid in members),
            key=lambda uid: (-counts[uid], first_entry[(key, uid)]),
        )
        if ranked:
            Membership.objects.filter(team=team, user_id=ranked[0]).update(role="owner")
            if team.created_by_id is None:
                team.created_by_id = ranked[0]
                team.save(update_fields=["created_by"])

    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET CONSTRAINTS ALL DEFERRED")


class Migration(migrations.Migration):
    dependencies = [
        ("board", "0011_baseline_jobs"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="teammembership",
            options={"ordering": ["team", "joined_at", "id"]},
        ),
        migrations.AddField(
            model_name="team",
            name="created_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="team",
            name="description",
            field=models.TextField(blank=True),
        ),
        # Filled below, then made unique and required.
        migrations.AddField(
            model_name="team",
            name="slug",
            field=models.SlugField(db_index=False, max_length=60, null=True),
        ),
        migrations.AddField(
            model_name="teammembership",
            name="joined_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.AddField(
            model_name="teammembership",
            name="role",
            field=models.CharField(
                choices=[("owner", "Owner"), ("member", "Member")], default="member", max_length=8
            ),
        ),
        migrations.AddField(
            model_name="submission",
            name="team",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="submissions",
                to="board.team",
            ),
        ),
        migrations.CreateModel(
            name="TeamInvitation",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("email", models.EmailField(blank=True, max_length=254)),
                (
                    "token",
                    models.CharField(
                        default=leaderboard.board.models.new_invitation_token,
                        max_length=64,
                        unique=True,
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("expires_at", models.DateTimeField()),
                ("accepted_at", models.DateTimeField(blank=True, null=True)),
                ("declined_at", models.DateTimeField(blank=True, null=True)),
                (
                    "accepted_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "invited_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "invited_user",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="team_invitations",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "team",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="invitations",
                        to="board.team",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-id"],
            },
        ),
        migrations.RunPython(link_free_text_teams, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="team",
            name="slug",
            field=models.SlugField(blank=True, max_length=60, unique=True),
        ),
        migrations.AddConstraint(
            model_name="team",
            constraint=models.UniqueConstraint(
                django.db.models.functions.text.Lower("name"), name="team_name_unique_ci"
            ),
        ),
        migrations.AddConstraint(
            model_name="teammembership",
            constraint=models.CheckConstraint(
                condition=models.Q(("role__in", ["owner", "member"])), name="team_role_known"
            ),
        ),
        migrations.AddConstraint(
            model_name="teaminvitation",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("invited_user__isnull", False), ("email", "")),
                    models.Q(
                        ("invited_user__isnull", True),
                        models.Q(("email", ""), _negated=True),
                    ),
                    _connector="OR",
                ),
                name="invitation_names_one_person",
            ),
        ),
        migrations.AddConstraint(
            model_name="teaminvitation",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("accepted_at__isnull", True), ("declined_at__isnull", True), _connector="OR"
                ),
                name="invitation_accepted_or_declined",
            ),
        ),
        migrations.AddConstraint(
            model_name="teaminvitation",
            constraint=models.UniqueConstraint(
                condition=models.Q(
                    ("accepted_at__isnull", True),
                    ("declined_at__isnull", True),
                    ("invited_user__isnull", False),
                ),
                fields=("team", "invited_user"),
                name="one_open_invitation_per_user",
            ),
        ),
        migrations.AddConstraint(
            model_name="teaminvitation",
            constraint=models.UniqueConstraint(
                models.F("team"),
                django.db.models.functions.text.Lower("email"),
                condition=models.Q(
                    ("accepted_at__isnull", True),
                    ("declined_at__isnull", True),
                    models.Q(("email", ""), _negated=True),
                ),
                name="one_open_invitation_per_email",
            ),
        ),
    ]
