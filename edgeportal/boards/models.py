"""Screen boards: a page per line or channel showing its latest outputs, large enough to read across a shop floor."""

import secrets

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _

from edgeportal.prompts.output_spec import NAME

MAX_SHOWN = 20  # how_many's largest value: more lines would no longer be readable from meters away


def board_token() -> str:
    """A read-only token for a board's URL: 192 random bits, URL-safe."""
    return secrets.token_urlsafe(24)


def default_output_names() -> list[str]:
    return ["screen"]


def validate_output_names(value: object) -> None:
    """A list of one or more output names, as templates declare them (lower case: "screen", "mes_line")."""
    if not isinstance(value, list) or not value:
        raise ValidationError(_('List the output names it shows, e.g. ["screen"].'))
    for name in value:
        if not isinstance(name, str) or not NAME.match(name):
            raise ValidationError(
                _("%(name)s is no output name: lower-case letters, digits, - and _, starting with a letter.")
                % {"name": repr(name)}
            )


class Board(models.Model):
    slug = models.SlugField(
        max_length=80, unique=True, help_text=_("Its address: /boards/<slug>/."), verbose_name=_("slug")
    )
    name = models.CharField(max_length=100, verbose_name=_("name"))
    output_names = models.JSONField(
        default=default_output_names,
        validators=[validate_output_names],
        help_text=_('The outputs it shows, by their name in the templates, e.g. ["screen"].'),
        verbose_name=_("output names"),
    )
    templates = models.ManyToManyField(
        "prompts.PromptTemplate", blank=True, related_name="boards",
        help_text=_("Only outputs of jobs from these templates; none chosen: from every template."),
        verbose_name=_("templates"),
    )  # fmt: skip
    sources = models.ManyToManyField(
        "sources.Source", blank=True, related_name="boards",
        help_text=_("Only outputs of jobs from these sources; none chosen: from every source."),
        verbose_name=_("sources"),
    )  # fmt: skip
    is_public = models.BooleanField(
        default=False,
        help_text=_("Anyone who can reach the node may open it. Otherwise its URL carries its token."),
        verbose_name=_("is public"),
    )
    token = models.CharField(max_length=64, unique=True, default=board_token, editable=False, verbose_name=_("token"))
    how_many = models.PositiveSmallIntegerField(
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_SHOWN)],
        help_text=_("How many of the latest outputs it shows, 1 to 20."),
        verbose_name=_("how many"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("board")
        verbose_name_plural = _("boards")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(how_many__gte=1, how_many__lte=MAX_SHOWN), name="board_how_many_1_to_20"
            )
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("boards:board", kwargs={"slug": self.slug})

    def screen_url(self) -> str:
        """The URL to open on the screen: with its token unless the board is public."""
        path = self.get_absolute_url()
        return path if self.is_public else f"{path}?{urlencode({'token': self.token})}"
