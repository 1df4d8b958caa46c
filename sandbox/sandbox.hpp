#pragma once
// What a sandboxed harness child may do, independent of how a platform enforces it. The Linux
// implementation (linux_sandbox.hpp) uses user/network/mount/PID namespaces + Landlock; the macOS
// one (macos_profile.hpp) renders a sandbox-exec profile from the same policy.
#include <filesystem>
#include <optional>
#include <sys/types.h>
#include <string>
#include <vector>

namespace tokfence::sandbox {

struct Policy {
  // argv[0] is an absolute path (resolved by the caller against the parent's PATH).
  std::vector<std::string> argv;
  // Complete child environment, "NAME=value" (see environment.hpp).
  std::vector<std::string> env;
  // Where the child starts; writable.
  std::filesystem::path workdir;
  // What `workdir` was when the caller checked it (core/file fence_dir_as_named): the sandbox
  // refuses to start when the path leads elsewhere by the time it is entered and granted (another
  // agent that writes a parent of it swapped it for a link: review 15e E1). Unset: not compared.
  std::optional<std::pair<dev_t, ino_t>> workdir_identity = {};
  // Further writable paths (the harness home, --allow-write paths). Must exist.
  std::vector<std::filesystem::path> writable;
  // Replaced by empty read-only mounts (directories) or an empty file (anything else): the
  // tokfence home, /run (user runtime dirs, D-Bus, Docker/Podman sockets), agent socket dirs...
  // Writable paths below a hidden one stay visible (they are mounted back).
  std::vector<std::filesystem::path> hidden;
  // Paths below a hidden one that come back read-only (as root, the parts of /root the program
  // needs: its own install directory, toolchains on PATH, git's config). Must exist; hidden paths
  // below them stay hidden.
  std::vector<std::filesystem::path> readable;
  // Host path of the proxy-only Unix socket the daemon opened for this run; visible inside as
  // `inner_proxy_socket`, and relayed to 127.0.0.1:`proxy_port`.
  std::filesystem::path proxy_socket;
  int proxy_port = 0;
  // The tokfence-relay binary (runs as the sandbox's PID 1).
  std::filesystem::path relay;
  // Path sockets the program may connect to (`tokfence run --allow-socket`; existing sockets,
  // checked by the caller). Empty: the program cannot create Unix sockets at all (seccomp). Not
  // empty: it can, and every other path socket the host has at the start is covered instead.
  std::vector<std::filesystem::path> allowed_sockets;
  // Files that exist only inside the sandbox (the session's decoy credentials, core/decoys.hpp):
  // each `path` (relative, no `..`) is created below `plant_home` (the program's $HOME) mode 0600,
  // owned by the caller, in a tmpfs the sandbox mounts, never on the host's disk. A directory
  // between `plant_home` and the file that exists on the host becomes a tmpfs holding bind mounts
  // of its real entries (so the rest of it looks unchanged), minus hidden ones and the planted
  // names. `plant_home` must not be writable in the sandbox (a writable path at or above it).
  // A file whose directory on the host is a symbolic link or not a directory is left out with a
  // note on stderr.
  struct PlantedFile {
    std::string path;
    std::string content;
  };
  std::filesystem::path plant_home;
  std::vector<PlantedFile> planted;
  // RLIMIT_NPROC inside the sandbox (the relay and every process and thread of the program): a
  // fork bomb stops there instead of taking the machine. The kernel counts them per user, in the
  // sandbox's own user namespace too. 0 = no limit.
  int max_processes = 0;
};

// Where the proxy socket's directory appears inside a Linux sandbox, read-only. `tokfence run` also
// puts the fence's local CA files there (core/egress_env.hpp kFenceCaFile, kFenceCaBundleFile).
inline const std::filesystem::path kInnerProxyDir = "/run/tokfence-proxy";

}  // namespace tokfence::sandbox
