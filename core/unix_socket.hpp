#pragma once
// Unix sockets at any path length. sun_path holds only 108 bytes, and test homes (and users' homes)
// can be deeper than that, so every bind and connect goes through an O_PATH descriptor of the
// parent directory: "/proc/self/fd/<dirfd>/<name>" is short, and the kernel resolves it to the
// real directory. All descriptors returned here are close-on-exec.
#include <sys/types.h>

#include <filesystem>
#include <string>

#include "core/error.hpp"

namespace tokfence {

// Binds and listens on `path` with permissions `mode`. The parent may be writable by a container, so
// nothing is done by name in it: the socket is bound and chmodded inside a fresh 0700 directory we
// create next to it, then renameat() moves it into place through a no-follow descriptor of the parent.
// A stale socket (nobody answering) or a symlink at `path` is replaced by that rename, never followed;
// a live socket, a directory or another file is an error naming the path. The parent directory is
// created with mode 0700 when missing (an existing one is never chmodded).
Result<int> bind_unix_listener(const std::filesystem::path& path, mode_t mode, int backlog = 512);

// Connects to the Unix socket at `path` (blocking, with `timeout_ms`). Errors keep errno in
// `*err_no` when given, so callers can tell "nobody there" (ENOENT/ECONNREFUSED) from others.
Result<int> connect_unix(const std::filesystem::path& path, int timeout_ms, int* err_no = nullptr);

// Removes the socket file at `path` if it is a socket (never anything else), through a no-follow
// descriptor of its parent (unlinkat).
void remove_socket_file(const std::filesystem::path& path);

// Sets FD_CLOEXEC (Asio does not for listening sockets).
void set_cloexec(int fd);

}  // namespace tokfence
