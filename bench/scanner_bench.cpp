// Micro-benchmark of proxy/immune's SecretScanner (bench/README.md, "scanner_bench"): ns per byte
// and per call of find() on realistic request bodies (chat JSON around this repository's own
// source and a base64 blob, as coding agents send them) of 1 KiB, 64 KiB and 1 MiB, with 0, 10 and
// 1,000 needles (decoy sets from make_decoys plus vault-key-shaped values), none of which occurs in
// the body: the common case, a full scan. Also StreamScan in 16 KiB chunks and the build time of a
// scanner. Prints numbers; asserts nothing about speed.
//   cmake --build BUILD --target scanner_bench && BUILD/bin/scanner_bench [--min-ms N]
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/decoys.hpp"
#include "proxy/immune/scanner.hpp"

using namespace tokfence;
using namespace tokfence::immune;
using Clock = std::chrono::steady_clock;

namespace {

std::string random_of(std::mt19937_64& rng, std::string_view alphabet, std::size_t n) {
  std::string s(n, ' ');
  for (auto& c : s) c = alphabet[rng() % alphabet.size()];
  return s;
}

// A chat body of about `size` bytes: system prompt, then user/tool messages with source files and
// a base64 blob, cut to size inside the last message so it stays JSON-shaped text.
std::string body_of(std::size_t size, std::mt19937_64& rng) {
  namespace fs = std::filesystem;
  const fs::path root = BENCH_SOURCE_DIR;
  std::string code;
  for (const char* file : {"proxy/http/server.cpp", "proxy/http/http1.cpp", "core/file.cpp", "core/config.cpp",
                           "vault/sealed_file.cpp", "README.md"}) {
    std::ifstream in(root / file, std::ios::binary);
    code += std::string(std::istreambuf_iterator<char>(in), {});
  }
  code += random_of(rng, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", 8192);
  nlohmann::json messages = nlohmann::json::array();
  messages.push_back({{"role", "system"}, {"content", "You are a coding agent. Use the tools to edit files."}});
  std::size_t have = 200;
  for (std::size_t at = 0; have < size; at = (at + 4000) % (code.size() - 4000)) {
    messages.push_back({{"role", "tool"}, {"content", code.substr(at, 4000)}});
    have += 4100;
  }
  std::string body = nlohmann::json{{"model", "gpt-5-codex"}, {"stream", true}, {"messages", messages}}.dump();
  body.resize(size);
  return body;
}

std::vector<Needle> needles_of(std::size_t count, std::mt19937_64& rng) {
  static constexpr std::string_view kUrlSafe = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::vector<Needle> out;
  std::uint32_t session = 0;
  while (out.size() + 7 <= count * 98 / 100 || (count < 100 && out.size() + 7 <= count)) {
    for (auto& v : make_decoys().values) out.push_back({v, NeedleKind::decoy, session});
    ++session;
  }
  for (std::uint32_t p = 0; out.size() < count; ++p)
    out.push_back({p % 2 ? "sk-ant-api03-" + random_of(rng, kUrlSafe, 93) + "AA"
                         : "sk-proj-" + random_of(rng, kUrlSafe, 74) + "T3BlbkFJ" + random_of(rng, kUrlSafe, 74),
                   NeedleKind::vault_key, p});
  return out;
}

// This thread's CPU time in ns: on a machine shared with builds, wall time counts other processes.
double cpu_ns() {
  timespec ts;
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

// Runs `f` in batches until `min_ms` of CPU time have passed; returns CPU ns per run (the best of
// the batches, which is the least disturbed by other processes' cache use).
template <class F>
double time_ns(F&& f, double min_ms) {
  std::size_t batch = 1;
  for (double t = cpu_ns(); cpu_ns() - t < 1e6; batch *= 2)  // a batch of about 1 ms or more
    for (std::size_t i = 0; i < batch; ++i) f();
  double best = 1e300, total = 0;
  while (total < min_ms * 1e6) {
    const double t0 = cpu_ns();
    for (std::size_t i = 0; i < batch; ++i) f();
    const double t = cpu_ns() - t0;
    total += t;
    best = std::min(best, t / static_cast<double>(batch));
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  double min_ms = 300;
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--min-ms") == 0 && i + 1 < argc) min_ms = std::atof(argv[++i]);

  std::mt19937_64 rng(42);
  const std::size_t sizes[] = {1024, 64 * 1024, 1024 * 1024};
  std::vector<std::string> bodies;
  for (std::size_t s : sizes) bodies.push_back(body_of(s, rng));

  std::printf("SecretScanner::find on chat JSON bodies with source code, no needle present (ns/byte, ns/call)\n");
  std::printf("%-8s %-10s %10s %12s %10s\n", "needles", "body", "ns/byte", "ns/call", "build µs");
  volatile bool sink = false;
  for (std::size_t count : {std::size_t{0}, std::size_t{10}, std::size_t{1000}}) {
    auto needles = needles_of(count, rng);
    const auto t0 = Clock::now();
    const SecretScanner scanner(std::move(needles));
    const double build_us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    for (std::size_t i = 0; i < bodies.size(); ++i) {
      if (scanner.find(bodies[i])) {
        std::fprintf(stderr, "scanner_bench: unexpected hit in the body\n");
        return 1;
      }
      const double ns = time_ns([&] { sink = scanner.find(bodies[i]).has_value(); }, min_ms);
      std::printf("%-8zu %-10zu %10.3f %12.0f %10.0f\n", scanner.size(), bodies[i].size(),
                  ns / static_cast<double>(bodies[i].size()), ns, build_us);
    }
    // The streaming path on the 1 MiB body, 16 KiB chunks (a response relayed as it arrives).
    const std::string& big = bodies.back();
    const double ns = time_ns(
        [&] {
          StreamScan s;
          for (std::size_t at = 0; at < big.size(); at += 16384)
            sink = s.feed(scanner, std::string_view(big).substr(at, 16384)).has_value();
        },
        min_ms);
    std::printf("%-8zu %-10s %10.3f %12.0f\n", scanner.size(), "stream16K", ns / static_cast<double>(big.size()), ns);
  }
  return 0;
}
