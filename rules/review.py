"""Committee review policy (README, « Committee review »): conflicts of interest, the scoring
rubric, quorum, assignment order and the funding proposal. Pure functions on plain data."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rules.identifiers import siren_of

DESCRIPTIONS = {
    "pertinence": "Le projet répond-il à un besoin réel du territoire et aux objectifs du fonds ?",
    "alliance": "Solidité de l'alliance : rôle de chaque partenaire, engagements, gouvernance.",
    "impact": "Effets attendus, indicateurs et capacité à les mesurer.",
    "innovation": "Caractère innovant de la démarche ou de la solution.",
    "modele": "Modèle économique : budget, cofinancements, pérennité après le soutien.",
}


class ReviewPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    reviewers_per_application: int = Field(2, ge=1, le=10)
    weights: dict[str, int] = Field(default_factory=lambda: {
        "pertinence": 3, "alliance": 3, "impact": 2, "innovation": 2, "modele": 2})
    min_score: int = 0
    max_score: int = 5
    # what each criterion means, shown on the scoring form (a criterion may have none)
    descriptions: dict[str, str] = Field(default_factory=lambda: dict(DESCRIPTIONS))
    delay_days: int = Field(21, ge=1, le=365)  # a review is due this long after assignment
    anonymous: bool = False                    # hide the lead's identity from reviewers


@dataclass(frozen=True, slots=True)
class Party:
    """Someone taking part in an application, by SIREN."""

    role: str   # porteur | partenaire | cofinanceur
    name: str
    siren: str


@dataclass(frozen=True, slots=True)
class Conflict:
    reason: str


def parties(document: Mapping[str, Any]) -> list[Party]:
    """Lead, partners and cofunders with a SIREN. A cofunder carries one when it gives a
    ``siret``, or when it is also a partner or the lead (matched by name)."""
    found: list[Party] = []
    by_name: dict[str, str] = {}
    members = [("porteur", document["lead"])] + [("partenaire", p)
                                                 for p in document.get("partners", ())]
    for role, org in members:
        siren = siren_of(org.get("siret"))
        if siren:
            found.append(Party(role, org["name"], siren))
            by_name[" ".join(org["name"].casefold().split())] = siren
    for cofunder in document.get("cofunding", ()):
        siren = siren_of(cofunder.get("siret")) or by_name.get(
            " ".join(cofunder["funder"].casefold().split()))
        if siren:
            found.append(Party("cofinanceur", cofunder["funder"], siren))
    return found


def conflicts(reviewer_siren: str | None, interests: Iterable[str],
              application_parties: Sequence[Party]) -> list[Conflict]:
    """Every reason a reviewer is conflicted: their organisation's SIREN, or a declared
    interest, equals the SIREN of the lead, a partner or a cofunder."""
    reasons = []
    declared = {siren_of(i) for i in interests} - {None}
    for party in application_parties:
        if reviewer_siren and party.siren == reviewer_siren:
            reasons.append(Conflict(f"son organisation (SIREN {party.siren}) est {party.role} "
                                    f"du projet ({party.name})"))
        elif party.siren in declared:
            reasons.append(Conflict(f"intérêt déclaré dans {party.name} (SIREN {party.siren}), "
                                    f"{party.role} du projet"))
    return reasons


class ConflictIndex:
    """Who, among many people, is conflicted on an application, without trying each one:
    people are indexed by every SIREN that can conflict them (their organisation's and their
    declared interests), then ``conflicts`` gives the reasons for those found. ``people``:
    (id, SIREN, declared interests); results keep their order."""

    def __init__(self, people: Iterable[tuple[int, str | None, Sequence[str]]]) -> None:
        self._people: dict[int, tuple[int, str | None, Sequence[str]]] = {}
        self._by_siren: dict[str, list[int]] = {}
        for position, (key, siren, interests) in enumerate(people):
            self._people[key] = (position, siren, interests)
            for found in {siren, *(siren_of(i) for i in interests)} - {None}:
                self._by_siren.setdefault(str(found), []).append(key)

    def find(self, application_parties: Sequence[Party]) -> dict[int, str]:
        """Person id -> every reason they are conflicted (joined by « ; »)."""
        suspects = {key for party in application_parties
                    for key in self._by_siren.get(party.siren, ())}
        found = {}
        for key in sorted(suspects, key=lambda k: self._people[k][0]):
            _, siren, interests = self._people[key]
            reasons = conflicts(siren, interests, application_parties)
            if reasons:
                found[key] = "; ".join(r.reason for r in reasons)
        return found


def collect_scores(pairs: Iterable[tuple[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """``criterion=note`` pairs as given -> the scores and what is wrong with them: a
    criterion given twice is refused, never silently replaced by its last note."""
    scores: dict[str, Any] = {}
    repeated: list[str] = []
    for criterion, value in pairs:
        if criterion in scores and criterion not in repeated:
            repeated.append(criterion)
        scores[criterion] = value
    return scores, [f"critère « {c} » noté plusieurs fois (une seule note par critère)"
                    for c in repeated]


def validate_scores(scores: Mapping[str, Any], policy: ReviewPolicy) -> list[str]:
    """What is wrong with a set of scores, in French (empty: valid)."""
    problems = []
    for criterion in policy.weights:
        value = scores.get(criterion)
        if value is None:
            problems.append(f"critère « {criterion} » manquant")
        elif isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{criterion} : note entière attendue, pas « {value} »")
        elif not policy.min_score <= value <= policy.max_score:
            problems.append(f"{criterion} : note {value} hors de l'échelle "
                            f"{policy.min_score}–{policy.max_score}")
    for criterion in scores:
        if criterion not in policy.weights:
            problems.append(f"critère inconnu « {criterion} » (critères : "
                            f"{', '.join(policy.weights)})")
    return problems


def exact_weighted(scores: Mapping[str, int], policy: ReviewPolicy) -> Fraction:
    """Σ w·s / Σ w, exactly (a fraction: 47/12 is not a finite decimal)."""
    total = sum(policy.weights.values())
    return Fraction(sum(policy.weights[c] * scores[c] for c in policy.weights), total)


def rounded(value: Fraction | Decimal, places: int = 3,
            rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """A score rounded once, from its exact value."""
    exact = Fraction(value)
    quotient = Decimal(exact.numerator) / Decimal(exact.denominator)  # 28 digits: plenty
    return quotient.quantize(Decimal(1).scaleb(-places), rounding=rounding)


def weighted(scores: Mapping[str, int], policy: ReviewPolicy) -> Decimal:
    """Σ w·s / Σ w, to three decimals."""
    return rounded(exact_weighted(scores, policy))


def mean(values: Sequence[Fraction]) -> Fraction | None:
    """The exact mean of exact weighted scores: rounding comes after, once, for display."""
    if not values:
        return None
    return sum(values, Fraction(0)) / len(values)


def score_text(value: Fraction | Decimal | None) -> str | None:
    """A score as the --json outputs give it: three decimals, a dot ("3.667")."""
    return None if value is None else str(rounded(value))


def score_fr(value: Fraction | Decimal | None) -> str:
    """A score for people: two decimals, the French decimal comma (« 3,67 »)."""
    if value is None:
        return "—"
    return str(rounded(value, 2, ROUND_HALF_UP)).replace(".", ",")


def has_quorum(present: int, eligible_members: int) -> bool:
    """More than half of the non-recused committee members are present."""
    return eligible_members > 0 and present * 2 > eligible_members


def pick_reviewers(candidates: Sequence[tuple[str, int]], needed: int) -> list[str]:
    """Fewest current assignments first, then by email: deterministic."""
    return [email for _, email in sorted([(load, email) for email, load in candidates])[:needed]]


@dataclass(frozen=True, slots=True)
class Proposal:
    reference: str
    score: Fraction | Decimal  # exact: the ranking never compares rounded scores
    amount: Decimal
    funded: bool


def propose(ranked: Sequence[tuple[str, Fraction | Decimal, Decimal]],
            available: Decimal) -> list[Proposal]:
    """Best score first, each fully funded while the remaining envelope allows; from the first
    one that does not fit, the rest are not proposed (the ranking is not reordered)."""
    proposals, left, open_ = [], available, True
    for reference, score, amount in sorted(ranked, key=lambda r: (-r[1], r[0])):
        fits = open_ and amount <= left
        if fits:
            left -= amount
        else:
            open_ = False
        proposals.append(Proposal(reference, score, amount, fits))
    return proposals
