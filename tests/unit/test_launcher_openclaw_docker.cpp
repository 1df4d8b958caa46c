#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/skip.hpp"
#include "launcher/openclaw/docker.hpp"

using namespace tokfence::launcher;

namespace {

std::string frame(int stream, const std::string& payload) {
  std::string out(8, '\0');
  out[0] = static_cast<char>(stream);
  auto n = static_cast<std::uint32_t>(payload.size());
  out[4] = static_cast<char>(n >> 24);
  out[5] = static_cast<char>(n >> 16);
  out[6] = static_cast<char>(n >> 8);
  out[7] = static_cast<char>(n);
  return out + payload;
}

// Sets an environment variable for one scope.
struct ScopedEnv {
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) ::setenv(name, value, 1);
    else ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_) ::setenv(name_, old_->c_str(), 1);
    else ::unsetenv(name_);
  }
  const char* name_;
  std::optional<std::string> old_;
};

std::string engine_socket() {
  auto socket = docker_socket_from_env();
  REQUIRE(socket);
  return *socket;
}

// A Docker engine answers on the socket (scripts/with-services starts one): else the tests that
// talk to a real engine are skipped, not failed.
bool engine_present() {
  auto socket = docker_socket_from_env();
  return socket && connect_engine(*socket).has_value();
}

}  // namespace

TEST_CASE("launcher::LogDemuxer splits frames across any chunking") {
  std::string stream = frame(1, "hello\n") + frame(2, "oops\n") + frame(1, "") + frame(1, std::string(70000, 'x'));
  for (std::size_t chunk : {std::size_t{1}, std::size_t{3}, std::size_t{8}, std::size_t{9}, std::size_t{4096}, stream.size()}) {
    std::vector<std::pair<LogStream, std::string>> frames;
    LogDemuxer demuxer([&](LogStream s, std::string_view bytes) {
      frames.emplace_back(s, std::string(bytes));
      return true;
    });
    for (std::size_t i = 0; i < stream.size(); i += chunk) REQUIRE(demuxer.feed(std::string_view(stream).substr(i, chunk)));
    REQUIRE(demuxer.pending() == 0);
    REQUIRE(frames.size() == 4);
    CHECK(frames[0] == std::pair{LogStream::stdout_stream, std::string("hello\n")});
    CHECK(frames[1] == std::pair{LogStream::stderr_stream, std::string("oops\n")});
    CHECK(frames[2].second.empty());
    CHECK(frames[3].second.size() == 70000);
  }
}

TEST_CASE("launcher::LogDemuxer rejects a malformed header and stops when asked") {
  LogDemuxer bad([](LogStream, std::string_view) { return true; });
  CHECK_FALSE(bad.feed("not a docker stream at all"));
  CHECK(bad.error() == "malformed log frame header");

  int seen = 0;
  LogDemuxer stopper([&](LogStream, std::string_view) { return ++seen < 2; });
  CHECK_FALSE(stopper.feed(frame(1, "a") + frame(1, "b") + frame(1, "c")));
  CHECK(seen == 2);
  CHECK(stopper.error().empty());
}

TEST_CASE("launcher::PullTracker sums layer progress and reports pull errors") {
  PullTracker tracker;
  REQUIRE(tracker.add_line(R"({"status":"Pulling from library/x","id":"latest"})"));
  REQUIRE(tracker.add_line(R"({"status":"Pulling fs layer","id":"aaa"})"));
  REQUIRE(tracker.add_line(R"({"status":"Downloading","progressDetail":{"current":500,"total":1000},"id":"aaa"})"));
  REQUIRE(tracker.add_line(R"({"status":"Downloading","progressDetail":{"current":100,"total":3000},"id":"bbb"})"));
  REQUIRE(tracker.add_line("garbage that is not json"));
  auto p = tracker.progress();
  CHECK(p.current == 600);
  CHECK(p.total == 4000);
  CHECK(p.layers == 2);
  CHECK(p.layers_done == 0);
  REQUIRE(tracker.add_line(R"({"status":"Pull complete","id":"aaa"})"));
  p = tracker.progress();
  CHECK(p.current == 1100);
  CHECK(p.layers_done == 1);
  CHECK(render_progress_bar(p, 10).starts_with("[##        ]  27%"));

  auto error = tracker.add_line(R"({"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"})");
  REQUIRE_FALSE(error);
  CHECK(error.error().message == "manifest unknown");
}

TEST_CASE("launcher::negotiate_api_version speaks the engine's version within 1.41..newest") {
  CHECK(*negotiate_api_version("1.41", "1.12") == "1.41");  // Docker 20.10, Podman
  CHECK(*negotiate_api_version("1.45", "1.24") == "1.45");
  CHECK(*negotiate_api_version("1.52", "1.44") == "1.51");  // newer engine: our newest, above its minimum
  auto old = negotiate_api_version("1.40", "1.12");
  REQUIRE_FALSE(old);
  CHECK(old.error().message.find("too old") != std::string::npos);
  auto too_new = negotiate_api_version("1.60", "1.55");
  REQUIRE_FALSE(too_new);
  CHECK(too_new.error().message.find("update tokfence") != std::string::npos);
  CHECK(compare_api_versions("1.9", "1.10") < 0);
}

