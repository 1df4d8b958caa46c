"""Hand-made TLS ClientHellos sent through a CONNECT tunnel of the egress proxy, for the attack
tests of its server-name checks (egress_sni_fronting, egress_sni_retry). Standard library only."""
import socket


def vec(data, width):
    return len(data).to_bytes(width, "big") + data


def ext(kind, data):
    return kind.to_bytes(2, "big") + vec(data, 2)


def client_hello(sni, ech=False, piece=16384):
    """A ClientHello for `sni` ("" = no server_name), TLS 1.3 only, in handshake records of at
    most `piece` bytes each."""
    exts = ext(0, vec(b"\x00" + vec(sni.encode(), 2), 2)) if sni else b""
    if ech:
        exts += ext(0xFE0D, b"\x00" * 40)
    exts += ext(43, b"\x02\x03\x04")
    body = b"\x03\x03" + b"r" * 32 + vec(b"s" * 32, 1) + vec(b"\x13\x01", 2) + vec(b"\x00", 1) + vec(exts, 2)
    message = b"\x01" + vec(body, 3)
    return b"".join(b"\x16\x03\x01" + vec(message[at:at + piece], 2) for at in range(0, len(message), piece))


def open_tunnel(port, authority):
    """CONNECT authority through the proxy on 127.0.0.1:port: (socket, bytes after the head), or
    (None, the status line) when the proxy did not answer 200."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        s.close()
        return None, head.split(b"\r\n")[0].decode(errors="replace")
    return s, rest
