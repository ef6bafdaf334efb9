"""The application form (issue 13), with no web framework: flat fields as an HTML form posts
them (``lead.name``, ``partners[0].siret``, ``cofunding[1].amount``, ``objectives`` repeated)
to the application document and back, and the schema's errors mapped to the form's field
names, in French. Pure functions: no database, no I/O.

Amounts are typed the French way (``70 000,50``, ``70 000,50 €``) or plainly (``70000.50``)
and stored as the document's strings (``"70000.50"``). What cannot be read (an amount, a
number of months) is kept as typed, so a draft loses nothing, and reported on its field."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from babel.numbers import format_decimal
from pydantic import ValidationError

from rules.document import ApplicationDocument, explain
from rules.geography import DEPARTMENTS_COG
from rules.money import CENT, parse_amount

FormData = Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]]

TEXT_FIELDS = ("call", "title", "summary", "start_date")
AMOUNT_FIELDS = ("requested_amount", "total_budget")
MULTI_FIELDS = ("objectives", "innovations")
ORGANISATION = ("name", "kind", "siret", "rna", "email", "contact_name")
GROUPS: dict[str, tuple[str, ...]] = {
    "lead": ORGANISATION,
    "territory": ("department", "region", "commune_insee"),
}
REPEATED: dict[str, tuple[str, ...]] = {
    "partners": ORGANISATION,
    "cofunding": ("funder", "kind", "amount", "siret"),
}
MAX_ROWS = 100  # beyond the schema's 50, so that the schema says « trop d'éléments »
_REPEATED_NAME = re.compile(r"(?P<group>[a-z_]+)\[(?P<index>\d{1,4})\]\.(?P<field>[a-z_]+)")
_PATH_INDEX = re.compile(r"^(?P<group>[a-z_]+)\[(?P<index>\d+)\]")


@dataclass
class FormResult:
    """The document the form describes, the errors found while reading it (by form field
    name) and, per repeated group, the form row each document row came from."""

    document: dict[str, Any]
    errors: dict[str, list[str]] = field(default_factory=dict)
    rows: dict[str, list[int]] = field(default_factory=dict)

    def form_name(self, path: str) -> str:
        """The form field of a document path: rows dropped or renumbered map back."""
        match = _PATH_INDEX.match(path)
        if match and match["group"] in self.rows:
            rows = self.rows[match["group"]]
            index = int(match["index"])
            if index < len(rows):
                return f"{match['group']}[{rows[index]}]{path[match.end():]}"
        return path


def _pairs(data: FormData) -> list[tuple[str, str]]:
    if isinstance(data, Mapping):
        out: list[tuple[str, str]] = []
        for key, value in data.items():
            values = [value] if isinstance(value, str) else list(value)
            out.extend((key, str(v)) for v in values)
        return out
    return [(str(k), str(v)) for k, v in data]


def format_amount(amount: Decimal) -> str:
    """``70 000,50`` (narrow no-break spaces, as French locales print; ``parse_amount`` reads
    it back)."""
    return format_decimal(amount.quantize(CENT), format="#,##0.00", locale="fr_FR")


def _amount(text: str, name: str, errors: dict[str, list[str]]) -> str:
    try:
        return str(parse_amount(text))
    except ValueError as exc:
        errors.setdefault(name, []).append(str(exc))
        return text


def _months(text: str, name: str, errors: dict[str, list[str]]) -> int | str:
    if re.fullmatch(r"\d{1,4}", text):
        return int(text)
    errors.setdefault(name, []).append(f"nombre de mois invalide « {text} » : un nombre entier "
                                       "attendu, par ex. 24")
    return text


def parse_form(data: FormData) -> FormResult:
    """The document a posted form describes. Empty fields are left out (a draft may be
    partial), blank rows of repeated groups dropped, unknown fields ignored."""
    errors: dict[str, list[str]] = {}
    document: dict[str, Any] = {}
    groups: dict[str, dict[str, str]] = {}
    rows: dict[str, dict[int, dict[str, str]]] = {name: {} for name in REPEATED}
    for name, raw in _pairs(data):
        value = raw.strip()
        if name in MULTI_FIELDS:
            if value and value not in document.setdefault(name, []):
                document[name].append(value)
            continue
        if not value:
            continue
        if name in TEXT_FIELDS:
            document[name] = value
        elif name in AMOUNT_FIELDS:
            document[name] = _amount(value, name, errors)
        elif name == "duration_months":
            document[name] = _months(value, name, errors)
        elif "." in name and name.split(".", 1)[0] in GROUPS:
            group, sub = name.split(".", 1)
            if sub in GROUPS[group]:
                groups.setdefault(group, {})[sub] = value
        elif match := _REPEATED_NAME.fullmatch(name):
            group, index, sub = match["group"], int(match["index"]), match["field"]
            if group in REPEATED and sub in REPEATED[group] and index < MAX_ROWS:
                rows[group].setdefault(index, {})[sub] = value
    document.update(groups)
    kept: dict[str, list[int]] = {}
    for group, by_index in rows.items():
        if not by_index:
            continue
        kept[group] = sorted(by_index)
        document[group] = [_row(group, i, by_index[i], errors) for i in kept[group]]
    return FormResult(document=document, errors=errors, rows=kept)


def _row(group: str, index: int, values: dict[str, str],
         errors: dict[str, list[str]]) -> dict[str, Any]:
    row: dict[str, Any] = dict(values)
    if "amount" in row:
        row["amount"] = _amount(row["amount"], f"{group}[{index}].amount", errors)
    return row


def form_errors(result: FormResult, schema_errors: list[dict[str, str]]) -> dict[str, list[str]]:
    """Every message by form field name: the form's own (an unreadable amount) first, then
    the schema's on the fields that have none (not the same mistake said twice)."""
    merged = {name: list(messages) for name, messages in result.errors.items()}
    for error in schema_errors:
        name = result.form_name(error["field"])
        if name in result.errors:
            continue
        merged.setdefault(name, []).append(error["message"])
    return merged


