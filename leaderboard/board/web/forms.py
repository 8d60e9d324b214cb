"""Forms of the web pages. The browser checks what it can (required fields, lengths, the
file's size and type, one modality at least); the same rules run again here."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm

from benchmark_data.suite import Suite as SuiteSpec
from leaderboard.board.labels import RESERVED_WORD_MESSAGE, reserved_phrase_in
from leaderboard.board.models import DEFAULT_SUITE, Submission, Track
from leaderboard.board.selectors.submissions import task_list
from leaderboard.board.services.identity import email_is_taken
from leaderboard.board.services.logins import (
    LoginLocked,
    check_login_allowed,
    client_address,
    login_failed,
    login_succeeded,
)
from leaderboard.board.services.submissions import SubmissionMeta, submission_meta

# Short labels of the modality boxes (the suite's title otherwise).
MODALITY_LABELS = {"ehr": "ICU time series (EHR)", "cxr": "Chest X-rays (CXR)"}


class SubmissionForm(forms.Form):
    """An entry for a task of one suite's current benchmark; one box per modality the suite
    declares (``uses_{slug}``)."""

    suite = forms.SlugField(widget=forms.HiddenInput, required=False)
    task = forms.ChoiceField(help_text="The task these predictions are for.")
    track = forms.ChoiceField(initial=Track.PREDICTION_FILE)
    file = forms.FileField(
        label="Prediction file",
        required=False,
        help_text="CSV, optionally gzip-compressed (.csv.gz), in the public format: key "
        "columns and one probability column per label.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.gz,.csv.gz,text/csv"}),
    )
    image = forms.FileField(
        label="Model image",
        required=False,
        help_text="Container track: the output of `docker save -o my-model.tar my-model` "
        "(gzip, bzip2 or xz compression accepted). The platform runs it with no network once "
        "per missing-modality scenario and scores what it writes to /output/predictions.csv.",
        widget=forms.ClearableFileInput(attrs={"accept": ".tar,.tgz,.gz,.bz2,.xz"}),
    )
    needs_gpu = forms.BooleanField(
        required=False,
        label="The model needs a GPU",
        help_text="Container track: its runs wait for a worker host with a GPU.",
    )
    method_name = forms.CharField(max_length=120, label="Method name")
    description = forms.CharField(
        required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 3})
    )
    paper_url = forms.URLField(
        required=False, max_length=500, label="Paper link", assume_scheme="https"
    )
    code_url = forms.URLField(
        required=False, max_length=500, label="Code link", assume_scheme="https"
    )
    training_data = forms.CharField(
        min_length=10,
        max_length=5000,
        label="Training data statement",
        help_text="Which data trained the model (e.g. the benchmark's train and validation "
        "splits); confirm that no test subject was used.",
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    threshold = forms.FloatField(
        required=False,
        min_value=0.0,
        max_value=1.0,
        label="Decision threshold",
        help_text="For threshold metrics (F1, precision, recall, fairness ratios); the task's (0.5 for MedMod) if empty.",
        widget=forms.NumberInput(attrs={"step": "any", "min": "0", "max": "1"}),
    )
    visibility = forms.ChoiceField(
        choices=[
            (
                Submission.Visibility.PUBLIC.value,
                "Public: published on the leaderboard once scored",
            ),
            (Submission.Visibility.PRIVATE.value, "Private: only I see the result"),
        ],
        initial=Submission.Visibility.PUBLIC.value,
        widget=forms.RadioSelect,
    )

    def __init__(self, *args: Any, suite: SuiteSpec, **kwargs: Any) -> None:
        """``suite``: the suite's declaration. Kept as ``suite_spec``: ``suite`` names the
        form's hidden field."""
        super().__init__(*args, **kwargs)
        self.suite_spec = suite
        self.fields["suite"].initial = suite.slug
        self._choices("task").choices = [(t.slug, t.title) for t in task_list(suite=suite.slug)]
        boxes = {
            f"uses_{m.slug}": forms.BooleanField(required=False, label=MODALITY_LABELS.get(m.slug, m.title))
            for m in suite.modalities
        }  # fmt: skip
        # The boxes come after the links, before the training data statement.
        fields = list(self.fields.items())
        at = [name for name, _ in fields].index("training_data")
        self.fields = dict([*fields[:at], *boxes.items(), *fields[at:]])
        self.modality_fields = list(boxes)
        self._choices("track").choices = [
            (t.slug, t.title if t.is_open else f"{t.title} (not open yet)")
            for t in Track.objects.all()
        ]
        self.fields["file"].widget.attrs["data-max-bytes"] = str(settings.MAX_UPLOAD_BYTES)
        self.fields["image"].widget.attrs["data-max-bytes"] = str(
            settings.CONTAINER_MAX_UPLOAD_BYTES
        )

    def _choices(self, name: str) -> forms.ChoiceField:
        """A field the class declares as a ChoiceField (``fields`` holds copies of them)."""
        field = self.fields[name]
        assert isinstance(field, forms.ChoiceField)
        return field

    def clean(self) -> dict[str, Any]:
        data = super().clean() or self.cleaned_data
        if not any(data.get(name) for name in self.modality_fields):
            names = [str(self.fields[n].label) for n in self.modality_fields]
            self.add_error(
                None,
                "Tick the inputs your model uses: EHR, CXR or both."
                if self.suite_spec.slug == DEFAULT_SUITE
                else f"Tick the inputs your model uses (one at least): {', '.join(names)}.",
            )
        if data.get("track") == Track.CONTAINER:
            if not data.get("image") and "image" not in self.errors:
                self.add_error("image", "Choose the model image (the output of docker save).")
            data["file"] = None
        else:
            if not data.get("file") and "file" not in self.errors:
                self.add_error("file", "This field is required.")
            data["image"] = None
            data["needs_gpu"] = False  # a prediction file is not run
        return data

    def meta(self) -> SubmissionMeta:
        d = self.cleaned_data
        return submission_meta(
            d, modalities=[m.slug for m in self.suite_spec.modalities if d.get(f"uses_{m.slug}")]
        )


class SignupForm(UserCreationForm):
    email = forms.EmailField(
        required=True,
        help_text="We send a link to confirm it: you can submit once it is confirmed. One "
        "address, one account.",
    )

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "email")

    def clean_username(self) -> str:
        username = super().clean_username()
        phrase = reserved_phrase_in(username, is_name=True)
        if phrase is not None:
            raise forms.ValidationError(
                RESERVED_WORD_MESSAGE.format(label="user name", phrase=phrase),
                code="reserved_word",
            )
        return username

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip()
        if email_is_taken(email=email):
            raise forms.ValidationError(
                f"An account with the address {email} exists already (addresses are compared "
                "without regard to case); log in to it instead.",
                code="email_taken",
            )
        return email


class LockoutAuthenticationForm(AuthenticationForm):
    """The login form, refused while the user name or the client's address is locked out
    after repeated wrong passwords (:mod:`leaderboard.board.services.logins`)."""

    locked: LoginLocked | None = None

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        client = client_address(self.request)
        try:
            check_login_allowed(username=username, client=client)
        except LoginLocked as exc:
            self.locked = exc
            raise forms.ValidationError(exc.message, code="locked") from exc
        try:
            data = super().clean()
        except forms.ValidationError:
            if self.cleaned_data.get("password"):
                login_failed(username=username, client=client)
                try:
                    check_login_allowed(username=username, client=client)
                except LoginLocked as exc:
                    self.locked = exc
                    raise forms.ValidationError(exc.message, code="locked") from exc
            raise
        if self.get_user() is not None:
            login_succeeded(username=username, client=client)
        return data
