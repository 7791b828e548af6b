"""Serve the sf_csv_polars_json_flow flow on a 15-minute cron. Needs a Prefect server: see README "Scheduling"."""

from flows.sf_csv_polars_json_flow import sf_csv_polars_json_flow
from utils.prefect_sync import blocking

CRON = "*/15 * * * *"

if __name__ == "__main__":
    blocking(sf_csv_polars_json_flow.serve(name="sf-phase1-15min", cron=CRON))
