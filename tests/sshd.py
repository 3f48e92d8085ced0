"""A real OpenSSH server on 127.0.0.1, for the SSH remote's test: Debian's sshd, started by the
test on a free port with keys generated for it, stopped when the test ends."""

from __future__ import annotations

import contextlib
import getpass
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")


@dataclass
class Server:
    host: str
    port: int
    user: str
    key: Path  # the client's private key, which the server accepts


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "specimen-test", "-f", str(path)],
        check=True,
        capture_output=True,
    )


@contextlib.contextmanager
def sshd(folder: Path, home: Path):
    """Run sshd with its own host key and one authorised client key; the host key goes into
    `home`/.ssh/known_hosts, so clients check it as they would any server's."""
    assert SSHD.is_file(), "the SSH remote test needs Debian's openssh-server: apt-get install openssh-server"
    folder.mkdir(parents=True, exist_ok=True)
    host_key, user_key = folder / "host_ed25519", folder / "user_ed25519"
    _keygen(host_key)
    _keygen(user_key)
    authorized = folder / "authorized_keys"
    authorized.write_text(Path(f"{user_key}.pub").read_text())
    authorized.chmod(0o600)
    port = _free_port()
    config = folder / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {host_key}",
                f"PidFile {folder / 'sshd.pid'}",
                f"AuthorizedKeysFile {authorized}",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "UsePAM no",
                "StrictModes no",  # the keys live under the world-writable /tmp
                "Subsystem sftp internal-sftp",
                "",
            ]
        )
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder (no systemd here)
    server = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert server.poll() is None, f"sshd exited: {server.stdout.read()}"
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert time.monotonic() < deadline, "sshd did not listen within 20 s"
            time.sleep(0.1)
        ssh_dir = home / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        key_type, key = Path(f"{host_key}.pub").read_text().split()[:2]
        with open(ssh_dir / "known_hosts", "a") as f:
            f.write(f"[127.0.0.1]:{port} {key_type} {key}\n")
        yield Server("127.0.0.1", port, getpass.getuser(), user_key)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
