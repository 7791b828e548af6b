"""Serve the sf_etl_orchestrator_flow flow on a 15-minute cron. Needs a Prefect server: see README "Scheduling"."""

from flows.sf_etl_orchestrator_flow import sf_etl_orchestrator_flow
from utils.prefect_sync import blocking

CRON = "*/15 * * * *"

if __name__ == "__main__":
    blocking(sf_etl_orchestrator_flow.serve(name="sf-etl-orchestrator-15min", cron=CRON))
