"""Runtime settings (``ODD17_*`` environment variables or a ``.env`` file). The fund's
configuration (policy numbers) is in odd17/config.py.

Every command reads these settings first, so this module imports neither SQLAlchemy nor the
rule-set models (issue 12, start-up time): the validators import what they check with."""

from __future__ import annotations

import datetime as dt
import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args, get_origin
from urllib.parse import quote_plus
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from odd17.config import (
        CallConfig,
        Classification,
        DisbursementConfig,
        FundConfig,
        FundInfo,
        OpenDataConfig,
        get_fund_config,
        load_fund_config,
    )


class Settings(BaseSettings):
    """Every field is checked when the settings are read: a bad value stops the command with one
    line naming the variable and what it accepts (``settings_error``), never a traceback."""

    # An empty value (``ODD17_SMTP_USER=`` in a .env) means "not set": the default applies.
    model_config = SettingsConfigDict(env_prefix="ODD17_", env_file=".env", extra="ignore",
                                      env_ignore_empty=True)

    database_url: str = "sqlite:///odd17.db"
    fund_config: Path | None = None
    language: Literal["fr", "en"] = "fr"
    actor: str | None = None
    # Times are stored in UTC and shown to people in this zone (an IANA name).
    timezone: str = "Europe/Paris"
    batch_size: int = Field(2000, ge=1)
    # `odd17 submit` on more than one batch: read, validate and judge in a second process
    # while this one stores (odd17.services.intake_worker). Off: all in one process.
    submit_worker: bool = True
    # Email (README, « Emails »). "eml": the embedded default, .eml files in mail_dir.
    mail_transport: Literal["eml", "smtp"] = "eml"
    mail_dir: Path = Path("outbox")
    mail_from: str = "Fonds ODD 17 <contact@fonds-odd17.example.org>"
    finance_email: str = "finance@fonds-odd17.example.org"
    templates_dir: Path | None = None
    mail_max_attempts: int = Field(8, ge=1)
    mail_backoff_seconds: float = Field(30, ge=0, allow_inf_nan=False)
    # How long a message may wait for a server that cannot be reached (an MTA's queue
    # lifetime): then it is failed. Unreachable servers do not use up attempts.
    mail_expiry_days: float = Field(5, gt=0, le=365, allow_inf_nan=False)
    smtp_host: str = "localhost"
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    # `odd17 serve` schedules
    serve_eligibility_minutes: float = Field(5, gt=0, allow_inf_nan=False)
    serve_review_minutes: float = Field(5, gt=0, allow_inf_nan=False)
    serve_outbox_seconds: float = Field(60, gt=0, allow_inf_nan=False)
    serve_nightly_cron: str = "0 2 * * *"
    # The portal (issue 13): links in emails start with public_url; uploaded files are kept
    # under upload_dir (outside any web root), each at most upload_max_bytes.
    public_url: str = "http://127.0.0.1:8017"
    upload_dir: Path = Path("uploads")
    upload_max_bytes: int = Field(10 * 1024 * 1024, ge=1, le=1024 * 1024 * 1024)
    session_lifetime_hours: float = Field(12, gt=0, allow_inf_nan=False)
    # Sign-in links asked for, per address and per client (IP), in a sliding window.
    sign_in_max_per_address: int = Field(5, ge=1)
    sign_in_max_per_client: int = Field(20, ge=1)
    sign_in_window_minutes: float = Field(15, gt=0, allow_inf_nan=False)
    totp_required_for_staff: bool = False
    # Signs the anti-CSRF token of anonymous forms; unset: a random key per process (set it
    # when several processes serve the portal).
    secret_key: str | None = None

    # The messages of the ValueErrors below say what is allowed: settings_error shows them.
    @field_validator("secret_key")
    @classmethod
    def _long_secret(cls, value: str | None) -> str | None:
        if value is not None and (len(value) < 32 or _CONTROL.search(value)):
            raise ValueError("une clé d'au moins 32 caractères, sur une ligne")
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, url: str) -> str:
        from sqlalchemy import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError):
            raise ValueError(DATABASE_URL_ALLOWED) from None
        backend, _, driver = parsed.drivername.partition("+")
        if backend not in ("sqlite", "postgresql", "postgres") or driver not in _DRIVERS[backend]:
            raise ValueError(DATABASE_URL_ALLOWED)
        # psycopg 3 is the driver we ship; a bare postgresql:// URL would ask for psycopg2.
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix):]
        return url

    @field_validator("fund_config")
    @classmethod
    def _existing_file(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError("le chemin d'un fichier TOML existant")
        return path

    @field_validator("templates_dir")
    @classmethod
    def _existing_folder(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_dir():
            raise ValueError("un dossier existant")
        return path

    @field_validator("public_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not _BASE_URL.fullmatch(value):
            raise ValueError("une adresse http:// ou https:// sans paramètres, par exemple "
                             "https://portail.fonds-odd17.example.org")
        return value.rstrip("/")

    @field_validator("mail_dir", "upload_dir")
    @classmethod
    def _folder_or_absent(cls, path: Path) -> Path:
        if path.exists() and not path.is_dir():
            raise ValueError("un dossier (créé s'il n'existe pas), pas un fichier")
        return path

    @field_validator("actor")
    @classmethod
    def _history_name(cls, value: str | None) -> str | None:
        # Stored in the history's actor column, String(200).
        if value is not None and (not value.strip() or len(value) > 200 or _CONTROL.search(value)):
            raise ValueError("un nom d'au plus 200 caractères, sur une ligne")
        return value

    @field_validator("timezone")
    @classmethod
    def _iana_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("un fuseau horaire IANA, par exemple Europe/Paris") from None
        return name

    @field_validator("mail_from", "finance_email")
    @classmethod
    def _address(cls, value: str, info: ValidationInfo) -> str:
        # The defaults pass (tests/test_settings.py): not checked, which spares every command
        # the import of email_validator.
        return value if _is_default(cls, info, value) else check_address(value)

    @field_validator("smtp_host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not value.strip() or any(c.isspace() for c in value) or _CONTROL.search(value):
            raise ValueError("un nom d'hôte ou une adresse IP, sans espace")
        return value

    @field_validator("smtp_user")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and _CONTROL.search(value):
            raise ValueError("un identifiant sur une ligne, sans caractère de contrôle")
        return value

    @field_validator("smtp_password")
    @classmethod
    def _password_with_user(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not info.data.get("smtp_user"):
            raise ValueError("un mot de passe seulement avec ODD17_SMTP_USER")
        if value is not None and _CONTROL.search(value):
            raise ValueError("un mot de passe sur une ligne, sans caractère de contrôle")
        return value

    @field_validator("smtp_ssl")
    @classmethod
    def _ssl_or_starttls(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("smtp_starttls"):
            raise ValueError("false quand ODD17_SMTP_STARTTLS vaut true (SSL ou STARTTLS, "
                             "pas les deux)")
        return value

    @field_validator("serve_nightly_cron")
    @classmethod
    def _cron(cls, value: str, info: ValidationInfo) -> str:
        return value if _is_default(cls, info, value) else check_cron(value)


def check_address(value: str) -> str:
    from email_validator import EmailNotValidError, validate_email

    match = _NAME_ADDRESS.fullmatch(value)
    try:
        if match is None or _CONTROL.search(value):
            raise EmailNotValidError
        validate_email(match["address"] or match["bare"], check_deliverability=False)
    except EmailNotValidError:
        raise ValueError("une adresse e-mail, éventuellement précédée d'un nom : "
                         "Nom <adresse@domaine.fr>") from None
    return value


def check_cron(value: str) -> str:
    from cronsim import CronSim, CronSimError

    expression = _CRON_NICKNAMES.get(value.strip().lower(), value)
    try:
        CronSim(expression, dt.datetime(2000, 1, 1))
    except CronSimError:
        raise ValueError("une expression cron à cinq champs, par exemple « 0 2 * * * », "
                         "ou @daily, @hourly…") from None
    return value


def _is_default(model: type[Settings], info: ValidationInfo, value: object) -> bool:
    """Whether ``value`` is the field's default (checked once by a test, not at every run)."""
    return info.field_name is not None and model.model_fields[info.field_name].default == value


DATABASE_URL_ALLOWED = ("une URL sqlite:///chemin/du/fichier.db ou "
                        "postgresql://utilisateur:mot-de-passe@hôte:port/base")
# Drivers installed with odd17 ("" is the dialect's default: pysqlite; psycopg, rewritten above).
_DRIVERS = {"sqlite": ("", "pysqlite"), "postgresql": ("", "psycopg"), "postgres": ("",)}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BASE_URL = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+(?:/[A-Za-z0-9._~\-/%]*)?")
_NAME_ADDRESS = re.compile(r"\s*(?:[^<>]*<(?P<address>[^<>]+)>|(?P<bare>[^<>\s]+))\s*")
# Prefect's cron parser accepts these too.
_CRON_NICKNAMES = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
                   "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
                   "@hourly": "0 * * * *"}
_SECRET_FIELDS = {"smtp_password", "secret_key"}
_SEE_README = "une valeur décrite dans le README, section Configuration"


def redact_url(url: str) -> str:
    """A database URL fit to show: the password replaced by ***. Use it wherever a URL is
    printed or logged."""
    from sqlalchemy import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "(URL illisible)"  # unparsed, it may hold a password: not shown


def hide_secrets(text: str) -> str:
    """``text`` with the configured passwords (database, SMTP) replaced by ***: for messages
    that quote a driver or a server, which could echo them."""
    from sqlalchemy import make_url
    from sqlalchemy.exc import ArgumentError

    settings = get_settings()
    secrets = [settings.smtp_password]
    try:
        password = make_url(settings.database_url).password
    except (ArgumentError, ValueError):
        password = None
    if password:
        secrets += [str(password), quote_plus(str(password))]
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def settings_error(exc: ValidationError) -> str:
    """One French line for the first invalid setting: the variable, the value (never a
    password) and what is allowed."""
    error = exc.errors()[0]
    name = str(error["loc"][0]) if error["loc"] else ""
    variable = Settings.model_config.get("env_prefix", "") + name.upper()
    value = error.get("input")
    if name in _SECRET_FIELDS or not isinstance(value, str):
        shown = ""
    else:
        if name == "database_url":
            value = redact_url(value)
        shown = f" « {_CONTROL.sub(lambda m: repr(m.group())[1:-1], value)} »"
    return f"{variable} : valeur invalide{shown} (attendu : {_allowed(name, error)})"


def _allowed(name: str, error: ErrorDetails) -> str:
    """What the field accepts: our validator's own words, else what its type and bounds say."""
    if error["type"] == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    field = Settings.model_fields.get(name)
    if field is None:
        return _SEE_README
    kinds = [a for a in (field.annotation, *get_args(field.annotation)) if a is not type(None)]
    if get_origin(kinds[0]) is Literal:
        return " ou ".join(str(choice) for choice in get_args(kinds[0]))
    if bool in kinds:
        return "true ou false"
    noun = "un nombre entier" if int in kinds else "un nombre" if float in kinds else None
    if noun is None:
        return _SEE_README  # a type without its French words yet: pydantic's are English
    bounds = {type(m).__name__: getattr(m, type(m).__name__.lower()) for m in field.metadata
              if type(m).__name__ in ("Ge", "Gt", "Le", "Lt")}
    if "Ge" in bounds and "Le" in bounds:
        return f"{noun} entre {bounds['Ge']} et {bounds['Le']}"
    if bounds.get("Gt") == 0:
        return f"{noun} strictement positif"
    words = {"Ge": "supérieur ou égal à", "Gt": "supérieur à", "Le": "inférieur ou égal à",
             "Lt": "inférieur à"}
    return " ".join([noun, *(f"{words[k]} {v}" for k, v in bounds.items())])


class ConfigError(Exception):
    """The fund configuration file cannot be read or does not match its schema."""


@lru_cache
def get_settings() -> Settings:
    return Settings()


# The fund configuration lives in odd17/config.py; these names stay importable from here,
# loaded on first use.
_CONFIG_NAMES = ("CallConfig", "Classification", "DisbursementConfig", "FundConfig", "FundInfo",
                 "OpenDataConfig", "get_fund_config", "load_fund_config")
__all__ = ["DATABASE_URL_ALLOWED", "CallConfig", "Classification", "ConfigError",
           "DisbursementConfig", "FundConfig", "FundInfo", "OpenDataConfig", "Settings",
           "check_address", "check_cron", "get_fund_config", "get_settings", "hide_secrets",
           "load_fund_config", "redact_url", "reset_caches", "settings_error"]


def __getattr__(name: str) -> object:
    if name in _CONFIG_NAMES:
        from odd17 import config

        return getattr(config, name)
    raise AttributeError(f"module 'odd17.settings' has no attribute {name!r}")


def reset_caches() -> None:
    """Forget cached settings (tests and the CLI change the environment between runs)."""
    get_settings.cache_clear()
    config = sys.modules.get("odd17.config")
    if config is not None:
        config.get_fund_config.cache_clear()
