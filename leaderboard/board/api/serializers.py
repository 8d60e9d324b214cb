"""Serializers: the API's input checks (400s with the field at fault) and output shapes."""

from __future__ import annotations

from typing import Any, cast

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from benchmark_data.tasks import METRICS
from leaderboard.board.models import DEFAULT_SUITE, Benchmark, Evaluation, Submission, Task, Track
from leaderboard.board.selectors.submissions import benchmark_current, task_list
from leaderboard.board.selectors.worker_hosts import WAITING_FOR_GPU, gpu_worker_available
from leaderboard.board.services.submissions import SubmissionMeta, submission_meta
from scoring.disclosure import MIN_DECIMALS, round_figure, unit_effect


class BenchmarkSerializer(serializers.ModelSerializer):
    tasks = serializers.SerializerMethodField()
    seed = serializers.SerializerMethodField()
    # The serializer's metaclass takes declared fields off the class, so this does not
    # replace ``Field.source``; the stubs see an override of that attribute.
    source = serializers.SerializerMethodField()  # type: ignore[assignment]

    class Meta:
        model = Benchmark
        fields = [
            "name",
            "version",
            "manifest_hash",
            "is_current",
            "created_at",
            "seed",
            "source",
            "tasks",
            "files_url",
        ]

    files_url = serializers.SerializerMethodField()

    @extend_schema_field(OpenApiTypes.URI)
    def get_files_url(self, obj: Benchmark) -> str:
        """The benchmark's public release (``/api/benchmarks/{manifest_hash}/files/``)."""
        from django.urls import reverse

        url = reverse("api-benchmark-files", args=[obj.manifest_hash])
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_tasks(self, obj: Benchmark) -> list[str]:
        return [t.slug for t in obj.tasks.all()]

    @extend_schema_field(OpenApiTypes.INT)
    def get_seed(self, obj: Benchmark) -> Any:
        return obj.manifest.get("seed")

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_source(self, obj: Benchmark) -> Any:
        source = obj.manifest.get("source") or {}
        return {k: v for k, v in source.items() if k in ("kind", "generator", "scale")}


class SuiteSerializer(serializers.Serializer):
    """A suite, from its current benchmark (``suite_benchmarks``)."""

    slug = serializers.CharField(source="suite.slug")
    title = serializers.CharField(source="suite.title")
    description = serializers.SerializerMethodField()
    modalities = serializers.SerializerMethodField()
    scenarios = serializers.SerializerMethodField()
    ablations = serializers.SerializerMethodField()
    tasks = serializers.SerializerMethodField()
    benchmark = serializers.SerializerMethodField()

    def get_description(self, obj: Benchmark) -> str:
        return obj.suite_declaration.description

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_modalities(self, obj: Benchmark) -> list[dict[str, Any]]:
        return [
            {"slug": m.slug, "title": m.title, "required": m.required,
             "withheld_levels": list(m.withheld_levels)}
            for m in obj.suite_declaration.modalities
        ]  # fmt: skip

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_scenarios(self, obj: Benchmark) -> list[str]:
        return list(obj.suite_declaration.scenarios)

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_ablations(self, obj: Benchmark) -> list[dict[str, Any]]:
        """The modality subsets scored as scenarios of their own (the rows of a file's
        ``scenario`` column with those inputs only)."""
        return [
            {"slug": a.slug, "title": a.title, "modalities": list(a.modalities)}
            for a in obj.suite_declaration.ablations
        ]

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_tasks(self, obj: Benchmark) -> list[str]:
        return [t.slug for t in obj.tasks.all()]

    def get_benchmark(self, obj: Benchmark) -> dict[str, str]:
        return {"name": obj.name, "version": obj.version, "manifest_hash": obj.manifest_hash}


