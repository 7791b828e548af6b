"""Headless Chromium for browser tests: find Debian's ``chromium`` (installing it once if missing) and load a local
page with networking disabled, recording console errors and every request through the DevTools protocol.

The DevTools protocol runs over ``--remote-debugging-pipe`` (Chromium reads commands on fd 3 and writes replies
on fd 4, each a JSON message ending in NUL), so no port is opened and no Python dependency is added.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from deployments.apt import INSTALL_TIMEOUT_S, apt_install

CHROMIUM_NAMES = ("chromium", "chromium-browser")
INSTALL_LOCK = Path(tempfile.gettempdir()) / "sfpp-chromium-install.lock"
# Nothing may leave the machine: every proxied request goes to a dead port, and no host name resolves.
OFFLINE_FLAGS = ("--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
                 "--host-resolver-rules=MAP * ~NOTFOUND")
HEADLESS_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                  "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--metrics-recording-only", "--mute-audio")


def find_chromium() -> Path | None:
    """The Chromium binary on PATH (Debian names it ``chromium``), or None."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def ensure_chromium() -> Path:
    """Chromium, installed with apt-get if missing; a file lock makes parallel test workers install it once."""
    with FileLock(str(INSTALL_LOCK), timeout=INSTALL_TIMEOUT_S + 60):
        found = find_chromium()
        if found is not None:
            return found
        apt_install("chromium", install_options=("--no-install-recommends",))
    found = find_chromium()
    if found is None:
        msg = "apt-get installed chromium but no chromium binary is on PATH"
        raise RuntimeError(msg)
    return found


@dataclass
class PageLoad:
    """What loading one page showed: the rendered DOM, console errors, and every URL the page requested."""

    dom: str = ""
    probes: dict[str, Any] = field(default_factory=dict)  # name -> value of each JavaScript probe asked for
    console_errors: list[str] = field(default_factory=list)
    requested_urls: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)

    @property
    def external_requests(self) -> list[str]:
        """Requests for anything but the local file itself (or inline ``data:`` content)."""
        return [u for u in self.requested_urls if not u.startswith(("file://", "data:", "about:"))]


class _DevToolsPipe:
    """Send DevTools commands and read events over Chromium's debugging pipe."""

    def __init__(self, to_browser: int, from_browser: int) -> None:
        self._out, self._in = to_browser, from_browser
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None,
             timeout: float = 20.0) -> dict[str, Any]:
        """One command; returns its result (events read meanwhile are kept in ``events``)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        reply = self._read_until(lambda m: m.get("id") == self._next_id, timeout)
        if "error" in reply:
            msg = f"DevTools {method} failed: {reply['error']}"
            raise RuntimeError(msg)
        return reply.get("result", {})

    def wait_event(self, method: str, timeout: float) -> dict[str, Any]:
        seen = next((e for e in self.events if e.get("method") == method), None)
        return seen or self._read_until(lambda m: m.get("method") == method, timeout)

    def drain(self, seconds: float) -> None:
        """Read whatever events arrive for ``seconds`` (late console errors, late requests)."""
        with contextlib.suppress(TimeoutError):
            self._read_until(lambda _m: False, seconds)

    def _read_until(self, wanted: Any, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "method" in message:
                    self.events.append(message)
                if wanted(message):
                    return message
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._in], [], [], remaining)[0]:
                msg = f"no DevTools reply within {timeout:.0f} s"
                raise TimeoutError(msg)
            chunk = os.read(self._in, 1 << 16)
            if not chunk:
                msg = "Chromium closed the DevTools pipe"
                raise RuntimeError(msg)
            self._buffer += chunk


@contextlib.contextmanager
def _chromium_with_pipe(binary: Path, profile_dir: Path) -> Iterator[_DevToolsPipe]:
    """Start headless Chromium offline with its DevTools pipe on fds 3 (commands) and 4 (replies)."""
    cmd_read, cmd_write = os.pipe()
    reply_read, reply_write = os.pipe()

    def _wire_fds() -> None:  # in the child: the pipe ends must sit exactly on fds 3 and 4
        # copy both above 4 first, so placing one cannot overwrite the other
        high_cmd, high_reply = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (cmd_read, reply_write))
        os.dup2(high_cmd, 3)
        os.dup2(high_reply, 4)

    args = [str(binary), *HEADLESS_FLAGS, *OFFLINE_FLAGS, "--remote-debugging-pipe",
            f"--user-data-dir={profile_dir}", "about:blank"]
    # its own session (process group), so the renderer and zygote children end with it
    proc = subprocess.Popen(args, preexec_fn=_wire_fds, pass_fds=(3, 4), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    os.close(cmd_read)
    os.close(reply_write)
    try:
        yield _DevToolsPipe(cmd_write, reply_read)
    finally:
        os.close(cmd_write)  # Chromium exits when its command pipe closes
        os.close(reply_read)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        _signal_group(proc.pid, signal.SIGKILL)  # any child left behind


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _page_load_from(events: list[dict[str, Any]], dom: str) -> PageLoad:
    load = PageLoad(dom=dom)
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            load.requested_urls.append(params["request"]["url"])
        elif method == "Network.loadingFailed":
            load.failed_requests.append(f"{params.get('errorText')} ({params.get('requestId')})")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            load.console_errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            load.console_errors.append(str(params["exceptionDetails"].get("text")))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            load.console_errors.append(f"{params['entry'].get('source')}: {params['entry'].get('text')}")
    return load


def load_page_offline(page: Path, *, probes: Mapping[str, str] | None = None, viewport_width: int = 1000,
                      binary: Path | None = None, settle_s: float = 0.5) -> PageLoad:
    """Open ``page`` (a local file) in headless Chromium, offline, in a ``viewport_width`` px wide window; return
    what it showed, with the value of each JavaScript expression in ``probes`` evaluated once it has loaded."""
    binary = binary or ensure_chromium()
    with tempfile.TemporaryDirectory(prefix="sfpp-chromium-", ignore_cleanup_errors=True) as profile, \
            _chromium_with_pipe(binary, Path(profile)) as devtools:
        target = devtools.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = devtools.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Network", "Runtime", "Log", "Page"):
            devtools.send(f"{domain}.enable", session=session)
        devtools.send("Emulation.setDeviceMetricsOverride", {"width": viewport_width, "height": 900,
                                                             "deviceScaleFactor": 1, "mobile": False}, session=session)
        devtools.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        devtools.wait_event("Page.loadEventFired", timeout=30)
        devtools.drain(settle_s)

        def evaluate(expression: str) -> Any:
            reply = devtools.send("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                                  session=session)
            return reply["result"].get("value")

        dom = evaluate("document.documentElement.outerHTML")
        values = {name: evaluate(expression) for name, expression in (probes or {}).items()}
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            devtools.send("Browser.close", timeout=5)
        load = _page_load_from(devtools.events, dom)
        load.probes = values
        return load
