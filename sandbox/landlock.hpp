#pragma once
// Landlock, probed at run time: the kernel headers of the build machine may be older than the
// kernel the sandbox runs on, so constants and structs are tokfence's own copies of the uapi.
#include <filesystem>
#include <optional>
#include <sys/types.h>
#include <vector>

#include "core/error.hpp"

namespace tokfence::sandbox {

// The Landlock ABI version the running kernel offers; 0 when Landlock is absent or disabled.
int landlock_abi();

struct LandlockRules {
  // Read and execute everywhere below these (normally just "/").
  std::vector<std::filesystem::path> readable;
  // Full write access below these (workdir, harness home, private tmp, --allow-write).
  std::vector<std::filesystem::path> writable;
  // Single device files that may be opened for writing and ioctl'd (/dev/null, /dev/tty, ...);
  // directories here (e.g. /dev/pts) cover the devices below them.
  std::vector<std::filesystem::path> devices;
  // A writable path that must still be this directory (device, inode) when its rule is added.
  std::optional<std::pair<std::filesystem::path, std::pair<dev_t, ino_t>>> checked = {};
};

// Restricts the calling thread (and what it later execs) to `rules`, with every access right the
// running ABI knows handled, plus the abstract-unix-socket and signal scopes where ABI >= 6.
// Needs no_new_privs (or CAP_SYS_ADMIN) already set. Missing paths are skipped. Async-signal-safe
// enough for a freshly cloned child: no locks, no threads.
Result<void> apply_landlock(const LandlockRules& rules);

}  // namespace tokfence::sandbox
