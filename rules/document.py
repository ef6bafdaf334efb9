"""The application document (README, « For the applicant »): its schema and field-level error
messages.

Validation is structural only: a document that passes is stored; whether it deserves funding is
the business of the eligibility rules, which explain themselves. So a SIRET with a bad checksum
or an unknown department is accepted here and made ineligible there, with a reason."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, Literal

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from rules.geography import resolve_region
from rules.identifiers import siren_of


class OrgKind(StrEnum):
    association = "association"
    fondation = "fondation"
    entreprise = "entreprise"
    collectivite = "collectivite"
    etat = "etat"
    academique = "academique"


Objective = Literal["dialogue", "ingenierie", "experimentation"]
Innovation = Literal["solutions", "co_construction", "modele_hybride"]

_MONEY_RE = re.compile(r"^\d{1,12}(\.\d{1,2})?$")
MAX_AMOUNT = Decimal("999999999999.99")  # NUMERIC(14,2)


def parse_money(value: Any) -> Decimal:
    if isinstance(value, bool):  # bool is an int subclass: never an amount
        raise PydanticCustomError("money", "invalid amount")
    if isinstance(value, int | float):
        # str() of a float is its shortest round-trip literal: 0.1 stays 0.1, not 0.1000…0555.
        value = str(value)
    if not isinstance(value, str) or not _MONEY_RE.match(value.strip()):
        raise PydanticCustomError("money", "invalid amount")
    try:
        amount = Decimal(value.strip())
    except InvalidOperation:  # pragma: no cover - the regex already guarantees a literal
        raise PydanticCustomError("money", "invalid amount") from None
    if amount <= 0:
        raise PydanticCustomError("money_positive", "amount must be positive")
    return amount.quantize(Decimal("0.01"))


def _parse_date(value: Any) -> dt.date:
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise PydanticCustomError("iso_date", "expected an ISO date YYYY-MM-DD")


_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_EMAIL_RE = re.compile(
    rf"^{_ATOM}(\.{_ATOM})*@(([A-Za-z0-9]([A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?\.)+[A-Za-z]{{2,63}})$"
)


def _parse_email(value: object) -> str:
    """Plain ASCII addresses (nearly all of them) are checked by one regex, ~1 µs; anything
    else (internationalised, quoted, special-use domains) goes to email-validator, ~30 µs."""
    if not isinstance(value, str):
        raise PydanticCustomError("email", "invalid email address")
    value = value.strip()
    match = _PLAIN_EMAIL_RE.match(value) if value.isascii() and len(value) <= 254 else None
    if match:
        domain = match.group(2).lower()
        if domain.rsplit(".", 1)[-1] not in SPECIAL_USE_DOMAIN_NAMES:
            return value[: match.start(2)] + domain
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError:
        raise PydanticCustomError("email", "invalid email address") from None


def _strip_spaces(value: Any) -> Any:
    return re.sub(r"[\s.]", "", value) if isinstance(value, str) else value


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _no_control_chars(value: str) -> str:
    # NUL and the like have no place in an application and PostgreSQL text refuses NUL.
    if _CONTROL.search(value):
        raise PydanticCustomError("control_char", "control characters are not allowed")
    return value


Text = Annotated[str, AfterValidator(_no_control_chars)]
Money = Annotated[Decimal, BeforeValidator(parse_money)]
IsoDate = Annotated[dt.date, BeforeValidator(_parse_date)]
Email = Annotated[str, BeforeValidator(_parse_email)]
Identifier = Annotated[str, BeforeValidator(_strip_spaces), AfterValidator(_no_control_chars),
                       Field(min_length=1, max_length=20)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class Organisation(_Strict):
    name: Text = Field(min_length=1, max_length=200)
    kind: OrgKind
    siret: Identifier | None = None
    rna: Identifier | None = None
    email: Email | None = None
    contact_name: Text | None = Field(None, max_length=200)

    @field_validator("rna")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else value

    @property
    def siren(self) -> str | None:
        """The SIREN of the SIRET, when it looks like one (used for conflicts)."""
        return siren_of(self.siret)


class Lead(Organisation):
    email: Email  # the lead receives every email about the application


class Territory(_Strict):
    # department before region: the region is checked against (or derived from) it.
    department: Text = Field(min_length=1, max_length=5)
    region: Text | None = Field(None, min_length=1, max_length=100, validate_default=True)
    commune_insee: Text | None = Field(None, pattern=r"^(\d{5}|2[AB]\d{3})$")

    @field_validator("department")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @field_validator("region")
    @classmethod
    def _official_region(cls, value: str | None, info: ValidationInfo) -> str | None:
        department = info.data.get("department")
        if department is None:  # the department itself was refused
            return value
        return resolve_region(value, department)


class Cofunding(_Strict):
    funder: Text = Field(min_length=1, max_length=200)
    kind: OrgKind
    amount: Money
    siret: Identifier | None = None  # optional (an odd17 addition): conflicts of interest


def _unique(values: list[Any]) -> list[Any]:
    if len(set(values)) != len(values):
        raise PydanticCustomError("unique", "values must not repeat")
    return values


class ApplicationDocument(_Strict):
    call: Text | None = Field(None, min_length=1, max_length=50)
    title: Text = Field(min_length=5, max_length=200)
    summary: Text = Field(min_length=1, max_length=4000)
    lead: Lead
    partners: list[Organisation] = Field(default_factory=list, max_length=50)
    objectives: list[Objective] = Field(default_factory=list)
    innovations: list[Innovation] = Field(default_factory=list)
    territory: Territory
    requested_amount: Money
    total_budget: Money
    cofunding: list[Cofunding] = Field(default_factory=list, max_length=50)
    start_date: IsoDate
    duration_months: StrictInt = Field(ge=1, le=240)
    documents: list[Annotated[Text, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=100
    )

    _check_unique = field_validator("objectives", "innovations")(_unique)

    @property
    def primary_objective(self) -> str | None:
        return self.objectives[0] if self.objectives else None

    def lead_identifier(self) -> str:
        """What identifies the lead for duplicate detection: SIRET, else RNA, else email."""
        if self.lead.siret:
            return f"siret:{self.lead.siret}"
        if self.lead.rna:
            return f"rna:{self.lead.rna}"
        return f"email:{self.lead.email.lower()}"

    def dedup_key(self) -> str:
        """Same lead and same title once case and spaces are folded."""
        return f"{self.lead_identifier()}|{' '.join(self.title.casefold().split())}"


# --- field-level messages -------------------------------------------------------------------

_FR: dict[str, str] = {
    "missing": "champ obligatoire manquant",
    "extra_forbidden": "champ inconnu (non prévu par le format du dossier)",
    "string_type": "doit être une chaîne de caractères",
    "string_too_short": "trop court : au moins {min_length} caractère(s)",
    "string_too_long": "trop long : au plus {max_length} caractère(s)",
    "string_pattern_mismatch": "format invalide",
    "literal_error": "valeur non autorisée ; valeurs possibles : {expected}",
    "enum": "valeur non autorisée ; valeurs possibles : {expected}",
    "int_type": "doit être un nombre entier",
    "int_parsing": "doit être un nombre entier",
    "int_from_float": "doit être un nombre entier",
    "greater_than_equal": "doit être supérieur ou égal à {ge}",
    "less_than_equal": "doit être inférieur ou égal à {le}",
    "list_type": "doit être une liste",
    "too_long": "trop d'éléments : au plus {max_length}",
    "model_type": "doit être un objet JSON",
    "model_attributes_type": "doit être un objet JSON",
    "dict_type": "doit être un objet JSON",
    "value_error": "valeur invalide",
    "money": "montant invalide : nombre positif en euros, au plus deux décimales "
    "(ex. « 12000.50 »)",
    "money_positive": "le montant doit être strictement positif",
    "iso_date": "date invalide : format ISO attendu AAAA-MM-JJ (ex. « 2027-03-01 »)",
    "unique": "valeurs répétées",
    "email": "adresse e-mail invalide",
    "control_char": "caractère de contrôle interdit (par exemple NUL)",
}

_EN: dict[str, str] = {
    "money": "invalid amount: a positive number of euros with at most two decimals (e.g. "
    '"12000.50")',
    "money_positive": "amount must be strictly positive",
    "iso_date": "invalid date: expected ISO format YYYY-MM-DD (e.g. \"2027-03-01\")",
    "unique": "values must not repeat",
    "email": "invalid email address",
    "control_char": "control characters (such as NUL) are not allowed",
    "extra_forbidden": "unknown field (not part of the application format)",
}


def field_path(loc: tuple[str | int, ...]) -> str:
    """``("partners", 0, "siret")`` -> ``partners[0].siret``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(document)"


def explain(exc: ValidationError, language: str = "fr") -> list[dict[str, str]]:
    """One ``{field, message}`` per offending field, in French or English."""
    errors: list[dict[str, str]] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        kind = err["type"]
        ctx = dict(err.get("ctx") or {})
        if kind == "value_error" and ctx.get("error"):  # our validators' own (French) words
            message = str(ctx["error"])
        elif language == "fr" and kind in _FR:
            try:
                message = _FR[kind].format(**ctx)
            except (KeyError, IndexError):
                message = _FR[kind]
        else:
            message = _EN.get(kind, err["msg"])
        if kind in {"literal_error", "enum"} and "expected" in ctx and language == "fr":
            message = _FR[kind].format(expected=str(ctx["expected"]).replace(" or ", " ou "))
        errors.append({"field": field_path(loc), "message": message})
    return errors
