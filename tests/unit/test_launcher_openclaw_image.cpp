// launcher/openclaw/image: the pinned tag and the cache location, and the engine's image build,
// list and remove against the real engine with a tiny context (one file, FROM scratch + COPY: no
// registry, no network).
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <algorithm>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "launcher/openclaw/image.hpp"
#include "tests/unit/skip.hpp"

using namespace tokfence::launcher;
namespace fs = std::filesystem;

namespace {

// A 512-byte ustar header + the content, padded; enough for a context of regular files.
std::string tar_file(const std::string& name, const std::string& content) {
  char header[512] = {};
  std::memcpy(header, name.data(), name.size());
  std::snprintf(header + 100, 8, "%07o", 0644);
  std::snprintf(header + 108, 8, "%07o", 0);
  std::snprintf(header + 116, 8, "%07o", 0);
  std::snprintf(header + 124, 12, "%011o", static_cast<unsigned>(content.size()));
  std::snprintf(header + 136, 12, "%011o", 0);
  header[156] = '0';
  std::memcpy(header + 257, "ustar", 6);
  std::memcpy(header + 263, "00", 2);
  std::memset(header + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : header) sum += c;
  std::snprintf(header + 148, 8, "%06o", sum);
  std::string out(header, 512);
  out += content;
  out.append((512 - content.size() % 512) % 512, '\0');
  return out;
}

struct EnvGuard {
  std::string name;
  std::optional<std::string> old;
  EnvGuard(const char* n, const char* value) : name(n) {
    if (const char* v = std::getenv(n)) old = v;
    if (value) ::setenv(n, value, 1);
    else ::unsetenv(n);
  }
  ~EnvGuard() {
    if (old) ::setenv(name.c_str(), old->c_str(), 1);
    else ::unsetenv(name.c_str());
  }
};

}  // namespace

TEST_CASE("launcher::default_image_tag pins the validated OpenClaw version under a local name") {
  CHECK(default_image_tag() == std::string("localhost/tokfence-openclaw:") + kOpenClawVersion);
  CHECK(std::string(kOpenClawVersion) == "2026.9.6");
  CHECK(is_local_build_tag(default_image_tag("2026.1.1")));
  CHECK_FALSE(is_local_build_tag("ghcr.io/openclaw/openclaw:latest"));
  CHECK_FALSE(is_local_build_tag("localhost/tokfence-openclaw-other:1"));
  ImageBuildOptions options;
  CHECK(image_inputs(options) == std::string("openclaw@2026.9.6 ") + kNodePackage + " debian-bookworm-minbase");
  options.openclaw_version = "2026.10.1";
  CHECK(image_inputs(options).starts_with("openclaw@2026.10.1 "));
}

TEST_CASE("launcher::default_image_cache follows TOKFENCE_IMAGE_CACHE, XDG_CACHE_HOME, HOME") {
  {
    EnvGuard a("TOKFENCE_IMAGE_CACHE", "/x/cache");
    CHECK(default_image_cache() == fs::path("/x/cache"));
  }
  EnvGuard a("TOKFENCE_IMAGE_CACHE", nullptr);
  {
    EnvGuard b("XDG_CACHE_HOME", "/xdg");
    CHECK(default_image_cache() == fs::path("/xdg/tokfence/openclaw-image"));
  }
  EnvGuard b("XDG_CACHE_HOME", "relative");  // not absolute: ignored, as the XDG spec says
  EnvGuard c("HOME", "/home/u");
  CHECK(default_image_cache() == fs::path("/home/u/.cache/tokfence/openclaw-image"));
}

TEST_CASE("launcher::build_openclaw_image refuses a version that is not an npm version") {
  auto socket = docker_socket_from_env();
  REQUIRE(socket);
  auto engine = connect_engine(*socket);
  TOKFENCE_SKIP_UNLESS(engine.has_value(), "no Docker engine answers on DOCKER_HOST or /var/run/docker.sock");
  ImageBuildOptions options;
  options.openclaw_version = "1.0; rm -rf /";
  std::ostringstream progress;
  CHECK_THROWS_WITH(build_openclaw_image(**engine, options, progress), Catch::Contains("expected an npm version"));
}

