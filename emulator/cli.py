"""``python -m emulator serve``: start the emulator, print one JSON line with its address, serve until signalled."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence

from emulator.auth import Credentials
from emulator.faults import FaultSpecError, parse_faults
from emulator.generated_objects import DEFAULT_ROWS, with_custom_objects
from emulator.org import DEFAULT_SEED, SCALES, parse_rows, resolve_sizes
from emulator.server import info_line, start_server
from emulator.state import LIVING_ENV, EmulatorConfig, living_rate_of

FAULTS_ENV = "SF_EMULATOR_FAULTS"
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emulator", description="Embedded Salesforce API emulator")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the emulated org over HTTPS until SIGINT/SIGTERM")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    serve.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"data seed (default {DEFAULT_SEED})")
    serve.add_argument("--scale", choices=sorted(SCALES), default="small", help="org size (default small)")
    serve.add_argument("--rows", default="", help="row counts overriding the scale, e.g. Opportunity=1000000")
    serve.add_argument("--custom-objects", type=int, default=0,
                       help=f"also serve N generated custom objects Bench_01__c ... ({DEFAULT_ROWS} rows each; "
                            "--rows Bench_01__c=N sets one's rows)")
    serve.add_argument("--latency-ms", type=int, default=0, help="delay added to every API response")
    serve.add_argument("--faults", default=None, help=f"fault spec (default: ${FAULTS_ENV}); see README")
    serve.add_argument("--daily-limit", type=int, default=15_000,
                       help="DailyApiRequests allowance (default 15000, a Developer Edition's)")
    serve.add_argument("--bulk-delay-ms", type=int, default=300,
                       help="time a Bulk query job or batch takes to complete (default 300)")
    serve.add_argument("--cursor-ttl-s", type=float, default=900.0, help="idle lifetime of REST query cursors")
    serve.add_argument("--invalid-locator-status", type=int, default=400,
                       help="HTTP status of INVALID_QUERY_LOCATOR (unverified upstream; default 400)")
    serve.add_argument("--bulk-reject-limit-order-by", action="store_true",
                       help="reject LIMIT/ORDER BY in Bulk queries, as some 2023-24 doc releases describe")
    serve.add_argument("--jwt-cert", default=None,
                       help="PEM certificate/public key that verifies JWT bearer assertions (or $SF_EMULATOR_JWT_CERT)")
    serve.add_argument("--living-rate", default=None,
                       help=f"how fast the org changes with time (default: ${LIVING_ENV}, else 1; 0: never)")
    serve.add_argument("--query-timeout-rows", type=int, default=None,
                       help="a query (REST, or a Bulk job) matching more rows than this fails with QUERY_TIMEOUT, "
                            "as a query on a big object does on a real org (default: never)")
    serve.add_argument("--exit-with-parent", action="store_true",
                       help="also stop when stdin reaches end-of-file: give it a pipe whose other end the parent "
                            "holds, and the server goes when the parent does, even after kill -9 (run_emulator "
                            "does this)")
    return parser


def config_from_args(args: argparse.Namespace, env: dict[str, str] | None = None) -> EmulatorConfig:
    """Validated options (rows, faults) or ValueError naming the bad option."""
    env = dict(os.environ if env is None else env)
    rows = with_custom_objects(parse_rows(args.rows), args.custom_objects)
    resolve_sizes(args.scale, rows)
    faults = args.faults if args.faults is not None else env.get(FAULTS_ENV) or None
    parse_faults(faults)
    return EmulatorConfig(
        host=args.host, port=args.port, seed=args.seed, scale=args.scale, rows=rows, latency_ms=args.latency_ms,
        faults=faults, daily_limit=args.daily_limit, bulk_delay_ms=args.bulk_delay_ms,
        cursor_ttl_s=args.cursor_ttl_s, invalid_locator_status=args.invalid_locator_status,
        bulk_reject_limit_order_by=args.bulk_reject_limit_order_by,
        credentials=Credentials.from_env(env, jwt_cert=args.jwt_cert),
        living_rate=living_rate_of(args.living_rate, env), query_timeout_rows=args.query_timeout_rows,
    )


def _set_on_stdin_eof(stop: threading.Event) -> None:
    """Set ``stop`` once stdin is at end-of-file: every holder of the pipe's write end, the parent, is gone."""
    try:
        while os.read(sys.stdin.fileno(), 65536):
            pass  # the parent never writes; anything it does send is ignored
    except (OSError, ValueError, AttributeError):
        pass  # no usable stdin counts as no parent
    stop.set()


def serve(config: EmulatorConfig, *, exit_with_parent: bool = False) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if exit_with_parent:
        # a pipe, not prctl(PR_SET_PDEATHSIG): it works on every OS, cannot miss a parent that died before we
        # got here (the read just returns EOF), and does not fire when merely the forking *thread* ends
        threading.Thread(target=_set_on_stdin_eof, args=(stop,), name="parent-watch", daemon=True).start()
    running = start_server(config)
    sys.stdout.write(info_line(running) + "\n")
    sys.stdout.flush()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        running.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except (ValueError, FaultSpecError, OSError) as err:
        print(f"emulator: {err}", file=sys.stderr)
        return 2
    return serve(config, exit_with_parent=args.exit_with_parent)
