"""Register the fan-out on a work pool: ``sf-etl-fanout/sf-etl-fanout-15min`` (every 15 minutes) starts one
``sf-etl-object/sf-etl-object`` flow run per object, each run by whichever worker of the pool takes it.

Run from the project root against a Prefect server (``make ui``/``make ui-postgres``, or ``PREFECT_API_URL``),
then start a worker on each machine (README "Scale out on a work pool"):

    .venv/bin/prefect work-pool create sf-etl --type process     # or let this script create it
    .venv/bin/python deployments/work_pool.py
    .venv/bin/prefect worker start --pool sf-etl                 # on each machine
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

import anyio  # noqa: E402
from prefect import Flow, deploy  # noqa: E402
from prefect.client.orchestration import get_client  # noqa: E402
from prefect.client.schemas.actions import WorkPoolCreate  # noqa: E402
from prefect.exceptions import ObjectNotFound  # noqa: E402

from flows.sf_etl_fanout_flow import OBJECT_DEPLOYMENT  # noqa: E402
from utils.local_ui import prefect_ui_server  # noqa: E402
from utils.prefect_sync import blocking  # noqa: E402

POOL = "sf-etl"
CRON = "*/15 * * * *"
FANOUT = "sf-etl-fanout-15min"
OBJECT_FLOW, OBJECT_NAME = OBJECT_DEPLOYMENT.split("/")
ENTRYPOINTS = {"fanout": "flows/sf_etl_fanout_flow.py:sf_etl_fanout_flow",
               "object": "flows/sf_etl_object_flow.py:sf_etl_object_flow"}


def ensure_process_pool(name: str) -> bool:
    """Create ``name`` as a ``process`` work pool (``prefect work-pool create NAME --type process``) unless it
    exists; whether it was created."""
    from prefect.workers.process import ProcessWorker

    async def ensure() -> bool:
        async with get_client() as client:
            try:
                await client.read_work_pool(name)
                return False
            except ObjectNotFound:
                await client.create_work_pool(WorkPoolCreate(
                    name=name, type="process", description="sf-prefect-pipeline: one flow run per object",
                    base_job_template=ProcessWorker.get_default_base_job_template()))
                return True

    return anyio.run(ensure)


def register(*, pool: str = POOL, source: str = str(PROJECT_ROOT), cron: str | None = CRON,
             job_variables: dict[str, Any] | None = None) -> list[Any]:
    """Both deployments on ``pool``, their code at ``source`` (this checkout, or a git URL every worker can
    clone); the fan-out on ``cron`` (None: manual runs only), the object flow run only by fan-outs."""
    def load(entrypoint: str) -> Flow:
        return blocking(Flow.from_source(source=source, entrypoint=entrypoint))

    fanout = blocking(load(ENTRYPOINTS["fanout"]).to_deployment(
        name=FANOUT, cron=cron, tags=["sf-etl"], job_variables=job_variables,
        description="one sf-etl-object run per registry object on the pool, then the run's summary"))
    per_object = blocking(load(ENTRYPOINTS["object"]).to_deployment(
        name=OBJECT_NAME, tags=["sf-etl"], job_variables=job_variables,
        description="one object: land, Phase 1, QA (started by sf-etl-fanout)"))
    return list(blocking(deploy(fanout, per_object, work_pool_name=pool, print_next_steps_message=False,
                              ignore_warnings=True)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pool", default=POOL, help=f"the work pool (default {POOL}); created as a process pool "
                                                     "when missing")
    parser.add_argument("--source", default=str(PROJECT_ROOT),
                        help="where workers find the code: this checkout's path (the same on every machine) or a "
                             "git URL (docker and kubernetes pools)")
    parser.add_argument("--job-variables", type=_json_object, default=None,
                        help='the pool\'s job variables, JSON (e.g. \'{"image": "...", "env": {...}}\')')
    parser.add_argument("--no-schedule", action="store_true", help="register the fan-out without its cron")
    args = parser.parse_args(argv)
    with prefect_ui_server() as ui:
        if ui is None:
            sys.exit("deployments need a Prefect server: run `make ui` first (or set PREFECT_API_URL to yours)")
        if ensure_process_pool(args.pool):  # a docker or kubernetes pool is created first, with the CLI
            print(f"work pool {args.pool} created (type process)")
        register(pool=args.pool, source=args.source, cron=None if args.no_schedule else CRON,
                 job_variables=args.job_variables)
    print(f"deployments sf-etl-fanout/{FANOUT} ({'manual' if args.no_schedule else CRON}) and {OBJECT_DEPLOYMENT} "
          f"registered on work pool {args.pool} at {ui}; start a worker on each machine:\n"
          f"    prefect worker start --pool {args.pool}")
    return 0


def _json_object(text: str) -> dict[str, Any]:
    import json

    value = json.loads(text)
    if not isinstance(value, dict):
        msg = "--job-variables must be a JSON object"
        raise argparse.ArgumentTypeError(msg)
    return value


if __name__ == "__main__":
    sys.exit(main())
