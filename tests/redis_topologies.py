"""Real Redis topologies on 127.0.0.1 for the tests: a three-master cluster, and a master
with a replica watched by three sentinels. Every process is stopped by its pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

SERVICE = "oauthcc-svc"
"""The sentinels' name for the monitored master."""


def free_port(bus: bool = False) -> int:
    """A free TCP port on 127.0.0.1; with ``bus``, one whose cluster bus port (+10000) is
    free too."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if not bus:
            return port
        if port + 10000 < 65536:
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


def stop(process: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """Stop a server process by its pid: SIGTERM, then SIGKILL after ``grace`` seconds."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(grace)


def wait_for(what: str, check: Callable[[], bool], seconds: float = 15.0) -> None:
    """Poll ``check`` until it is true; ``RuntimeError`` after ``seconds``."""
    import redis

    deadline = time.monotonic() + seconds
    while True:
        try:
            if check():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} within {seconds:g}s")
        time.sleep(0.05)


def _cluster_ok(node: Any) -> bool:
    return bool(node.cluster("info")["cluster_state"] == "ok")


class Topology:
    """Processes started together and stopped together."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.processes: list[subprocess.Popen[bytes]] = []

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen([self.binary, *args], cwd=self.directory,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.processes.append(process)
        return process

    def server(self, port: int, *extra: str) -> subprocess.Popen[bytes]:
        return self.spawn("--port", str(port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--dir", str(self.directory), *extra)

    def stop(self) -> None:
        for process in self.processes:
            stop(process)


class RedisCluster(Topology):
    """Three masters, no replicas, made one cluster by ``redis-cli --cluster create``."""

    def __init__(self, binary: str, cli: str, directory: Path) -> None:
        import redis

        super().__init__(binary, directory)
        self.ports = [free_port(bus=True) for _ in range(3)]
        try:
            for port in self.ports:
                self.server(port, "--cluster-enabled", "yes",
                            "--cluster-config-file", f"nodes-{port}.conf")
            nodes = [redis.Redis(port=port) for port in self.ports]
            for node in nodes:
                wait_for("a cluster node did not start", node.ping)
            subprocess.run(
                [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                 "--cluster-replicas", "0", "--cluster-yes"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30,
            )
            for node in nodes:
                wait_for("the cluster did not reach cluster_state:ok", partial(_cluster_ok, node))
                node.close()
        except BaseException:
            self.stop()
            raise
        self.url = f"redis+cluster://127.0.0.1:{self.ports[0]}"


class RedisSentinels(Topology):
    """A master, one replica of it, and three sentinels (quorum 2) that promote the replica
    within about two seconds of the master's death (``down-after-milliseconds`` 500)."""

    def __init__(self, binary: str, directory: Path) -> None:
        import redis

        super().__init__(binary, directory)
        self.master_port, self.replica_port = free_port(), free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        try:
            # no 5 s wait before the replica's first full sync (diskless sync's default)
            self.master = self.server(self.master_port, "--repl-diskless-sync-delay", "0",
                                      "--shutdown-timeout", "0")
            self.server(self.replica_port, "--replicaof", "127.0.0.1", str(self.master_port))
            replica = redis.Redis(port=self.replica_port)
            wait_for("the replica did not sync",
                     lambda: replica.info("replication")["master_link_status"] == "up")
            replica.close()
            # Each sentinel is told of the replica and of the others up front (the lines
            # a sentinel writes to its own config), instead of discovering them over the
            # following seconds.
            ids = dict(zip(self.sentinel_ports, (f"{n:040x}" for n in (1, 2, 3)), strict=True))
            for port, myid in ids.items():
                config = directory / f"sentinel-{port}.conf"
                lines = [
                    f"port {port}", "bind 127.0.0.1", f"dir {directory}",
                    f"sentinel myid {myid}",
                    f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_port} 2",
                    f"sentinel down-after-milliseconds {SERVICE} 500",
                    f"sentinel failover-timeout {SERVICE} 2000",
                    f"sentinel known-replica {SERVICE} 127.0.0.1 {self.replica_port}",
                    *(f"sentinel known-sentinel {SERVICE} 127.0.0.1 {other} {other_id}"
                      for other, other_id in ids.items() if other != port),
                ]
                config.write_text("\n".join(lines) + "\n")
                self.spawn(str(config), "--sentinel")
            for port in self.sentinel_ports:
                sentinel = redis.Redis(port=port)
                wait_for("a sentinel did not see the master, replica and other sentinels",
                         partial(self._ready, sentinel))
                sentinel.close()
        except BaseException:
            self.stop()
            raise
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        self.url = f"redis+sentinel://{hosts}/{SERVICE}"

    @staticmethod
    def _ready(sentinel: object) -> bool:
        state = sentinel.sentinel_master(SERVICE)  # type: ignore[attr-defined]
        return bool(state["num-slaves"] == 1 and state["num-other-sentinels"] == 2
                    and state["is_master"] and not state["is_sdown"])

    def kill_master(self) -> None:
        """SIGKILL the master: the sentinels must promote the replica."""
        os.kill(self.master.pid, signal.SIGKILL)
        self.master.wait(5)

    def master_address(self) -> tuple[str, int]:
        """Where the sentinels say the master is now."""
        import redis

        sentinel = redis.Redis(port=self.sentinel_ports[0])
        try:
            address: Any = sentinel.sentinel_get_master_addr_by_name(SERVICE)
        finally:
            sentinel.close()
        host, port = address
        return (host.decode() if isinstance(host, bytes) else host), int(port)
