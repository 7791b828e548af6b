"""The HTML report of a pipeline run (issue #20): one self-contained page per run under ``reports/``.

Call ``write_run_report(run_summary, qa_summary, data_root=...)`` once the run summary is written.
"""

from reporting.write import ReportFiles, prune_reports, write_run_report

__all__ = ["ReportFiles", "prune_reports", "write_run_report"]
