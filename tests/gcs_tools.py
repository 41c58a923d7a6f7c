"""A GCS emulator on 127.0.0.1 for the tests, and a proxy in front of it that counts requests and bytes."""

from __future__ import annotations

import collections
import contextlib
import http.client
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

BUCKET = "tokenmill-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def emulator(log_dir):
    """`gcp-storage-emulator` in memory with one bucket; yields its port."""
    port = free_port()
    program = os.path.join(os.path.dirname(sys.executable), "gcp-storage-emulator")
    log_path = os.path.join(log_dir, "emulator.log")
    with open(log_path, "wb") as log:
        process = subprocess.Popen([program, "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory", "--default-bucket", BUCKET], stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    assert process.poll() is None and time.monotonic() < deadline, open(log_path).read()
                    time.sleep(0.05)
            yield port
        finally:
            process.terminate()
            process.wait(timeout=10)


def point_beam_at(monkeypatch, url: str) -> None:
    """Beam's GCS client talks to `url`, anonymously.

    Without credentials Beam retries Google's credential lookup for about 30 s
    and then connects anonymously; this starts it in that final state.
    """
    from apache_beam.internal.gcp import auth

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
    monkeypatch.setattr(auth._Credentials, "_credentials_init", True)  # noqa: SLF001
    monkeypatch.setattr(auth._Credentials, "_credentials", None)  # noqa: SLF001


class Traffic:
    """What went through a `counting_proxy`: requests by kind, bytes sent each way, bytes downloaded and reads by object name."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests: collections.Counter[str] = collections.Counter()
        self.uploaded = 0
        self.downloaded = 0
        self.downloaded_by_object: collections.Counter[str] = collections.Counter()
        self.reads_by_object: collections.Counter[str] = collections.Counter()

    def add(self, method: str, path: str, sent: int, received: int) -> None:
        kind = "batch" if path.startswith("/batch") else method
        name = urllib.parse.unquote(urllib.parse.urlsplit(path).path).partition("/o/")[2]
        with self._lock:
            self.requests[kind] += 1
            self.uploaded += sent
            self.downloaded += received
            if method == "GET" and name:
                self.downloaded_by_object[name] += received
                self.reads_by_object[name] += 1

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.uploaded = self.downloaded = 0
            self.downloaded_by_object.clear()
            self.reads_by_object.clear()


@contextlib.contextmanager
def counting_proxy(upstream_port: int):
    """An HTTP proxy on 127.0.0.1 that forwards every request to the emulator and counts it; yields (port, Traffic)."""
    traffic = Traffic()

    class Forward(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def _forward(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}  # the proxy's Host: the emulator's media links lead back here
            connection = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            finally:
                connection.close()
            self.send_response(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            traffic.add(self.command, self.path, len(body), len(data))

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            """A client still talking to the proxy after its emulator stopped (a keep-alive connection): nothing to report."""

    server = Server(("127.0.0.1", 0), Forward)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], traffic
    finally:
        server.shutdown()
        server.server_close()


def upload(path: str, data: bytes) -> None:
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(data)


def download(path: str) -> bytes:
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read()


def objects(prefix: str) -> list[str]:
    from apache_beam.io.filesystems import FileSystems

    return sorted(m.path[len(prefix) :] for m in FileSystems.match([prefix + "**"])[0].metadata_list)
