"""One SIREN derivation (rules/identifiers.py) for the conflicts of interest, the application
document and the reviewers' declared interests."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
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


@given(st.one_of(
    st.text(alphabet="0123456789", min_size=14, max_size=14),
    st.builds(make_siret, st.integers(min_value=0, max_value=10**8)),
    st.builds(lambda d: "356000000" + d, st.text(alphabet="0123456789", min_size=5, max_size=5)),
    st.text(alphabet="0123456789 .-", min_size=0, max_size=20),
    st.text(max_size=16)))
def test_the_fast_siret_check_answers_as_stdnum(value: str) -> None:
    """rules.eligibility._siret_ok's fast path (two Luhn sums on 14 digits) gives the same
    answer as stdnum's siret.is_valid on every input: digits, valid SIRETs, La Poste's, spaced
    forms and any text."""
    from stdnum.fr import siret

    from rules.eligibility import _siret_ok

    assert _siret_ok.__wrapped__(value) is bool(value and siret.is_valid(value))


@given(st.text(alphabet="0123456789", min_size=1, max_size=30))
def test_the_luhn_sum_answers_as_stdnum(digits: str) -> None:
    """rules.eligibility._luhn_ok (the SIRET and SIREN sums) gives stdnum's luhn answer on
    digit strings of every length, odd and even."""
    from stdnum import luhn

    from rules.eligibility import _luhn_ok

    assert _luhn_ok(digits) is luhn.is_valid(digits)
