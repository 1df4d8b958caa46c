#include "sandbox/landlock.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace tokfence::sandbox {
namespace {

// uapi/linux/landlock.h, as of ABI 7.
struct RulesetAttr {
  std::uint64_t handled_access_fs;
  std::uint64_t handled_access_net;
  std::uint64_t scoped;
};
struct __attribute__((packed)) PathBeneathAttr {
  std::uint64_t allowed_access;
  std::int32_t parent_fd;
};
constexpr unsigned kCreateRulesetVersion = 1U << 0;
constexpr int kRulePathBeneath = 1;

constexpr std::uint64_t kExecute = 1ULL << 0;
constexpr std::uint64_t kWriteFile = 1ULL << 1;
constexpr std::uint64_t kReadFile = 1ULL << 2;
constexpr std::uint64_t kReadDir = 1ULL << 3;
constexpr std::uint64_t kRemoveDir = 1ULL << 4;
constexpr std::uint64_t kRemoveFile = 1ULL << 5;
constexpr std::uint64_t kMakeChar = 1ULL << 6;
constexpr std::uint64_t kMakeDir = 1ULL << 7;
constexpr std::uint64_t kMakeReg = 1ULL << 8;
constexpr std::uint64_t kMakeSock = 1ULL << 9;
constexpr std::uint64_t kMakeFifo = 1ULL << 10;
constexpr std::uint64_t kMakeBlock = 1ULL << 11;
constexpr std::uint64_t kMakeSym = 1ULL << 12;
constexpr std::uint64_t kRefer = 1ULL << 13;     // ABI 2
constexpr std::uint64_t kTruncate = 1ULL << 14;  // ABI 3
constexpr std::uint64_t kIoctlDev = 1ULL << 15;  // ABI 5
constexpr std::uint64_t kScopeAbstractUnix = 1ULL << 0;  // ABI 6
constexpr std::uint64_t kScopeSignal = 1ULL << 1;        // ABI 6

std::uint64_t handled_fs_for(int abi) {
  std::uint64_t all = kExecute | kWriteFile | kReadFile | kReadDir | kRemoveDir | kRemoveFile | kMakeChar |
                      kMakeDir | kMakeReg | kMakeSock | kMakeFifo | kMakeBlock | kMakeSym;
  if (abi >= 2) all |= kRefer;
  if (abi >= 3) all |= kTruncate;
  if (abi >= 5) all |= kIoctlDev;
  return all;
}

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace

int landlock_abi() {
  long abi = ::syscall(SYS_landlock_create_ruleset, nullptr, 0, kCreateRulesetVersion);
  return abi < 0 ? 0 : static_cast<int>(abi);
}

Result<void> apply_landlock(const LandlockRules& rules) {
  int abi = landlock_abi();
  if (abi < 1) return fail("landlock: not available in this kernel");
  RulesetAttr attr{};
  attr.handled_access_fs = handled_fs_for(abi);
  if (abi >= 6) attr.scoped = kScopeAbstractUnix | kScopeSignal;
  // Older kernels reject a struct bigger than they know (unless the extra bytes are zero, which
  // they are when scoped is 0): pass the size matching the ABI.
  std::size_t size = abi >= 6 ? sizeof(RulesetAttr) : abi >= 4 ? 16 : 8;
  int ruleset = static_cast<int>(::syscall(SYS_landlock_create_ruleset, &attr, size, 0));
  if (ruleset < 0) return fail("landlock: create ruleset: " + errno_text(errno));

  const std::uint64_t read = kExecute | kReadFile | kReadDir;
  const std::uint64_t write = attr.handled_access_fs;
  const std::uint64_t device = read | kWriteFile | (abi >= 3 ? kTruncate : 0) | (abi >= 5 ? kIoctlDev : 0);
  auto add = [&](const std::filesystem::path& path, std::uint64_t access) -> Result<void> {
    int fd = ::open(path.c_str(), O_PATH | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return {};
      return fail("landlock: open: " + path.string() + ": " + errno_text(errno));
    }
    struct stat st{};
    if (rules.checked && rules.checked->first == path &&
        (::fstat(fd, &st) != 0 || st.st_dev != rules.checked->second.first || st.st_ino != rules.checked->second.second)) {
      ::close(fd);
      return fail("landlock: " + path.string() + " is not the directory that was checked: it was replaced since");
    }
    if (::fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode)) {
      // Directory-only rights cannot be granted on a file.
      access &= kExecute | kWriteFile | kReadFile | kTruncate | kIoctlDev;
    }
    PathBeneathAttr beneath{access, fd};
    long rc = ::syscall(SYS_landlock_add_rule, ruleset, kRulePathBeneath, &beneath, 0);
    int err = errno;
    ::close(fd);
    if (rc < 0) return fail("landlock: add rule: " + path.string() + ": " + errno_text(err));
    return {};
  };
  Result<void> result;
  for (const auto& p : rules.readable)
    if (result) result = add(p, read);
  for (const auto& p : rules.writable)
    if (result) result = add(p, write);
  for (const auto& p : rules.devices)
    if (result) result = add(p, device);
  if (result && ::syscall(SYS_landlock_restrict_self, ruleset, 0) < 0)
    result = fail("landlock: restrict self: " + errno_text(errno));
  ::close(ruleset);
  return result;
}

}  // namespace tokfence::sandbox
