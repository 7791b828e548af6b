"""Serve the object_parallel_flow flow on a 15-minute cron.
Needs a Prefect server (`make ui`, or PREFECT_API_URL): see README "Scheduling"."""

from flows.object_parallel_flow import object_parallel_flow
from utils.local_ui import serve_every

CRON = "*/15 * * * *"

if __name__ == "__main__":
    serve_every(object_parallel_flow, "sf-parallel-qa-15min", CRON)
