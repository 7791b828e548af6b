"""The README's Python examples, run as written against the emulator: a README that does not work fails here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks(section: str) -> list[str]:
    """The ```python blocks of one ``## <section>`` of the README, in order."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"README has no '## {section}' section"
    return re.findall(r"^```python\n(.*?)^```", match.group(1), re.MULTILINE | re.DOTALL)


@pytest.mark.slow
def test_the_running_section_custom_soql_example_passes_strict_qa(prefect_harness, org_env, data_root):
    (example,) = python_blocks("Running")
    assert "soql=" in example and "fail_on_qa_error=True" in example  # the example this test is about

    exec(compile(example, "README.md (Running)", "exec"), {"__name__": "readme_example"})  # raises if the run fails

    (run_file,) = (data_root / "runs").glob("*.json")
    summary = json.loads(run_file.read_text(encoding="utf-8"))
    (row,) = summary["objects"]
    assert (row["object"], row["status"], row["mode"]) == ("Opportunity", "ok", "full"), row
    assert row["rows"] > 0 and summary["qa_ok"] and "skipped" not in row["qa"], row
