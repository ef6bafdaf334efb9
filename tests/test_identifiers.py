"""One SIREN derivation (rules/identifiers.py) for the conflicts of interest, the application
document and the reviewers' declared interests."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from odd17.services.reviewers import ReviewerIn
from rules.document import Organisation
from rules.identifiers import siren_of
from rules.review import parties
from tests.factories import application, make_siret

SIRET = make_siret(7)


@pytest.mark.parametrize(("given", "siren"), [
    (SIRET, SIRET[:9]),
    (SIRET[:9], SIRET[:9]),
    (f"{SIRET[:3]} {SIRET[3:6]} {SIRET[6:9]} {SIRET[9:]}", SIRET[:9]),
    (f"{SIRET[:3]}.{SIRET[3:6]}.{SIRET[6:9]}", SIRET[:9]),
    (SIRET[:10], None),          # neither a SIREN nor a SIRET
    ("W123456789", None),        # an RNA number
    ("１２３４５６７８９", None),  # digits, but not ASCII ones
    ("", None),
    (None, None),
])
def test_siren_of(given: str | None, siren: str | None) -> None:
    assert siren_of(given) == siren


@pytest.mark.parametrize("written", [SIRET, f"{SIRET[:3]} {SIRET[3:6]} {SIRET[6:9]} {SIRET[9:]}"])
def test_every_place_derives_the_same_siren(written: str) -> None:
    """The document's lead, the conflict parties and a reviewer's declared interest agree."""
    doc = application(lead={**application()["lead"], "siret": written})
    lead = Organisation.model_validate({k: v for k, v in doc["lead"].items() if k != "email"})
    assert lead.siren == SIRET[:9]
    assert SIRET[:9] in {p.siren for p in parties(doc)}
    reviewer = ReviewerIn(name="R", email="r@example.org", interests=[written])
    assert reviewer.interests == [SIRET[:9]]


def test_a_declared_interest_that_is_no_siren_is_refused() -> None:
    with pytest.raises(ValidationError, match="SIREN invalide"):
        ReviewerIn(name="R", email="r@example.org", interests=[SIRET[:10]])
