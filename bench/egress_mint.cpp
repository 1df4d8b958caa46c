// How long the local CA (proxy/egress/local_ca.hpp) takes to mint a leaf and its TLS context for a
// new host, and to hand out a cached one. Prints numbers only (bench/README.md).
//   cmake --build BUILD --target egress_mint && BUILD/bin/egress_mint [hosts]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "core/file.hpp"
#include "proxy/egress/local_ca.hpp"

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  using clock = std::chrono::steady_clock;
  const int hosts = argc > 1 ? std::max(1, std::atoi(argv[1])) : 200;
  const fs::path home = fs::temp_directory_path() / ("tf-mint-" + tokfence::file::random_hex(12));
  fs::create_directories(home);
  fs::permissions(home, fs::perms::owner_all);
  auto t0 = clock::now();
  auto ca = tokfence::proxy::egress::LocalCa::load_or_create(home);
  const double create_ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
  if (!ca) {
    std::fprintf(stderr, "egress_mint: %s\n", ca.error().message.c_str());
    return 1;
  }
  std::vector<double> mint;
  for (int i = 0; i < hosts; ++i) {
    auto t = clock::now();
    if (!ca->server_context("host" + std::to_string(i) + ".example")) return 1;
    mint.push_back(std::chrono::duration<double, std::milli>(clock::now() - t).count());
  }
  auto t = clock::now();
  for (int i = 0; i < hosts; ++i)
    if (!ca->server_context("host" + std::to_string(i) + ".example")) return 1;
  const double cached_us = std::chrono::duration<double, std::micro>(clock::now() - t).count() / hosts;
  std::sort(mint.begin(), mint.end());
  std::printf("egress_mint: CA created in %.2f ms\n", create_ms);
  std::printf("egress_mint: leaf + TLS context for a new host, %d hosts: median %.3f ms, p95 %.3f ms, max %.3f ms\n", hosts,
              mint[mint.size() / 2], mint[mint.size() * 95 / 100], mint.back());
  std::printf("egress_mint: cached context: %.2f us per look-up\n", cached_us);
  std::error_code ec;
  fs::remove_all(home, ec);
  return 0;
}
