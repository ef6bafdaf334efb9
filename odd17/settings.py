"""Runtime settings (``ODD17_*`` environment variables or a ``.env`` file) and the fund's
configuration (policy numbers of DESIGN.md §2 and §4, kept as editable TOML data)."""

from __future__ import annotations

import datetime as dt
import tomllib
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from rules.eligibility import EligibilityPolicy
from rules.review import ReviewPolicy
from rules.tranches import DEFAULT_PLAN, TranchePlan, TrancheSpec


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ODD17_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///odd17.db"
    fund_config: Path | None = None
    language: Literal["fr", "en"] = "fr"
    actor: str | None = None
    # Times are stored in UTC and shown to people in this zone (an IANA name).
    timezone: str = "Europe/Paris"
    batch_size: int = Field(2000, ge=1)
    # Email (DESIGN.md §8). "eml": the embedded default, .eml files in mail_dir.
    mail_transport: Literal["eml", "smtp"] = "eml"
    mail_dir: Path = Path("outbox")
    mail_from: str = "Fonds ODD 17 <contact@fonds-odd17.example.org>"
    finance_email: str = "finance@fonds-odd17.example.org"
    templates_dir: Path | None = None
    mail_max_attempts: int = Field(8, ge=1)
    mail_backoff_seconds: float = Field(30, ge=0)
    # How long a message may wait for a server that cannot be reached (an MTA's queue
    # lifetime): then it is failed. Unreachable servers do not use up attempts.
    mail_expiry_days: float = Field(5, gt=0, le=365)
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    # `odd17 serve` schedules
    serve_eligibility_minutes: float = Field(5, gt=0)
    serve_review_minutes: float = Field(5, gt=0)
    serve_outbox_seconds: float = Field(60, gt=0)
    serve_nightly_cron: str = "0 2 * * *"

    @field_validator("database_url")
    @classmethod
    def _psycopg_driver(cls, url: str) -> str:
        # psycopg 3 is the driver we ship; a bare postgresql:// URL would ask for psycopg2.
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix):]
        return url


class CallConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=50)
    title: str
    duration_months: int = Field(12, ge=1, le=120)
    opens_on: dt.date | None = None  # default: the day the database is initialised


class FundInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    envelope: Decimal = Field(gt=0, decimal_places=2)
    currency: Literal["EUR"] = "EUR"
    launched_on: dt.date | None = None
    siret: str


class DisbursementConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alert_threshold: Decimal = Field(Decimal("0.10"), ge=0, lt=1)
    # The largest single top-up `odd17 topup` accepts: a typo of a few zeros is refused.
    max_topup: Decimal = Field(Decimal("10000000.00"), gt=0, decimal_places=2)
    tranches: tuple[TrancheSpec, ...] = DEFAULT_PLAN.tranches

    def plan(self) -> TranchePlan:
        return TranchePlan(tranches=self.tranches)


class Classification(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vocabulary: str
    code: str
    title: str


class OpenDataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grant_prefix: str = "360G-odd17"
    funder_name: str = "Fonds ODD 17"
    convention_nature: str = "aide en numéraire"
    classifications: list[Classification] = Field(default_factory=list)


class FundConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fund: FundInfo
    calls: list[CallConfig] = Field(min_length=1)
    objectives: dict[str, str]
    innovations: dict[str, str]
    mondes: dict[str, str]
    eligibility: EligibilityPolicy
    disbursement: DisbursementConfig = Field(default_factory=DisbursementConfig)
    open_data: OpenDataConfig = Field(default_factory=OpenDataConfig)
    review: ReviewPolicy = Field(default_factory=ReviewPolicy)

    @model_validator(mode="after")
    def _plan_is_valid(self) -> FundConfig:
        self.disbursement.plan()  # shares must sum to 1
        return self

    def policy(self) -> EligibilityPolicy:
        """The eligibility thresholds together with the kind -> monde mapping of §2."""
        return self.eligibility.model_copy(update={"mondes": dict(self.mondes)})


class ConfigError(Exception):
    """The fund configuration file cannot be read or does not match its schema."""


def load_fund_config(path: Path | None) -> FundConfig:
    if path is None:
        text = resources.files("odd17").joinpath("data/fund.toml").read_text("utf-8")
        source = "configuration par défaut"
    else:
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: lecture impossible ({exc.strerror})") from exc
        source = str(path)
    try:
        return FundConfig.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: TOML invalide ({exc})") from exc
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        ]
        raise ConfigError(f"{source}: configuration invalide\n" + "\n".join(lines)) from exc


@lru_cache
def get_settings() -> Settings:
    return Settings()


@lru_cache
def get_fund_config() -> FundConfig:
    return load_fund_config(get_settings().fund_config)


def reset_caches() -> None:
    """Forget cached settings (tests and the CLI change the environment between runs)."""
    get_settings.cache_clear()
    get_fund_config.cache_clear()
