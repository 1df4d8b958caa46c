#!/usr/bin/env python3
"""A fake Telegram Bot API over TLS on loopback, for tests/integration/test_egress_openclaw_telegram.sh.

    fake_telegram_api.py --cert PEM --key PEM --port-file FILE --log FILE --token-sha256 HEX
                         --user-id N --text TEXT [--bot-username NAME] [--lifetime SECONDS]

Answers https://api.telegram.org/bot<TOKEN>/<method> the way the real Bot API does (the shapes in
https://core.telegram.org/bots/api): GET or POST, parameters in the query, a form or a JSON body.
A token whose SHA-256 is not --token-sha256 gets 401 {"ok":false,"error_code":401,
"description":"Unauthorized"}; an unknown method 404 "Not Found: method not found". The real
token never reaches this script's arguments or its log: the test passes only its hash.

One private text message from the test user (--user-id, chat id = user id) becomes pending at the
first getUpdates (as if the user wrote once the bot was polling) and is delivered once: getUpdates
returns updates with update_id >= offset, and an offset past an update confirms (drops) it, as
Telegram does; with nothing pending it long-polls up to `timeout` seconds (capped at 50).
deleteWebhook with drop_pending_updates drops what is pending.

The log (--log) gets one JSON line per request: {"method", "http", "token_ok", "placeholder",
"params"} with params minus anything token-like; sendMessage's text is in params. Every request
is logged before it is answered.
"""
import argparse
import hashlib
import http.server
import json
import os
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse

args = None
lock = threading.Condition()
pending = []          # updates not yet confirmed
next_update_id = 100000001
message_queued = False
sent_message_id = 500
start_time = int(time.time())


def bot_user():
    return {"id": 7000000001, "is_bot": True, "first_name": "Tokfence Test Bot", "username": args.bot_username,
            "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False,
            "can_connect_to_business": False, "has_main_web_app": False}


def test_user():
    return {"id": args.user_id, "is_bot": False, "first_name": "Test", "last_name": "User",
            "username": "tokfence_test_user", "language_code": "en"}


def private_chat():
    return {"id": args.user_id, "first_name": "Test", "last_name": "User", "username": "tokfence_test_user",
            "type": "private"}


def queue_user_message_locked():
    global next_update_id, message_queued
    if message_queued:
        return
    message_queued = True
    pending.append({"update_id": next_update_id,
                    "message": {"message_id": 42, "from": test_user(), "chat": private_chat(),
                                "date": int(time.time()), "text": args.text}})
    next_update_id += 1
    lock.notify_all()


def sent_message(params, text=None):
    global sent_message_id
    sent_message_id += 1
    chat_id = params.get("chat_id")
    try:
        chat_id = int(chat_id)
    except (TypeError, ValueError):
        pass
    chat = private_chat() if chat_id == args.user_id else {"id": chat_id, "type": "private"}
    msg = {"message_id": sent_message_id, "from": bot_user(), "chat": chat, "date": int(time.time())}
    if text is not None:
        msg["text"] = text
    return msg


def as_int(value, default):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def as_bool(value):
    return value is True or str(value).lower() in ("true", "1")


def get_updates(params):
    offset = as_int(params.get("offset"), 0)
    limit = max(1, min(100, as_int(params.get("limit"), 100)))
    timeout = max(0, min(50, as_int(params.get("timeout"), 0)))
    deadline = time.monotonic() + timeout
    with lock:
        queue_user_message_locked()
        while True:
            if offset:
                # Telegram: an offset confirms every update with a lower id.
                pending[:] = [u for u in pending if u["update_id"] >= offset]
            ready = pending[:limit]
            left = deadline - time.monotonic()
            if ready or left <= 0:
                return ready
            lock.wait(left)


SIMPLE_TRUE = {
    "setMyCommands", "deleteMyCommands", "setMyDescription", "setMyShortDescription", "setMyName",
    "setChatMenuButton", "setWebhook", "sendChatAction", "setMessageReaction", "deleteMessage",
    "answerCallbackQuery", "setMyDefaultAdministratorRights", "pinChatMessage", "unpinChatMessage",
}


