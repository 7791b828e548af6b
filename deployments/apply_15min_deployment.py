"""Register the orchestrator as a 15-minute deployment on work queue "default" (Prefect 2 agent style).

Run from the project root against a running server, then start an agent:

    PREFECT_API_URL=http://127.0.0.1:4200/api python deployments/apply_15min_deployment.py
    PREFECT_API_URL=http://127.0.0.1:4200/api prefect agent start -q default
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from prefect.client.schemas.schedules import CronSchedule  # noqa: E402
from prefect.deployments import Deployment  # noqa: E402
from prefect.infrastructure import Process  # noqa: E402

from flows.sf_etl_orchestrator_flow import sf_etl_orchestrator_flow  # noqa: E402
from utils.prefect_sync import blocking  # noqa: E402

NAME = "sf-etl-orchestrator-15min"
CRON = "*/15 * * * *"


def build_deployment(*, work_queue: str = "default", cron: str | None = CRON) -> Deployment:
    os.chdir(PROJECT_ROOT)  # build_from_flow records cwd as the code location and a cwd-relative entrypoint
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return blocking(Deployment.build_from_flow(
            flow=sf_etl_orchestrator_flow,
            name=NAME,
            work_queue_name=work_queue,
            schedules=[CronSchedule(cron=cron, timezone="UTC")] if cron else [],
            entrypoint="flows/sf_etl_orchestrator_flow.py:sf_etl_orchestrator_flow",
            path=str(PROJECT_ROOT),
            # Without a working_dir the agent runs each flow in a fresh temp dir and first copies the whole
            # project (.venv and data/ included) into it; runs then take ~40 s longer, and "./data" outputs and
            # sync state land in that temp dir and are deleted with it.
            infrastructure=Process(working_dir=str(PROJECT_ROOT)),
            skip_upload=True,
        ))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-queue", default="default")
    parser.add_argument("--no-schedule", action="store_true", help="register without the cron (manual runs only)")
    args = parser.parse_args(argv)
    deployment = build_deployment(work_queue=args.work_queue, cron=None if args.no_schedule else CRON)
    deployment_id = blocking(deployment.apply())
    print(f"deployment sf-etl-orchestrator/{NAME} applied (id {deployment_id}); "
          f"start an agent: prefect agent start -q {args.work_queue}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