TEST_CASE("launcher::DockerEngine builds an image from a streamed tar context, lists it by label, removes it") {
  auto socket = docker_socket_from_env();
  REQUIRE(socket);
  auto engine = connect_engine(*socket);
  TOKFENCE_SKIP_UNLESS(engine.has_value(), "no Docker engine answers on DOCKER_HOST or /var/run/docker.sock");
  auto& e = **engine;
  std::string tag = "localhost/tokfence-unit-build:" + std::to_string(::getpid());
  std::string context = tar_file("Dockerfile", "FROM scratch\nCOPY hello.txt /hello.txt\nCMD [\"/none\"]\n") +
                        tar_file("hello.txt", std::string(300000, 'x')) + std::string(1024, '\0');
  std::size_t offset = 0;
  std::vector<std::string> lines;
  // Small reads: the body goes out in many chunks.
  auto reader = [&](char* buffer, std::size_t size) -> tokfence::Result<std::size_t> {
    std::size_t n = std::min<std::size_t>({size, 7000, context.size() - offset});
    std::memcpy(buffer, context.data() + offset, n);
    offset += n;
    return n;
  };
  auto built = e.build_image({tag, {{"org.tokfence.unit-test", "yes"}}, true}, reader,
                             [&](std::string_view line) { lines.emplace_back(line); });
  REQUIRE(built);
  CHECK(built->starts_with("sha256:"));
  CHECK(offset == context.size());
  CHECK_FALSE(lines.empty());
  auto info = e.inspect_image(tag);
  REQUIRE(info);
  REQUIRE(*info);
  CHECK((*info)->labels["org.tokfence.unit-test"] == "yes");

  // Built again: the engine's layer cache answers.
  offset = 0;
  lines.clear();
  auto again = e.build_image({tag, {{"org.tokfence.unit-test", "yes"}}, true}, reader,
                             [&](std::string_view line) { lines.emplace_back(line); });
  REQUIRE(again);
  bool cached = false;
  for (const auto& line : lines) cached = cached || line.find("Using cache") != std::string::npos;
  CHECK(cached);

  auto listed = e.list_images("org.tokfence.unit-test=yes");
  REQUIRE(listed);
  bool found = false;
  for (const auto& image : *listed)
    for (const auto& t : image.tags) found = found || t == tag;
  CHECK(found);
  REQUIRE(e.remove_image(tag));
  auto gone = e.remove_image(tag);
  REQUIRE_FALSE(gone);
  CHECK(gone.error().message.find("no such image") != std::string::npos);
}

TEST_CASE("launcher::DockerEngine build reports the builder's error") {
  auto socket = docker_socket_from_env();
  REQUIRE(socket);
  auto engine = connect_engine(*socket);
  TOKFENCE_SKIP_UNLESS(engine.has_value(), "no Docker engine answers on DOCKER_HOST or /var/run/docker.sock");
  std::string context = tar_file("Dockerfile", "FROM scratch\nCOPY missing.txt /x\n") + std::string(1024, '\0');
  std::size_t offset = 0;
  auto reader = [&](char* buffer, std::size_t size) -> tokfence::Result<std::size_t> {
    std::size_t n = std::min(size, context.size() - offset);
    std::memcpy(buffer, context.data() + offset, n);
    offset += n;
    return n;
  };
  auto built = (*engine)->build_image({"localhost/tokfence-unit-bad:1", {}, true}, reader, [](std::string_view) {});
  REQUIRE_FALSE(built);
  CHECK(built.error().message.find("docker: build image 'localhost/tokfence-unit-bad:1'") != std::string::npos);
  CHECK(built.error().message.find("missing.txt") != std::string::npos);
}
