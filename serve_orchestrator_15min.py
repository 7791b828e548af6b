"""Serve the sf_etl_orchestrator_flow flow on a 15-minute cron. Needs a Prefect server: see README "Scheduling"."""

from flows.sf_etl_orchestrator_flow import sf_etl_orchestrator_flow
from utils.prefect_home import prepare_prefect_database

CRON = "*/15 * * * *"

if __name__ == "__main__":
    prepare_prefect_database()  # without a server: created once, even if several scripts start together
    sf_etl_orchestrator_flow.serve(name="sf-etl-orchestrator-15min", cron=CRON)
