"""Install a Debian package the pipeline's tooling needs (PostgreSQL for `make ui-postgres`, Chromium for the
report's browser test) when it is missing: root only, `apt-get update` then `apt-get install`, one clear error."""

from __future__ import annotations

import os
import subprocess

INSTALL_TIMEOUT_S = 900  # apt-get update + ~50 MB of packages on a slow mirror


def apt_install(package: str, *, install_options: tuple[str, ...] = ()) -> None:
    """``apt-get install -y <package>`` after an ``apt-get update``; RuntimeError saying what to run when this is
    not root or apt-get fails."""
    if os.geteuid() != 0:
        msg = f"{package} is not installed and this is not root: run `sudo apt-get install -y {package}`"
        raise RuntimeError(msg)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *install_options, package]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
        if done.returncode != 0:
            msg = f"`{' '.join(command)}` failed ({done.returncode}): {(done.stderr or done.stdout)[-2000:]}"
            raise RuntimeError(msg)