class TaskSerializer(serializers.ModelSerializer):
    title = serializers.CharField(read_only=True)
    description = serializers.SerializerMethodField()
    kind = serializers.SerializerMethodField()
    key_columns = serializers.SerializerMethodField()
    label_columns = serializers.SerializerMethodField()
    primary_metric = serializers.CharField(read_only=True)
    greater_is_better = serializers.BooleanField(read_only=True)
    metrics = serializers.SerializerMethodField()
    benchmark = serializers.SerializerMethodField()
    suite = serializers.CharField(source="suite_slug", read_only=True)

    class Meta:
        model = Task
        fields = [
            "slug", "title", "description", "kind", "key_columns", "label_columns",
            "primary_metric", "greater_is_better", "metrics", "n_test_units", "gateway_only",
            "benchmark", "suite",
        ]  # fmt: skip

    def get_description(self, obj: Task) -> str:
        return obj.spec.description

    def get_kind(self, obj: Task) -> str:
        return obj.spec.kind

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_key_columns(self, obj: Task) -> list[str]:
        return list(obj.spec.key_columns)

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_label_columns(self, obj: Task) -> list[str]:
        """Probability columns of a prediction file (``prediction`` for single-output tasks)."""
        spec = obj.spec
        return list(spec.label_slugs) if spec.kind == "multilabel" else ["prediction"]

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_metrics(self, obj: Task) -> dict[str, Any]:
        return {
            m: {"title": METRICS[m].title, "greater_is_better": METRICS[m].greater_is_better}
            for m in obj.spec.metrics
        }

    @extend_schema_field(OpenApiTypes.STR)
    def get_benchmark(self, obj: Task) -> str:
        return f"{obj.benchmark.name} {obj.benchmark.version}"


class ModalitiesField(serializers.ListField):
    """Modality slugs of the suite (MedMod: ``ehr``, ``cxr`` or both): repeated form
    fields, a JSON list, or ``ehr,cxr``. The suite's list is checked when the entry is made."""

    child = serializers.SlugField(max_length=40)

    def get_value(self, dictionary):
        value = super().get_value(dictionary)
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list) and len(value) == 1 and "," in str(value[0]):
            return [v.strip() for v in str(value[0]).split(",") if v.strip()]
        return value

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = [v.strip() for v in data.split(",") if v.strip()]
        return super().to_internal_value(data)