def validate_form(data: FormData) -> tuple[FormResult, dict[str, list[str]]]:
    """Read the form, then validate its document with intake's schema (``pieces`` aside: the
    document's ``documents`` come from the files attached, at submission)."""
    result = parse_form(data)
    try:
        ApplicationDocument.model_validate({**result.document, "documents": []})
    except ValidationError as exc:
        return result, form_errors(result, explain(exc))
    return result, form_errors(result, [])


def document_to_form(document: Mapping[str, Any]) -> dict[str, str | list[str]]:
    """The form's fields filled from a (draft) document: amounts the French way."""
    out: dict[str, str | list[str]] = {}
    for name in TEXT_FIELDS:
        if isinstance(document.get(name), str):
            out[name] = document[name]
    for name in AMOUNT_FIELDS:
        if document.get(name) is not None:
            out[name] = _shown_amount(document[name])
    if document.get("duration_months") is not None:
        out["duration_months"] = str(document["duration_months"])
    for name in MULTI_FIELDS:
        if isinstance(document.get(name), list):
            out[name] = [str(v) for v in document[name]]
    for group, subs in GROUPS.items():
        values = document.get(group)
        if isinstance(values, Mapping):
            out.update({f"{group}.{s}": str(values[s]) for s in subs
                        if values.get(s) is not None})
    for group, subs in REPEATED.items():
        items = document.get(group)
        for i, item in enumerate(items if isinstance(items, list) else []):
            if isinstance(item, Mapping):
                for s in subs:
                    if item.get(s) is not None:
                        value = item[s]
                        out[f"{group}[{i}].{s}"] = (_shown_amount(value) if s == "amount"
                                                    else str(value))
    return out


def _shown_amount(value: Any) -> str:
    try:
        return format_amount(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        return str(value)  # as typed: the form shows it back with its error


def department_choices() -> list[tuple[str, str]]:
    """The official départements (COG 2024) for the form's list: (code, « 78 – Yvelines »)."""
    return [(d.code, f"{d.code} – {d.name}") for d in DEPARTMENTS_COG.values()]
