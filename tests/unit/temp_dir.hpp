#pragma once
// A private scratch directory for one test, removed with everything in it when the test ends.
#include <stdlib.h>

#include <filesystem>
#include <string>

#include <catch2/catch.hpp>

namespace tokfence::test {

struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& prefix = "tokfence-unit") {
    std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

}  // namespace tokfence::test
