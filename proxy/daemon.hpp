#pragma once
// The daemon's life: lock, harden, load keys, open the request log and controls, listen (TCP, main
// Unix socket, persisted per-launch sockets, control socket), write Home::runtime_file(), serve
// until SIGTERM/SIGINT or the `shutdown` op, then stop gracefully and flush every log row.
// (docs/PROXY.md, docs/CONTROL-PROTOCOL.md)
#include <functional>
#include <memory>
#include <string>

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/home.hpp"
#include "vault/vault.hpp"

namespace tokfence::proxy {

struct DaemonOptions {
  Home home = Home::resolve();
  Config config;
  std::unique_ptr<vault::Vault> vault;  // opened by the caller (it may have asked for a passphrase)
  std::string version;
  // Called once, when every listener is up and daemon.json is written: `port` is the actual port.
  std::function<void(int port)> on_ready;
};

// Blocks until the daemon stops. Errors before on_ready (already running, a port in use, a locked
// vault) are returned; after that the daemon only stops on request.
Result<void> run_daemon(DaemonOptions options);

// Lines for daemon.log (stderr of the daemon): "2025-01-02T03:04:05Z tokfence: <text>".
void daemon_log(const std::string& text);

}  // namespace tokfence::proxy
