"""Run a command inside a sealed network namespace: only a loopback interface, a private /etc/hosts
that gives test names 127.x addresses, and a resolv.conf that points at 127.0.0.1 (where nothing
answers), so nothing the command does can reach another machine, not even a DNS server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Brings `lo` up with SIOCGIFFLAGS/SIOCSIFFLAGS (no dependency on iproute2).
_LO_UP = (
    "import fcntl, socket, struct; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
    "f = struct.unpack('16sH', fcntl.ioctl(s, 0x8913, struct.pack('16sH', b'lo', 0)))[1]; "
    "fcntl.ioctl(s, 0x8914, struct.pack('16sH', b'lo', f | 1))"
)


def unshare_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    command = ["unshare", "--net", "--mount"] + ([] if os.geteuid() == 0 else ["--map-root-user"]) + ["true"]
    return subprocess.run(command, capture_output=True).returncode == 0


def run_sealed(
    argv: list[str], folder: Path, hosts: dict[str, str], timeout: float = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run `argv` sealed; `hosts`: name -> loopback address (anything else is refused)."""
    if not unshare_available():
        pytest.skip("unshare --net --mount is not permitted here")
    assert all(address.startswith("127.") for address in hosts.values())
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hosts").write_text("127.0.0.1 localhost\n" + "".join(f"{a} {n}\n" for n, a in hosts.items()))
    (folder / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    (folder / "nsswitch.conf").write_text("hosts: files dns\n")
    script = (
        f'mount --bind "{folder}/hosts" /etc/hosts && '
        f'mount --bind "{folder}/resolv.conf" /etc/resolv.conf && '
        f'mount --bind "{folder}/nsswitch.conf" /etc/nsswitch.conf && '
        f'"{sys.executable}" -c "{_LO_UP}" && exec "$@"'
    )
    command = ["unshare", "--net", "--mount"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    command += ["sh", "-c", script, "sealed", *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
