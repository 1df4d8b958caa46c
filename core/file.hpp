#pragma once
// The one safe file module. Every host-side write, directory walk, removal and socket connect in a
// directory that a sandboxed agent or a container might be able to write goes through here.
//
// Why: the agent inside the fence can plant a symlink or a hard link under any name the host will later
// use (including predictable temporary names such as `x.tmp<pid>`). Anything the host does *by name* in
// such a directory (open, chmod, unlink, connect, create_directories) follows the planted link and acts on
// a file of the agent's choosing with the user's rights. So:
//  - directories are walked one component at a time with O_NOFOLLOW, and each component's type and owner
//    are checked through its descriptor (fstat), never through a second look-up by name;
//  - files are written to an O_EXCL temp file with a random name, moded through the descriptor, and
//    renamed over the target (a link planted at the target is replaced, never written through);
//  - sockets are connected through /proc/self/fd/N of an O_PATH descriptor that was type/owner checked.
#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "core/error.hpp"

namespace tokfence::file {

// Move-only owner of a descriptor; -1 = none. Closes on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd();
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

enum class Create { no, yes };

// Opens directory `path` (absolute) one component at a time (openat per component with O_NOFOLLOW and
// O_DIRECTORY), refusing any symlink component below `trusted_root` (`trusted_root` itself and the
// components above it, e.g. /home/u, are resolved normally). With Create::yes missing components below
// `trusted_root` are created 0700. Every component below `trusted_root` must be a real directory owned by
// geteuid() (or `expected_owner`). `path` must be `trusted_root` or below it, without `..`.
// The returned descriptor is O_RDONLY|O_DIRECTORY (usable for *at calls, fchmod, fsync).
Result<Fd> open_dir_beneath(const std::filesystem::path& trusted_root, const std::filesystem::path& path,
                            Create create = Create::no, std::optional<uid_t> expected_owner = std::nullopt);

// Same, relative to an already open directory descriptor. `name` is a relative path (one or more
// components, no `..`); every component gets the same checks.
Result<Fd> open_dir_at(int dir_fd, std::string_view name, Create create = Create::no,
                       std::optional<uid_t> expected_owner = std::nullopt);

struct WriteOptions {
  mode_t mode = 0600;
  std::optional<std::pair<uid_t, gid_t>> owner;
};

// Atomically replaces `name` in `dir_fd`: O_CREAT|O_EXCL|O_NOFOLLOW temp file with a random name in the same
// directory, write all, fchmod/fchown on the descriptor, fsync, renameat over `name` (a symlink or hard link
// planted at `name` is replaced, never followed or written through), fsync the directory. `name` must be a
// single component. On error the temp file is removed (unlinkat in dir_fd) and the error names `name`.
// A directory at `name` is refused (renameat fails), nothing is lost.
Result<void> write_atomic_at(int dir_fd, std::string_view name, std::string_view content,
                             const WriteOptions& options = {});

// Convenience for paths in directories only the user can write (tokfence home): opens the parent with
// O_DIRECTORY|O_NOFOLLOW on its last component (its ancestors are resolved normally), then write_atomic_at.
Result<void> write_atomic(const std::filesystem::path& path, std::string_view content,
                          const WriteOptions& options = {});

// Reads a regular file without following a final symlink (O_NOFOLLOW), at most `limit` bytes (a larger
// file is an error, not a silent truncation). A FIFO or device at `name` is refused without blocking.
Result<std::string> read_at(int dir_fd, std::string_view name, std::size_t limit = 16 << 20);

// Removes `name` below `dir_fd` recursively without following any symlink (unlinkat/openat walk): a
// symlink inside the tree is unlinked, never entered. A missing `name` is success.
Result<void> remove_tree_at(int dir_fd, std::string_view name);

// Connects a SOCK_STREAM AF_UNIX socket to the socket `name` inside `dir_fd` safely:
// openat(O_PATH|O_NOFOLLOW), fstat must say S_ISSOCK and owner == `expected_owner` (if given), then connect
// via /proc/self/fd/N (so the checked inode is the one connected to). The socket is blocking, CLOEXEC.
Result<Fd> connect_unix_at(int dir_fd, std::string_view name,
                           std::optional<uid_t> expected_owner = std::nullopt);

// /proc/self/exe, the one look-up for the whole tree. Empty path if it cannot be read.
std::filesystem::path self_exe();

// Opens `relative` below `dir_fd` one component at a time with O_PATH | O_NOFOLLOW: every
// component but the last must be a directory and none may be a symbolic link (the last one is
// opened, not followed, and refused when it is a link). For paths below a directory another
// principal can write, where any component may have been swapped for a link.
Result<Fd> open_path_nofollow(int dir_fd, const std::filesystem::path& relative);

// The directory a fence is given to write (launch --workspace, run --workdir), as named, and the
// identity it was checked with. A symbolic link in it is refused, the message naming where it
// leads: a link in a directory another agent can write (a second fence whose workspace holds this
// one) can be re-pointed at any directory of the user's, and the next launch or run with the same
// command line would hand the agent that directory (review 15d L1). Only a link that nobody but
// root can change passes (owned by root, in a root-owned directory no one else may write: /home ->
// /var/home on Fedora Silverblue). The real path is then opened one component at a time without
// following links, and `dev`/`ino` are what was opened: what the fence must be given, compared
// again when it is (review 15e E1: a swap after the check). Also refused: a directory that is,
// holds or lies inside `tokfence_home` (vault, sockets, other launches' state). `what` names the
// flag in messages.
struct FenceDir {
  std::filesystem::path path;  // the real path
  dev_t dev = 0;
  ino_t ino = 0;
};
Result<FenceDir> fence_dir_as_named(const std::string& what, const std::filesystem::path& given,
                                    const std::filesystem::path& tokfence_home);

// Whether `path` is `dir` or below it (lexically, after normalising both).
bool is_same_or_under(const std::filesystem::path& path, const std::filesystem::path& dir);

// --- additions ---

// Opens `path` itself as a directory with O_NOFOLLOW on its last component (ancestors resolved normally)
// and checks through the descriptor that it is a directory owned by geteuid() (or `expected_owner`).
Result<Fd> open_dir_nofollow(const std::filesystem::path& path,
                             std::optional<uid_t> expected_owner = std::nullopt);

// Opens directory `path` with O_NOFOLLOW on its last component, without an owner check (for a directory
// such as a socket's parent that may legitimately belong to root or be shared). Use the descriptor only.
Result<Fd> open_dir_nofollow_any_owner(const std::filesystem::path& path);

// Whether directory `dir` (resolved) and each of its ancestors is safe from other users: owned by
// geteuid() or root and not writable by group or others, except an ancestor with the sticky bit
// (like /tmp), in which only an entry's owner may rename or remove it. For a directory whose
// contents tokfence later runs, serves or trusts by path (a socket's directory, a build cache):
// there a planted or swapped entry would be acted on. The error names the component and why
// (owner or mode); it does not say what to do instead (the caller knows).
// Returns the resolved path: use it, not `dir`, from then on. A symlink in `dir` is resolved once,
// here; what was checked is the directories it led to, and a link another user re-points after
// the check (one in a sticky /tmp, say) would lead later uses of `dir` somewhere unchecked.
Result<std::filesystem::path> check_trusted_dir(const std::filesystem::path& dir);

// A name for `fd` for error messages only (readlink of /proc/self/fd/N); never use it to re-open.
std::string describe_fd(int fd);

// `n` random lowercase hex characters from getrandom (for temp names that cannot be predicted).
std::string random_hex(std::size_t n);

// True if `name` is one path component usable as a file name: not empty, not `.`/`..`, no `/`, no NUL.
bool is_single_component(std::string_view name);

}  // namespace tokfence::file
