"""Serve the sf_csv_polars_json_flow flow on a 15-minute cron.
Needs a Prefect server (`make ui`, or PREFECT_API_URL): see README "Scheduling"."""

from flows.sf_csv_polars_json_flow import sf_csv_polars_json_flow
from utils.local_ui import serve_every

CRON = "*/15 * * * *"

if __name__ == "__main__":
    serve_every(sf_csv_polars_json_flow, "sf-phase1-15min", CRON)
