"""A stand-in for a launch container's UI on a Unix socket (OpenClaw's gateway speaks WebSocket and
takes commands over it), for tests/attacks/launch_ui_cross_site.sh. Python stdlib only.

launch_ui_ws_stub.py SOCKET LOG. Every request head is logged as "REQUEST <method> <path>
origin=<Origin or ->"; a plain request is answered "hello-ui". A WebSocket upgrade is answered 101,
then the stub sends the text frame "ui-state: <what the agent knows>", logs every text frame it
receives as "COMMAND <text>" and answers "ran: <text>". Exits after 10 minutes."""
import base64, hashlib, os, socket, sys, threading, time

path, log_path = sys.argv[1], sys.argv[2]
lock = threading.Lock()


def log(line):
    with lock, open(log_path, "a") as f:
        f.write(line + "\n")


def frame(text):  # a server's unmasked text frame, < 64 KiB
    data = text.encode()
    head = bytes([0x81, len(data)]) if len(data) < 126 else bytes([0x81, 126]) + len(data).to_bytes(2, "big")
    return head + data


def recv_exact(c, n):
    data = b""
    while len(data) < n:
        chunk = c.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_text_frame(c):
    head = recv_exact(c, 2)
    if head is None or head[0] & 0x0F == 0x8:  # closed, or a close frame
        return None
    n = head[1] & 0x7F
    if n == 126:
        n = int.from_bytes(recv_exact(c, 2) or b"\0\0", "big")
    elif n == 127:
        return None
    mask = recv_exact(c, 4) if head[1] & 0x80 else b"\0\0\0\0"
    data = recv_exact(c, n)
    if mask is None or data is None:
        return None
    return bytes(b ^ mask[i % 4] for i, b in enumerate(data)).decode(errors="replace")


def serve(c):
    c.settimeout(20)
    buf = b""
    try:
        # Requests on one connection, kept alive unless the request says close, as HTTP/1.1 servers
        # (node's among them) do: the relay must make sure no second request rides on a checked one.
        for _ in range(20):
            while b"\r\n\r\n" not in buf and len(buf) < 16384:
                chunk = c.recv(4096)
                if not chunk:
                    return
                buf += chunk
            head, _, buf = buf.partition(b"\r\n\r\n")
            lines = head.decode(errors="replace").split("\r\n")
            fields = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                fields.setdefault(name.strip().lower(), value.strip())
            length = int(fields.get("content-length", "0") or "0")
            while len(buf) < length:
                chunk = c.recv(4096)
                if not chunk:
                    return
                buf += chunk
            buf = buf[length:]
            method, target = (lines[0].split(" ") + ["", ""])[:2]
            log(f"REQUEST {method} {target} origin={fields.get('origin', '-')}")
            if fields.get("upgrade", "").lower() == "websocket":
                break
            close = fields.get("connection", "").lower() == "close"
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\nConnection: " +
                      (b"close" if close else b"keep-alive") + b"\r\n\r\nhello-ui")
            if close:
                return
        else:
            return
        accept = base64.b64encode(hashlib.sha1(
            (fields.get("sec-websocket-key", "") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        c.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
        c.sendall(frame("ui-state: AWS_SECRET_ACCESS_KEY=what-the-agent-knows"))
        for _ in range(10):
            text = read_text_frame(c)
            if text is None:
                break
            log(f"COMMAND {text}")
            c.sendall(frame("ran: " + text))
    except OSError:
        pass
    finally:
        c.close()


try:
    os.unlink(path)
except FileNotFoundError:
    pass
server = socket.socket(socket.AF_UNIX)
server.bind(path)
server.listen(16)
server.settimeout(1)
end = time.time() + 600
while time.time() < end:
    try:
        conn, _ = server.accept()
    except socket.timeout:
        continue
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
