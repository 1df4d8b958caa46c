#include "core/home.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/file.hpp"

namespace tokfence {

Home Home::resolve() {
  if (const char* env = std::getenv("TOKFENCE_HOME"); env && *env) return Home(env);
  const char* home = std::getenv("HOME");
  return Home(std::filesystem::path(home && *home ? home : "/") / ".tokfence");
}

Result<void> ensure_private_dir(const std::filesystem::path& given) {
  // "a/b/" would make the kernel follow a symlink at b despite O_NOFOLLOW: drop the trailing slash.
  std::filesystem::path dir = given.lexically_normal();
  if (dir.filename().empty() && dir.has_parent_path()) dir = dir.parent_path();
  std::error_code ec;
  // The ancestors are resolved and created normally (they are the user's own directories); only `dir`
  // itself is created and tightened, through its descriptor, so a symlink planted at its name is refused
  // rather than chmodded through.
  if (dir.has_parent_path() && dir.parent_path() != dir) {
    std::filesystem::create_directories(dir.parent_path(), ec);
    if (ec) return fail(dir.parent_path().string() + ": cannot create directory: " + ec.message());
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return fail(dir.string() + ": cannot create directory: " + std::strerror(errno));
  auto fd = file::open_dir_nofollow(dir);
  if (!fd) return std::unexpected(fd.error());
  if (::fchmod(fd->get(), 0700) != 0)
    return fail(dir.string() + ": cannot set mode 0700: " + std::strerror(errno));
  return {};
}

Result<void> Home::ensure() const { return ensure_private_dir(root_); }

}  // namespace tokfence
