#include "core/home.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace tokfence {

Home Home::resolve() {
  if (const char* env = std::getenv("TOKFENCE_HOME"); env && *env) return Home(env);
  const char* home = std::getenv("HOME");
  return Home(std::filesystem::path(home && *home ? home : "/") / ".tokfence");
}

Result<void> ensure_private_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fail(dir.string() + ": cannot create directory: " + ec.message());
  if (::chmod(dir.c_str(), 0700) != 0)
    return fail(dir.string() + ": cannot set mode 0700: " + std::strerror(errno));
  return {};
}

Result<void> Home::ensure() const { return ensure_private_dir(root_); }

}  // namespace tokfence
