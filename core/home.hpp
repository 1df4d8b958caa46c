#pragma once
// The tokfence home: every file tokfence writes lives below it (TOKFENCE_HOME, default ~/.tokfence).
#include <filesystem>

#include "core/error.hpp"

namespace tokfence {

class Home {
 public:
  // From $TOKFENCE_HOME, else $HOME/.tokfence. Does not touch the disk.
  static Home resolve();
  explicit Home(std::filesystem::path root) : root_(std::move(root)) {}

  // Creates the directory with mode 0700 (tightening an existing one). Errors name the path.
  Result<void> ensure() const;

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path config_file() const { return root_ / "config.toml"; }
  std::filesystem::path vault_file() const { return root_ / "vault.enc"; }
  std::filesystem::path default_db() const { return root_ / "tokfence.db"; }
  std::filesystem::path default_proxy_socket() const { return root_ / "tokfence.sock"; }
  // Control plane: only the owning user, and only from the daemon's own namespaces.
  std::filesystem::path control_socket() const { return root_ / "control.sock"; }
  std::filesystem::path pid_file() const { return root_ / "daemon.pid"; }
  std::filesystem::path daemon_log() const { return root_ / "daemon.log"; }
  // Written by a running daemon: pid, host, actual port (port 0 resolves here), socket paths.
  std::filesystem::path runtime_file() const { return root_ / "daemon.json"; }
  // Kept current by a running daemon for menu-bar widgets and desktop apps (docs/WIDGET.md).
  std::filesystem::path desktop_snapshot_file() const { return root_ / "desktop_snapshot.json"; }
  // Per-launch / per-harness proxy sockets live in subdirectories of this.
  std::filesystem::path sockets_dir() const { return root_ / "sockets"; }
  // ImmuneFence's Ed25519 signing key (PKCS#8 PEM, 0600): the daemon's alone.
  std::filesystem::path immunefence_key() const { return root_ / "immunefence.key"; }
  std::filesystem::path openclaw_dir() const { return root_ / "openclaw"; }
  std::filesystem::path harness_dir() const { return root_ / "harness"; }

 private:
  std::filesystem::path root_;
};

// Creates `dir` (and parents) and forces mode 0700 on `dir` through an O_NOFOLLOW descriptor: a symlink,
// a non-directory or a directory owned by another uid at `dir` is refused (error names the path), never
// followed or chmodded.
Result<void> ensure_private_dir(const std::filesystem::path& dir);

}  // namespace tokfence
