"""A local Redis Cluster of valkey-server processes (masters only), for tests and experiments."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from devstack.servers import RedisServer, StartStop, free_port

SLOTS = 16384
FORM_TIMEOUT_SECONDS = 20.0


def slot_ranges(masters: int) -> list[tuple[int, int]]:
    """Contiguous, inclusive slot ranges covering 0..16383, one per master."""
    step, extra = divmod(SLOTS, masters)
    ranges, start = [], 0
    for i in range(masters):
        end = start + step + (1 if i < extra else 0) - 1
        ranges.append((start, end))
        start = end + 1
    return ranges


class RedisClusterServers(StartStop):
    """N valkey-server masters on free loopback ports, formed into one cluster.

    Each node gets its own directory under `base_dir`, an explicit cluster bus port (so the
    default port + 10000 can neither collide nor overflow) and no persistence.
    """

    def __init__(self, base_dir: Path, masters: int = 3) -> None:
        if masters < 1:
            raise ValueError("a cluster needs at least one master")
        self.base_dir = Path(base_dir).resolve()
        self.nodes: list[RedisServer] = []
        self.bus_ports: list[int] = []
        ports = _distinct_free_ports(2 * masters)
        for i in range(masters):
            node_dir = self.base_dir / f"node-{i}"
            port, bus_port = ports[2 * i], ports[2 * i + 1]
            self.bus_ports.append(bus_port)
            cluster_args = [
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(node_dir / "nodes.conf"),
                "--cluster-node-timeout", "2000",
                "--cluster-port", str(bus_port),
            ]  # fmt: skip
            self.nodes.append(
                RedisServer(node_dir, port=port, appendonly=False, extra_args=cluster_args)
            )

    @property
    def ports(self) -> list[int]:
        """Client ports of the nodes."""
        return [node.port for node in self.nodes]

    @property
    def url(self) -> str:
        """redis:// URL of the first node (a cluster client discovers the others)."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def node_clients(self) -> list[redis.Redis]:
        """A plain (non-cluster) client per node; the caller closes them."""
        return [redis.Redis.from_url(node.url, socket_timeout=5) for node in self.nodes]

    def start(self) -> RedisClusterServers:
        """Start every node, assign slots, join them and wait until the cluster is ok."""
        try:
            for node in self.nodes:
                # A cluster is formed from scratch: a node file of an earlier run would keep
                # the old node ids and epochs.
                (node.data_dir / "nodes.conf").unlink(missing_ok=True)
                node.start()
            self._form()
        except BaseException:
            self.stop()
            raise
        return self

    def _form(self) -> None:
        clients = self.node_clients()
        try:
            for i, (client, (first, last)) in enumerate(
                zip(clients, slot_ranges(len(clients)), strict=True)
            ):
                # Distinct config epochs up front, as redis-cli --cluster create does.
                client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", i + 1)
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
            for port, bus_port in zip(self.ports[1:], self.bus_ports[1:], strict=True):
                clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port, bus_port)
            self._wait_ok(clients)
        finally:
            for client in clients:
                client.close()

    def _wait_ok(self, clients: list[redis.Redis]) -> None:
        deadline = time.monotonic() + FORM_TIMEOUT_SECONDS
        want = len(clients)
        while True:
            infos = [client.execute_command("CLUSTER", "INFO") for client in clients]
            infos = [i.decode() if isinstance(i, bytes) else i for i in infos]
            if all(_ok(info, want) for info in infos):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"cluster on ports {self.ports} not ok after {FORM_TIMEOUT_SECONDS:.0f}s:\n"
                    + "\n---\n".join(infos)
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop every node; safe to call twice."""
        for node in reversed(self.nodes):
            node.stop()


def _distinct_free_ports(count: int) -> list[int]:
    """`count` different free ports (client and bus ports must never coincide)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _ok(info: str, nodes: int) -> bool:
    fields = dict(
        line.split(":", 1) for line in info.splitlines() if ":" in line and not line.startswith("#")
    )
    return (
        fields.get("cluster_state") == "ok"
        and fields.get("cluster_known_nodes") == str(nodes)
        and fields.get("cluster_slots_assigned") == str(SLOTS)
    )
