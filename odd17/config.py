"""The fund's configuration (policy numbers, README « Configuration », kept as editable TOML
data): its schema, loading and the cached configuration of this process.

Apart from ``odd17.settings`` (the ``ODD17_*`` variables) so that reading the settings, which
every command does, does not import the rule-set models (eligibility, review, tranches) that
only the commands using the policy need."""

from __future__ import annotations

import datetime as dt
import tomllib
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from odd17.settings import ConfigError, get_settings
from rules.eligibility import EligibilityPolicy
from rules.review import ReviewPolicy
from rules.tranches import DEFAULT_PLAN, TranchePlan, TrancheSpec


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
def get_fund_config() -> FundConfig:
    return load_fund_config(get_settings().fund_config)
