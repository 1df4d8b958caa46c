"""The hostile agent for the inspected-egress attack tests: CONNECT through the relay, TLS trusting
tokfence's local CA, one raw request (any bytes, framing included), everything the proxy sends
back written to stdout. Bounded: 15 s per socket operation, at most 10000 reads.

  inspect_agent.py RELAY_PORT CA_FILE AUTHORITY REQUEST_FILE"""
import socket, ssl, sys

port, ca, authority, request_file = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
request = open(request_file, "rb").read()
s = socket.create_connection(("127.0.0.1", port), timeout=15)
s.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
answer = b""
for _ in range(100):
    if b"\r\n\r\n" in answer:
        break
    chunk = s.recv(4096)
    if not chunk:
        break
    answer += chunk
if not answer.startswith(b"HTTP/1.1 200"):
    sys.stdout.buffer.write(answer)
    sys.exit(0)
tls = ssl.create_default_context(cafile=ca).wrap_socket(s, server_hostname=authority.rsplit(":", 1)[0])
tls.sendall(request)
out = b""
for _ in range(10000):
    try:
        chunk = tls.recv(65536)
    except (OSError, ssl.SSLError):
        break
    if not chunk:
        break
    out += chunk
sys.stdout.buffer.write(out)
