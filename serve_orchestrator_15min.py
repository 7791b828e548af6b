"""Serve the sf_etl_orchestrator_flow flow on a 15-minute cron.
Needs a Prefect server (`make ui`, or PREFECT_API_URL): see README "Scheduling"."""

from flows.sf_etl_orchestrator_flow import sf_etl_orchestrator_flow
from utils.local_ui import serve_every

CRON = "*/15 * * * *"

if __name__ == "__main__":
    serve_every(sf_etl_orchestrator_flow, "sf-etl-orchestrator-15min", CRON)
