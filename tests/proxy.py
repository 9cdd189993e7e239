"""A TCP proxy of our own, for network faults between kassa and a server: black-hole the
traffic, reset every connection, or add latency, all at run time.

Every byte a client sends reaches the server, in order, and back, unless the connection is
reset: a black hole holds the bytes (as a network that drops packets holds them in TCP's
retransmissions) and delivers them when healed.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import struct
import threading
import time
from typing import Final

from tests.helpers import free_port

CHUNK: Final = 65_536


class _Pipe:
    """One direction of one connection: bytes read from ``source`` are written to ``target``
    once they are due (their arrival plus the proxy's latency) and the proxy is not a black
    hole."""

    def __init__(self, proxy: TcpProxy, source: socket.socket, target: socket.socket) -> None:
        self.proxy = proxy
        self.source = source
        self.target = target
        self.pending: queue.Queue[tuple[float, bytes]] = queue.Queue()

    def start(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._write, daemon=True).start()

    def _read(self) -> None:
        with contextlib.suppress(OSError):
            while data := self.source.recv(CHUNK):
                self.pending.put((time.monotonic() + self.proxy.latency, data))
        self.pending.put((0.0, b""))

    def _write(self) -> None:
        try:
            while True:
                due, data = self.pending.get()
                if not data:
                    break
                while self.proxy.black_hole.is_set() or time.monotonic() < due:
                    time.sleep(0.01)
                self.target.sendall(data)
        except OSError:
            pass
        self.proxy.close_pair(self.source, self.target)


class TcpProxy:
    """Listens on 127.0.0.1:``port`` (a free one by default) and forwards to ``target``."""

    def __init__(self, target_host: str, target_port: int, port: int | None = None) -> None:
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self.latency = 0.0
        self.black_hole = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self._closed = False

    @property
    def address(self) -> str:
        """``host:port`` of the proxy, for a client's configuration."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> TcpProxy:
        """Accept connections on a background thread."""
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop accepting and reset every connection."""
        self._closed = True
        self._listener.close()
        self.reset()

    def hold(self) -> None:
        """Black-hole the traffic: connections stay open, no byte passes until :meth:`heal`."""
        self.black_hole.set()

    def heal(self) -> None:
        """Let traffic pass again (held bytes first) and drop any added latency."""
        self.latency = 0.0
        self.black_hole.clear()

    def delay(self, seconds: float) -> None:
        """Add ``seconds`` of latency to every byte, in each direction."""
        self.latency = seconds

    def reset(self) -> None:
        """Reset every open connection (an RST to both ends); new ones are accepted."""
        with self._lock:
            sockets = list(self._sockets)
            self._sockets.clear()
        for sock in sockets:
            _abort(sock)

    def close_pair(self, *pair: socket.socket) -> None:
        """Close both ends of a connection that one side closed."""
        with self._lock:
            self._sockets.difference_update(pair)
        for sock in pair:
            sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                _abort(client)
                continue
            server.settimeout(None)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets.update((client, server))
            _Pipe(self, client, server).start()
            _Pipe(self, server, client).start()


def _abort(sock: socket.socket) -> None:
    """Close ``sock`` with an RST instead of a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
