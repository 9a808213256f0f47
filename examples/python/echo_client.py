#!/usr/bin/env python3
"""A Skywire app in Python, standard library only: it talks the visor's app
protocol (docs/apps.md) directly.

Started by a visor (apps_path/echo_client.py, with apps[] args
"<remote visor pk> <port> <message>"), it dials the app at pk:port over a
route, sends the message, reads the answer back and prints it.

Control calls are JSON-RPC 1.0 over TCP to APP_SERVER_ADDR, each method
prefixed by APP_KEY. This example moves its bytes with Write and Read calls;
see send_via_data_socket for the fast path (a socket of raw bytes).
"""
import base64
import json
import os
import socket
import sys


class Gateway:
    """A JSON-RPC 1.0 client of the visor's app gateway."""

    def __init__(self, addr, key):
        host, port = addr.rsplit(":", 1)
        self.addr = (host, int(port))
        self.key = key
        self.sock = socket.create_connection(self.addr)
        self.reader = self.sock.makefile("rb")
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        req = {"method": f"{self.key}.{method}", "params": [params], "id": self.next_id}
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        line = self.reader.readline()
        if not line:
            raise ConnectionError("the visor closed the gateway connection")
        resp = json.loads(line)
        if resp.get("error"):
            raise RuntimeError(f"{method}: {resp['error']}")
        return resp["result"]


def send_via_rpc(gw, conn, message):
    """Write the message and read the echo with one call each way."""
    gw.call("Write", conn=conn, data=base64.b64encode(message).decode())
    got = b""
    while len(got) < len(message):
        r = gw.call("Read", conn=conn, n=len(message) - len(got))
        if r["eof"] and not r["data"]:
            break
        got += base64.b64decode(r["data"] or "")
    return got


def send_via_data_socket(gw, conn, message):
    """The fast path: attach a data socket to the connection, then raw bytes."""
    s = socket.create_connection(gw.addr)
    s.sendall(f"SWDATA/1 {gw.key} {conn}\n".encode())
    f = s.makefile("rb")
    status = f.readline().decode().strip()
    if status != "OK":
        raise RuntimeError(f"data socket: {status}")
    s.sendall(message)
    s.shutdown(socket.SHUT_WR)  # the echo app sees EOF and closes
    return f.read()


def main():
    if len(sys.argv) != 4:
        print("usage: echo_client.py <visor public key> <port> <message>")
        return 2
    pk, port, message = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
    gw = Gateway(os.environ["APP_SERVER_ADDR"], os.environ["APP_KEY"])
    print(f"app on visor {os.environ['VISOR_PK']}, port {os.environ['APP_PORT']}", flush=True)

    c = gw.call("Dial", pk=pk, port=port)
    print(f"connected to {c['remote']}", flush=True)
    gw.call("SetDeadline", conn=c["conn"], kind="both", deadline="0001-01-01T00:00:00Z")
    echoed = send_via_rpc(gw, c["conn"], message)
    gw.call("CloseConn", conn=c["conn"])
    print(f"echoed: {echoed.decode()}", flush=True)

    c = gw.call("Dial", pk=pk, port=port)
    echoed = send_via_data_socket(gw, c["conn"], message)
    print(f"echoed over a data socket: {echoed.decode()}", flush=True)
    return 0 if echoed == message else 1


if __name__ == "__main__":
    sys.exit(main())