TEST_CASE("launcher::docker_socket_from_env reads DOCKER_HOST and refuses tcp") {
  {
    ScopedEnv env("DOCKER_HOST", nullptr);
    CHECK(*docker_socket_from_env() == "/var/run/docker.sock");
  }
  {
    ScopedEnv env("DOCKER_HOST", "unix:///run/user/1000/podman/podman.sock");
    CHECK(*docker_socket_from_env() == "/run/user/1000/podman/podman.sock");
  }
  {
    ScopedEnv env("DOCKER_HOST", "tcp://10.0.0.1:2375");
    auto r = docker_socket_from_env();
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("only a local unix://") != std::string::npos);
  }
}

TEST_CASE("launcher::connect_engine explains a missing socket and a socket that is not an engine") {
  auto missing = connect_engine("/nonexistent/dir/docker.sock");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().message.find("start Docker") != std::string::npos);

  // A Unix socket that accepts and answers garbage.
  auto dir = std::filesystem::temp_directory_path() / ("tf-docker-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto path = (dir / "fake.sock").string();
  int server = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  REQUIRE(::bind(server, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(server, 4) == 0);
  std::thread responder([server] {
    int client = ::accept(server, nullptr, nullptr);
    if (client < 0) return;
    char buffer[1024];
    (void)::read(client, buffer, sizeof buffer);
    const char reply[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope";
    (void)::write(client, reply, sizeof reply - 1);
    ::close(client);
  });
  auto not_engine = connect_engine(path);
  responder.join();
  ::close(server);
  std::filesystem::remove_all(dir);
  REQUIRE_FALSE(not_engine);
  CHECK(not_engine.error().message.find("does not answer like a Docker engine") != std::string::npos);
}

TEST_CASE("launcher::DockerEngine negotiates with the real engine and reports absent things as absent") {
  TOKFENCE_SKIP_UNLESS(engine_present(), "no Docker engine answers on DOCKER_HOST or /var/run/docker.sock");
  auto engine = connect_engine(engine_socket());
  REQUIRE(engine);
  auto& e = **engine;
  CHECK(compare_api_versions(e.api_version(), "1.41") >= 0);
  CHECK_FALSE(e.engine_description().empty());

  auto image = e.inspect_image("tokfence-no-such-image:never");
  REQUIRE(image);
  CHECK_FALSE(image->has_value());
  auto container = e.inspect_container("tokfence-no-such-container-xyz");
  REQUIRE(container);
  CHECK_FALSE(container->has_value());
  auto listed = e.list_containers("org.tokfence.unit-test-label-nobody-uses");
  REQUIRE(listed);
  CHECK(listed->empty());
  // Removing or stopping something that is not there: remove is idempotent, stop says so.
  CHECK(e.remove_container("tokfence-no-such-container-xyz", true));
  auto stopped = e.stop_container("tokfence-no-such-container-xyz", 1);
  REQUIRE_FALSE(stopped);
  CHECK(stopped.error().message.find("docker: stop container") == 0);
}

TEST_CASE("launcher::DockerEngine create reports the engine's error for a missing image") {
  TOKFENCE_SKIP_UNLESS(engine_present(), "no Docker engine answers on DOCKER_HOST or /var/run/docker.sock");
  auto engine = connect_engine(engine_socket());
  REQUIRE(engine);
  auto id = (*engine)->create_container("tokfence-unit-missing-image",
                                        {{"Image", "tokfence-no-such-image:never"}, {"HostConfig", {{"NetworkMode", "none"}}}});
  REQUIRE_FALSE(id);
  CHECK(id.error().message.find("docker: create container 'tokfence-unit-missing-image': ") == 0);
  CHECK(id.error().message.find("tokfence-no-such-image") != std::string::npos);
}

TEST_CASE("launcher::DockerEngine pull reports a registry that cannot be reached") {
  TOKFENCE_SKIP_UNLESS(engine_present(), "no Docker engine answers on DOCKER_HOST or /var/run/docker.sock");
  // 127.0.0.1:1 refuses at once: the engine's error comes back, no traffic leaves the machine.
  auto engine = connect_engine(engine_socket());
  REQUIRE(engine);
  int updates = 0;
  auto pulled = (*engine)->pull_image("127.0.0.1:1/tokfence/none:latest", [&](const PullProgress&) { ++updates; });
  REQUIRE_FALSE(pulled);
  INFO(pulled.error().message);
  CHECK(pulled.error().message.find("docker: pull '127.0.0.1:1/tokfence/none:latest': ") == 0);
  CHECK(pulled.error().message.find("refused") != std::string::npos);
}
