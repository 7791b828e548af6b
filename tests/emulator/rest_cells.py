"""REST records as the Bulk CSV cells of the same query, by the pipeline's own rules (tasks/sf_records.py): what
the Bulk client tests compare each Bulk API's rows with."""

from __future__ import annotations

from tasks.sf_records import format_boolean, format_number, lookup_path


def rest_as_bulk_cells(records: list[dict], columns: list[str]) -> list[list[str]]:
    """Dot paths followed, '' for null, lower-case booleans, numbers as Salesforce writes them, Z datetimes."""
    def cell(record: dict, column: str) -> str:
        value = lookup_path(record, column.split("."))
        if value is None:
            return ""
        if isinstance(value, bool):
            return format_boolean(value)
        if isinstance(value, int | float):
            return format_number(value)
        return str(value).replace("+0000", "Z")

    return [[cell(r, c) for c in columns] for r in records]