def answer(method, params):
    """(status, body) for one Bot API call with a valid token."""
    if method == "getMe":
        return 200, {"ok": True, "result": bot_user()}
    if method == "getUpdates":
        return 200, {"ok": True, "result": get_updates(params)}
    if method == "deleteWebhook":
        if as_bool(params.get("drop_pending_updates")):
            with lock:
                pending.clear()
        return 200, {"ok": True, "result": True, "description": "Webhook is already deleted"}
    if method == "getWebhookInfo":
        with lock:
            count = len(pending)
        return 200, {"ok": True, "result": {"url": "", "has_custom_certificate": False, "pending_update_count": count}}
    if method == "getMyCommands":
        return 200, {"ok": True, "result": []}
    if method == "getMyName":
        return 200, {"ok": True, "result": {"name": "Tokfence Test Bot"}}
    if method in ("getMyDescription",):
        return 200, {"ok": True, "result": {"description": ""}}
    if method in ("getMyShortDescription",):
        return 200, {"ok": True, "result": {"short_description": ""}}
    if method == "getChatMenuButton":
        return 200, {"ok": True, "result": {"type": "default"}}
    if method == "getChat":
        return 200, {"ok": True, "result": dict(private_chat(), accent_color_id=0, max_reaction_count=11,
                                                  accepted_gift_types={"unlimited_gifts": False,
                                                                       "limited_gifts": False,
                                                                       "unique_gifts": False,
                                                                       "premium_subscription": False})}
    if method == "sendMessage":
        text = params.get("text")
        if not text:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"}
        if params.get("chat_id") is None:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
        return 200, {"ok": True, "result": sent_message(params, text)}
    if method in ("editMessageText",):
        msg = sent_message(params, params.get("text"))
        msg["message_id"] = as_int(params.get("message_id"), msg["message_id"])
        msg["edit_date"] = int(time.time())
        return 200, {"ok": True, "result": msg}
    if method in SIMPLE_TRUE:
        return 200, {"ok": True, "result": True}
    return 404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"}


def scrub(params):
    # Nothing token-shaped goes to the log (the test greps for the real token everywhere).
    return {k: v for k, v in params.items() if "token" not in k.lower()}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def params(self):
        query = urllib.parse.urlsplit(self.path).query
        params = {k: v[-1] for k, v in urllib.parse.parse_qs(query, keep_blank_values=True).items()}
        length = as_int(self.headers.get("Content-Length"), 0)
        if length > 10 * 1024 * 1024:
            return None
        body = self.rfile.read(length) if length else b""
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if body and ctype == "application/json":
            try:
                parsed = json.loads(body)
            except ValueError:
                return None
            if not isinstance(parsed, dict):
                return None
            params.update(parsed)
        elif body and ctype == "application/x-www-form-urlencoded":
            params.update({k: v[-1] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace"),
                                                                       keep_blank_values=True).items()})
        elif body and ctype == "multipart/form-data":
            params["_multipart_bytes"] = len(body)
        return params

    def reply(self, status, body):
        data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Server", "nginx/1.18.0")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        self.wfile.write(data)

    def handle_call(self):
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        params = self.params()
        parts = path.split("/")
        entry = {"http": self.command, "host": self.headers.get("Host", ""),
                 "placeholder": "tokfence-secret" in self.requestline or "tokfence-secret" in str(self.headers)}
        if params is None:
            entry.update(method="?", token_ok=None)
            self.log(entry)
            return self.reply(400, {"ok": False, "error_code": 400, "description": "Bad Request: invalid request"})
        if len(parts) != 3 or parts[0] != "" or not parts[1].startswith("bot"):
            entry.update(method="?", token_ok=None, path_shape="/" + "/".join(p[:3] for p in parts[1:]))
            self.log(entry)
            return self.reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        token, method = parts[1][3:], parts[2]
        token_ok = hashlib.sha256(token.encode()).hexdigest() == args.token_sha256
        entry.update(method=method, token_ok=token_ok, params=scrub(params))
        self.log(entry)
        if not token_ok:
            return self.reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        status, body = answer(method, params)
        self.reply(status, body)

    def log(self, entry):
        entry["t"] = round(time.time(), 3)
        with open(args.log, "a") as f:
            f.write(json.dumps(entry) + "\n")

    do_GET = handle_call
    do_POST = handle_call

    def log_message(self, *unused):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client gone mid-answer (a long poll cut when the test stops OpenClaw): one log line, no
        # traceback in the test's output.
        with open(args.log, "a") as f:
            f.write(json.dumps({"error": repr(sys.exc_info()[1])[:200], "t": round(time.time(), 3)}) + "\n")


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--token-sha256", required=True)
    p.add_argument("--user-id", type=int, required=True)
    p.add_argument("--text", required=True)
    p.add_argument("--bot-username", default="tokfence_test_bot")
    p.add_argument("--lifetime", type=int, default=600)
    args = p.parse_args()
    server = Server(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    threading.Timer(args.lifetime, server.shutdown).start()  # bounded even if the test forgets it
    server.serve_forever()


if __name__ == "__main__":
    main()
