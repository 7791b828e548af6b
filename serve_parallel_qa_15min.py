"""Serve the object_parallel_flow flow on a 15-minute cron. Needs a Prefect server: see README "Scheduling"."""

from flows.object_parallel_flow import object_parallel_flow
from utils.prefect_sync import blocking

CRON = "*/15 * * * *"

if __name__ == "__main__":
    blocking(object_parallel_flow.serve(name="sf-parallel-qa-15min", cron=CRON))
