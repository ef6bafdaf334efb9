"""Départements and their régions (INSEE COG 2024, packaged as rules/cog_2024_departements.csv).

The region of an application is derived from its department: the stored and reported region is
always the official name, whatever spelling the applicant used."""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True, slots=True)
class Department:
    code: str
    name: str
    region: str  # official name of the region (for 975, the collectivity itself)


def _load() -> dict[str, Department]:
    text = resources.files("rules").joinpath("cog_2024_departements.csv").read_text("utf-8")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return {row["dep"]: Department(row["dep"], row["libelle"], row["libelle_region"])
            for row in csv.DictReader(lines)}


DEPARTMENTS_COG: dict[str, Department] = _load()
REGIONS: tuple[str, ...] = tuple(sorted({d.region for d in DEPARTMENTS_COG.values()}))


def fold(name: str) -> str:
    """Case, accents, hyphens, apostrophes and spacing folded: « ile de france » and
    « Île-de-France » fold alike; a leading « la » is optional (« Réunion »)."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    words = re.sub(r"[^a-z0-9]+", " ", plain).split()
    if words[:1] == ["la"] and len(words) > 1:
        words = words[1:]
    return " ".join(words)


_BY_FOLDED: dict[str, str] = {fold(region): region for region in REGIONS}


def official_region(name: str) -> str | None:
    """The official name of the region ``name`` designates loosely, or None."""
    return _BY_FOLDED.get(fold(name))


def region_of(department: str) -> str | None:
    found = DEPARTMENTS_COG.get(department)
    return found.region if found else None


def resolve_region(given: str | None, department: str) -> str | None:
    """The official region of an application: derived from its department, the region given
    (if any) having to agree with it once loosely matched. Raises ValueError, in French, on a
    contradiction. With a department outside the list (made ineligible by the ``territoire``
    rule) the region given is kept, under its official name when it has one."""
    expected = region_of(department)
    if given is None:
        return expected
    official = official_region(given)
    if expected is None:
        return official or given
    if official != expected:
        department_name = DEPARTMENTS_COG[department].name
        raise ValueError(
            f"la région « {given} » ne correspond pas au département {department} "
            f"({department_name}), situé en {expected} : corrigez l'un des deux, ou omettez la "
            "région (elle est déduite du département)")
    return expected
