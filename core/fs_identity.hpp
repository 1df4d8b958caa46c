#pragma once
// statfs's file system id as one number. `tokfence launch` records it for each bind source and the
// container's relay compares it (--expect-mount), two binaries that must encode it alike: one
// definition, header-only (the relay links nothing of core but what it compiles in).
#include <sys/statfs.h>

#include <cstdint>
#include <cstring>

namespace tokfence {

inline std::uint64_t fsid_number(const struct statfs& fs) {
  std::uint32_t halves[2];
  static_assert(sizeof halves == sizeof fs.f_fsid);
  std::memcpy(halves, &fs.f_fsid, sizeof halves);
  return (static_cast<std::uint64_t>(halves[0]) << 32) | halves[1];
}

}  // namespace tokfence