class SubmissionCreateSerializer(serializers.Serializer):
    task = serializers.CharField(
        max_length=40,
        help_text="A task slug of the current benchmark (GET /api/tasks/ lists them).",
    )

    suite = serializers.SlugField(
        max_length=40, default=DEFAULT_SUITE,
        help_text="The suite of the task (GET /api/suites/ lists them); MedMod by default.",
    )  # fmt: skip

    def _check_task(self, attrs: dict[str, Any]) -> None:
        """The task must be one the suite's current benchmark declares (no fixed list:
        suites are data)."""
        suite, task = attrs.get("suite", DEFAULT_SUITE), attrs.get("task")
        known = list(task_list(suite=suite).values_list("slug", flat=True))
        if task not in known:
            shown = ", ".join(known) or f"none: suite {suite!r} has no current benchmark"
            raise serializers.ValidationError(
                {"task": f'"{task}" is not a valid choice: the tasks of suite {suite} are {shown}.'}
            )

    track = serializers.ChoiceField(
        choices=[Track.PREDICTION_FILE, Track.CONTAINER], default=Track.PREDICTION_FILE
    )
    file = serializers.FileField(
        required=False,
        help_text="Prediction-file track: the prediction CSV (optionally gzip-compressed), in "
        "the public format.",
    )
    image = serializers.FileField(
        required=False,
        help_text="Container track: the model image, the output of `docker save` (plain or "
        "gzip/bzip2/xz-compressed tar).",
    )
    method_name = serializers.CharField(max_length=120)
    team_name = serializers.CharField(
        max_length=120,
        required=False,
        allow_blank=True,
        default="",
        help_text="Not needed: an entry is shown under its owner's team (/api/teams/). If "
        "given, it must be that team's name.",
    )
    description = serializers.CharField(
        max_length=5000, required=False, allow_blank=True, default=""
    )
    paper_url = serializers.URLField(max_length=500, required=False, allow_blank=True, default="")
    code_url = serializers.URLField(max_length=500, required=False, allow_blank=True, default="")
    modalities = ModalitiesField(
        min_length=1,
        max_length=20,
        help_text="Inputs the model uses: slugs of the suite's modalities (GET /api/suites/ "
        "lists them; MedMod: ehr, cxr or both).",
    )
    training_data = serializers.CharField(
        min_length=10,
        max_length=5000,
        help_text="Which data trained the model; confirm no test subject was used.",
    )
    threshold = serializers.FloatField(
        required=False, allow_null=True, min_value=0.0, max_value=1.0
    )
    visibility = serializers.ChoiceField(
        choices=[Submission.Visibility.PUBLIC.value, Submission.Visibility.PRIVATE.value],
        default=Submission.Visibility.PUBLIC.value,
    )
    needs_gpu = serializers.BooleanField(
        default=False,
        help_text="Container track: the model needs a GPU. Its runs wait for a worker host "
        "with one (the entry's status says so while none is taking runs).",
    )

    def validate_modalities(self, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise serializers.ValidationError("list each modality once.")
        return value

    def _check_modalities(self, attrs: dict[str, Any]) -> None:
        """Each modality must be one the suite's current benchmark declares."""
        suite = attrs.get("suite", DEFAULT_SUITE)
        current = benchmark_current(suite=suite)
        if current is None:
            return  # the task check has said the suite has no current benchmark
        declared = [m.slug for m in current.suite_declaration.modalities]
        bad = [m for m in attrs.get("modalities", []) if m not in declared]
        if bad:
            raise serializers.ValidationError({"modalities": [
                f'"{m}" is not a valid choice: the inputs of suite {suite} are {", ".join(declared)}.'
                for m in bad
            ]})  # fmt: skip

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        self._check_task(attrs)
        self._check_modalities(attrs)
        # A container entry's image is checked by the service (after the track is known to
        # be open); a prediction-file entry needs its file here.
        if attrs.get("track") != Track.CONTAINER:
            if not attrs.get("file"):
                raise serializers.ValidationError({"file": ["No file was submitted."]})
            if attrs.get("image"):
                raise serializers.ValidationError(
                    {"image": ["an image is for the container track: add track=container."]}
                )
            if attrs.get("needs_gpu"):
                raise serializers.ValidationError({"needs_gpu": [
                    "a GPU is for a model the platform runs (track=container); a prediction "
                    "file needs none: leave needs_gpu out."
                ]})  # fmt: skip
        return attrs

    def meta(self) -> SubmissionMeta:
        return submission_meta(self.validated_data, modalities=self.validated_data["modalities"])


class HideSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class EvaluationSerializer(serializers.ModelSerializer):
    """A scoring run. A container run's record and log tails are in it only for the entry's
    owner and staff (``context["show_run_logs"]``)."""

    triggered_by = serializers.SerializerMethodField()
    primary = serializers.SerializerMethodField()
    is_current = serializers.SerializerMethodField()
    container_run = serializers.SerializerMethodField()
    container_logs = serializers.SerializerMethodField()
    duration_seconds = serializers.SerializerMethodField()

    class Meta:
        model = Evaluation
        fields = [
            "id", "status", "trigger", "note", "triggered_by", "scorer_version", "benchmark_hash",
            "replicates", "threshold", "form", "primary_metric", "primary",
            "is_current", "error_code", "error_message", "attempts", "created_at",
            "started_at", "finished_at", "duration_seconds", "container_run", "container_logs",
        ]  # fmt: skip

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_container_run(self, obj: Evaluation) -> dict[str, Any] | None:
        if not self.context.get("show_run_logs"):
            return None
        return obj.container_run

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_container_logs(self, obj: Evaluation) -> dict[str, str] | None:
        if not self.context.get("show_run_logs"):
            return None
        return obj.container_logs

    @extend_schema_field(OpenApiTypes.FLOAT)
    def get_duration_seconds(self, obj: Evaluation) -> float | None:
        """Seconds, to a tenth: no float reaches a participant beyond its precision."""
        d = obj.duration_seconds
        return None if d is None else round(float(d), 1)

    @extend_schema_field(OpenApiTypes.STR)
    def get_triggered_by(self, obj: Evaluation) -> str | None:
        user = obj.triggered_by  # None without a query when there is no id
        return user.get_username() if user is not None else None

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_primary(self, obj: Evaluation) -> dict[str, Any] | None:
        if obj.status != Evaluation.Status.SUCCEEDED:
            return None
        counts = (obj.summary or {}).get("counts") or {}
        value, ci = round_figure(
            obj.primary_value,
            [obj.primary_ci_low, obj.primary_ci_high],
            effect=unit_effect(obj.primary_metric, counts) if counts else 10.0**-MIN_DECIMALS / 2,
        )
        return {"value": value, "ci": ci}

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_is_current(self, obj: Evaluation) -> bool:
        return obj.pk in self.context.get("current_ids", ())


class SubmissionSerializer(serializers.ModelSerializer):
    # The entry's public id (its addresses: /entries/{id}/, /api/submissions/{id}/); the
    # primary key never leaves the platform.
    id = serializers.CharField(source="public_id", read_only=True)
    task = serializers.CharField(source="task.slug", read_only=True)
    benchmark = serializers.SerializerMethodField()
    track = serializers.CharField(source="track.slug", read_only=True)
    verification = serializers.CharField(read_only=True)
    causal = serializers.BooleanField(read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True)
    team = serializers.CharField(source="team_label", read_only=True)
    modalities = serializers.ListField(child=serializers.CharField(), read_only=True)
    queue_position = serializers.SerializerMethodField()
    waiting_for = serializers.SerializerMethodField()
    pending_evaluation = serializers.SerializerMethodField()
    latest = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = Submission
        fields = [
            "id", "task", "benchmark", "track", "verification", "causal", "owner", "method_name",
            "team",
            "description",
            "paper_url", "code_url", "modalities", "training_data", "threshold", "visibility",
            "is_reference", "original_filename", "sha256", "size", "status", "failure_kind",
            "failure_code", "failure_reason", "queue_position", "needs_gpu", "waiting_for",
            "pending_evaluation",
            "latest", "created_at", "queued_at", "started_at", "scored_at", "published_at",
            "failed_at", "url",
        ]  # fmt: skip

    @extend_schema_field(OpenApiTypes.STR)
    def get_benchmark(self, obj: Submission) -> str:
        return f"{obj.task.benchmark.name} {obj.task.benchmark.version}"

    @extend_schema_field(OpenApiTypes.INT)
    def get_queue_position(self, obj: Submission) -> int | None:
        pending = getattr(obj, "pending_evaluation_id", None)
        return self.context.get("queue_positions", {}).get(pending)

    @extend_schema_field(OpenApiTypes.STR)
    def get_waiting_for(self, obj: Submission) -> str:
        """What the entry waits for beyond its turn in the queue: "waiting for a GPU worker"
        while it needs a GPU and no GPU host takes runs; "" otherwise."""
        if not obj.needs_gpu or obj.status not in (Submission.Status.SUBMITTED,
                                                   Submission.Status.QUEUED):  # fmt: skip
            return ""
        # One look per response, kept in the context: the root serializer's dict (the one
        # the view passed, or its own), typed as a read-only Mapping by the stubs.
        context = cast("dict[str, Any]", self.context)
        if "gpu_worker_available" not in context:
            context["gpu_worker_available"] = gpu_worker_available()
        return "" if context["gpu_worker_available"] else WAITING_FOR_GPU

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_pending_evaluation(self, obj: Submission) -> dict[str, Any] | None:
        pending = getattr(obj, "pending_evaluation_id", None)
        if not pending:
            return None
        return {"id": pending, "status": getattr(obj, "pending_evaluation_status", None)}

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_latest(self, obj: Submission) -> dict[str, Any] | None:
        """The primary metric of the latest successful run, if any."""
        if not getattr(obj, "latest_evaluation_id", None):
            return None
        # No counts here: one decimal at most (scoring.disclosure).
        value, ci = round_figure(
            obj.latest_value,
            [obj.latest_ci_low, obj.latest_ci_high],
            effect=10.0**-MIN_DECIMALS / 2,
        )
        return {
            "evaluation_id": obj.latest_evaluation_id,
            "metric": obj.latest_metric,
            "value": value,
            "ci": ci,
            "scorer_version": obj.latest_scorer_version,
        }

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, obj: Submission) -> str:
        request = self.context.get("request")
        path = obj.get_absolute_url()
        return request.build_absolute_uri(path) if request else path


class RescoreResultSerializer(serializers.Serializer):
    queued = serializers.IntegerField()
    skipped = serializers.IntegerField()
    evaluations = serializers.ListField(child=serializers.IntegerField())


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()
