#include "launcher/openclaw/docker.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <sstream>

namespace tokfence::launcher {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Local = asio::local::stream_protocol;

// API versions this client has been written against. 1.41 = Docker 20.10 and Podman 4/5; newer
// engines accept anything from their minimum (1.44 for Docker 29) up to their own version.
constexpr std::string_view kOldestApi = "1.41";
constexpr std::string_view kNewestApi = "1.51";

constexpr int kDefaultTimeoutMs = 30'000;
constexpr std::size_t kJsonBodyLimit = 32 * 1024 * 1024;

std::string url_encode(std::string_view text) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::vector<std::string> string_array(const json& value) {
  std::vector<std::string> out;
  if (value.is_array())
    for (const auto& item : value)
      if (item.is_string()) out.push_back(item.get<std::string>());
  return out;
}

std::map<std::string, std::string> string_map(const json& value) {
  std::map<std::string, std::string> out;
  if (value.is_object())
    for (const auto& [k, v] : value.items())
      if (v.is_string()) out[k] = v.get<std::string>();
  return out;
}

std::string json_string(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string{};
}

// The engine's error text from a JSON body ({"message": "..."}), else the raw body, shortened.
std::string engine_message(const std::string& body) {
  auto parsed = json::parse(body, nullptr, false);
  if (parsed.is_object()) {
    auto message = json_string(parsed, "message");
    if (!message.empty()) return message;
  }
  std::string text = body.substr(0, 300);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text.empty() ? "empty response" : text;
}

struct Response {
  int status = 0;
  std::string body;
  std::string api_version_header;
  std::string content_type;
};

// Splits "name:tag" / "name@digest" the way the engine's create-image endpoint wants them.
std::pair<std::string, std::string> split_image_ref(const std::string& ref) {
  if (ref.find('@') != std::string::npos) return {ref, ""};
  auto slash = ref.rfind('/');
  auto colon = ref.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash))
    return {ref.substr(0, colon), ref.substr(colon + 1)};
  return {ref, "latest"};
}

class DockerEngine final : public ContainerEngine {
 public:
  explicit DockerEngine(std::string socket_path) : socket_path_(std::move(socket_path)) {}

  Result<void> negotiate() {
    auto ping = call(http::verb::get, "/_ping", std::nullopt, 10'000, 4096, /*versioned=*/false);
    if (!ping) return std::unexpected(ping.error());
    if (ping->status != 200)
      return fail("docker: " + socket_path_ + " does not answer like a Docker engine: /_ping returned " +
                  std::to_string(ping->status));
    auto version = call(http::verb::get, "/version", std::nullopt, 10'000, 1 << 20, false);
    if (!version) return std::unexpected(version.error());
    std::string engine_api = ping->api_version_header, min_api;
    if (version->status == 200) {
      auto body = json::parse(version->body, nullptr, false);
      if (body.is_object()) {
        if (auto v = json_string(body, "ApiVersion"); !v.empty()) engine_api = v;
        min_api = json_string(body, "MinAPIVersion");
        std::string product = "Docker";
        for (const auto& component : body.value("Components", json::array()))
          if (component.is_object() && json_string(component, "Name").find("Podman") != std::string::npos)
            product = "Podman";
        description_ = product + " " + json_string(body, "Version");
        podman_ = product == "Podman";
      }
    }
    // A rootless engine runs as its user, and so owns its socket. Root's own engine, and a
    // rootful one whose socket a group may use, are owned by root.
    struct stat socket_stat{};
    if (::geteuid() != 0 && ::stat(socket_path_.c_str(), &socket_stat) == 0 && socket_stat.st_uid == ::geteuid())
      id_mapping_ = podman_ ? IdMapping::podman_rootless : IdMapping::docker_rootless;
    if (engine_api.empty()) return fail("docker: engine at " + socket_path_ + " reports no API version");
    auto chosen = negotiate_api_version(engine_api, min_api);
    if (!chosen) return std::unexpected(chosen.error());
    api_version_ = *chosen;
    if (description_.empty()) description_ = "engine API " + engine_api;
    return {};
  }

  const std::string& api_version() const override { return api_version_; }
  const std::string& engine_description() const override { return description_; }
  IdMapping id_mapping() const override { return id_mapping_; }

  Result<std::optional<ImageInfo>> inspect_image(const std::string& ref) override {
    auto r = call(http::verb::get, "/images/" + url_encode(ref) + "/json");
    if (!r) return std::unexpected(r.error());
    if (r->status == 404) return std::optional<ImageInfo>{};
    if (r->status != 200) return fail("docker: inspect image '" + ref + "': " + engine_message(r->body));
    auto body = json::parse(r->body, nullptr, false);
    if (!body.is_object()) return fail("docker: inspect image '" + ref + "': malformed response");
    ImageInfo info;
    info.id = json_string(body, "Id");
    const json config = body.value("Config", json::object());
    if (config.is_object()) {
      info.entrypoint = string_array(config.value("Entrypoint", json()));
      info.cmd = string_array(config.value("Cmd", json()));
      info.env = string_array(config.value("Env", json()));
      info.user = json_string(config, "User");
      info.working_dir = json_string(config, "WorkingDir");
      info.labels = string_map(config.value("Labels", json()));
    }
    return std::optional<ImageInfo>{std::move(info)};
  }

  Result<void> pull_image(const std::string& ref, const std::function<void(const PullProgress&)>& on_progress) override {
    auto [from, tag] = split_image_ref(ref);
    std::string target = "/images/create?fromImage=" + url_encode(from);
    if (!tag.empty()) target += "&tag=" + url_encode(tag);
    PullTracker tracker;
    std::string line_buffer;
    std::optional<Error> stream_error;
    auto handle_line = [&](std::string_view line) {
      if (line.empty() || stream_error) return;
      if (auto added = tracker.add_line(line); !added) {
        stream_error = added.error();
        return;
      }
      if (on_progress) on_progress(tracker.progress());
    };
    std::string error_body;
    // A layer can take a while to start: allow 5 minutes of silence, no total limit.
    auto status = stream(http::verb::post, target, std::nullopt, 300'000,
                         [&](std::string_view bytes) {
                           line_buffer.append(bytes);
                           std::size_t start = 0, nl;
                           while ((nl = line_buffer.find('\n', start)) != std::string::npos) {
                             handle_line(std::string_view(line_buffer).substr(start, nl - start));
                             start = nl + 1;
                           }
                           line_buffer.erase(0, start);
                           return !stream_error;
                         },
                         error_body);
    if (!status) return std::unexpected(status.error());
    if (*status >= 400) return fail("docker: pull '" + ref + "': " + engine_message(error_body));
    handle_line(line_buffer);
    if (stream_error) return fail("docker: pull '" + ref + "': " + stream_error->message);
    return {};
  }

  Result<std::string> build_image(const BuildRequest& request,
                                  const std::function<Result<std::size_t>(char*, std::size_t)>& read_context,
                                  const std::function<void(std::string_view)>& on_output) override {
    json labels = json::object();
    for (const auto& [k, v] : request.labels) labels[k] = v;
    std::string target = full_target("/build?t=" + url_encode(request.tag) + "&labels=" + url_encode(labels.dump()) +
                                         "&rm=1&forcerm=1" + (request.network_none ? "&networkmode=none" : ""),
                                     true);
    std::string what = "build image '" + request.tag + "'";
    asio::io_context ioc;
    Local::socket socket(ioc);
    // COPY of a large context can keep the engine silent for minutes.
    constexpr int kIdleMs = 600'000;
    if (auto opened = open(socket, kIdleMs); !opened) return std::unexpected(opened.error());
    http::request<http::empty_body> head{http::verb::post, target, 11};
    head.set(http::field::host, "docker");
    head.set(http::field::user_agent, "tokfence");
    head.set(http::field::content_type, "application/x-tar");
    head.chunked(true);
    boost::system::error_code ec;
    http::request_serializer<http::empty_body> serializer{head};
    http::write_header(socket, serializer, ec);
    if (ec) return std::unexpected(io_error(what, ec, kIdleMs));
    std::vector<char> chunk(256 * 1024);
    while (true) {
      auto got = read_context(chunk.data(), chunk.size());
      if (!got) return std::unexpected(got.error());
      if (*got == 0) break;
      asio::write(socket, http::make_chunk(asio::buffer(chunk.data(), *got)), ec);
      // The engine answers (and may close) early on a bad request: read its answer below.
      if (ec) break;
    }
    if (!ec) asio::write(socket, http::make_chunk_last(), ec);
    bool send_failed = static_cast<bool>(ec);

    std::string image_id, build_error, line_buffer, error_body;
    auto handle_line = [&](std::string_view line) {
      auto message = json::parse(line, nullptr, false);
      if (!message.is_object()) return;
      if (auto e = message.find("error"); e != message.end()) build_error = e->is_string() ? e->get<std::string>() : e->dump();
      if (auto s = message.find("stream"); s != message.end() && s->is_string()) {
        std::string text = s->get<std::string>();
        std::size_t start = 0, nl;
        while ((nl = text.find('\n', start)) != std::string::npos) {
          if (nl > start) on_output(std::string_view(text).substr(start, nl - start));
          start = nl + 1;
        }
        if (start < text.size()) on_output(std::string_view(text).substr(start));
      }
      if (auto aux = message.find("aux"); aux != message.end() && aux->is_object()) image_id = json_string(*aux, "ID");
    };
    beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    http::read_header(socket, buffer, parser, ec);
    if (ec) return std::unexpected(io_error(what + (send_failed ? " (sending the context)" : ""), ec, kIdleMs));
    int status = static_cast<int>(parser.get().result_int());
    std::array<char, 16384> bytes;
    while (!parser.is_done()) {
      parser.get().body().data = bytes.data();
      parser.get().body().size = bytes.size();
      http::read(socket, buffer, parser, ec);
      if (ec == http::error::need_buffer) ec = {};
      if (ec == http::error::end_of_stream || ec == asio::error::eof) break;
      if (ec) return std::unexpected(io_error(what, ec, kIdleMs));
      std::size_t got = bytes.size() - parser.get().body().size;
      if (status >= 400) {
        if (error_body.size() < 65536) error_body.append(bytes.data(), got);
        continue;
      }
      line_buffer.append(bytes.data(), got);
      std::size_t start = 0, nl;
      while ((nl = line_buffer.find('\n', start)) != std::string::npos) {
        handle_line(std::string_view(line_buffer).substr(start, nl - start));
        start = nl + 1;
      }
      line_buffer.erase(0, start);
    }
    if (status >= 400) return fail("docker: " + what + ": " + engine_message(error_body));
    if (!line_buffer.empty()) handle_line(line_buffer);
    if (!build_error.empty()) return fail("docker: " + what + ": " + build_error);
    if (image_id.empty()) {
      // Older engines report only "Successfully built <id>": look the tag up instead.
      auto info = inspect_image(request.tag);
      if (!info) return std::unexpected(info.error());
      if (!*info) return fail("docker: " + what + ": the engine reported no image");
      image_id = (*info)->id;
    }
    return image_id;
  }

  Result<std::vector<ImageSummary>> list_images(const std::string& label) override {
    json filters = {{"label", json::array({label})}};
    auto r = call(http::verb::get, "/images/json?filters=" + url_encode(filters.dump()));
    if (!r) return std::unexpected(r.error());
    if (r->status != 200) return fail("docker: list images: " + engine_message(r->body));
    auto body = json::parse(r->body, nullptr, false);
    if (!body.is_array()) return fail("docker: list images: malformed response");
    std::vector<ImageSummary> out;
    for (const auto& item : body) {
      if (!item.is_object()) continue;
      ImageSummary summary;
      summary.id = json_string(item, "Id");
      for (auto& tag : string_array(item.value("RepoTags", json())))
        if (tag != "<none>:<none>") summary.tags.push_back(std::move(tag));
      summary.labels = string_map(item.value("Labels", json()));
      if (auto size = item.find("Size"); size != item.end() && size->is_number()) summary.size = size->get<std::int64_t>();
      if (auto created = item.find("Created"); created != item.end() && created->is_number())
        summary.created = created->get<std::int64_t>();
      out.push_back(std::move(summary));
    }
    return out;
  }

  Result<void> remove_image(const std::string& ref) override {
    auto r = call(http::verb::delete_, "/images/" + url_encode(ref), std::nullopt, 120'000);
    if (!r) return std::unexpected(r.error());
    if (r->status == 200) return {};
    if (r->status == 404) return fail("docker: remove image '" + ref + "': no such image");
    return fail("docker: remove image '" + ref + "': " + engine_message(r->body));
  }

  Result<std::string> create_container(const std::string& name, const json& spec) override {
    auto r = call(http::verb::post, name.empty() ? std::string("/containers/create") : "/containers/create?name=" + url_encode(name),
                  spec, 60'000);
    if (!r) return std::unexpected(r.error());
    if (r->status != 201) return fail("docker: create container '" + name + "': " + engine_message(r->body));
    auto body = json::parse(r->body, nullptr, false);
    auto id = body.is_object() ? json_string(body, "Id") : "";
    if (id.empty()) return fail("docker: create container '" + name + "': no id in the response");
    return id;
  }

  Result<void> start_container(const std::string& id) override {
    auto r = call(http::verb::post, "/containers/" + url_encode(id) + "/start", std::nullopt, 60'000);
    if (!r) return std::unexpected(r.error());
    if (r->status != 204 && r->status != 304)
      return fail("docker: start container '" + short_id(id) + "': " + engine_message(r->body));
    return {};
  }

  Result<void> put_archive(const std::string& id, const std::string& dir, const std::string& archive) override {
    asio::io_context ioc;
    Local::socket socket(ioc);
    if (auto opened = open(socket, 60'000); !opened) return std::unexpected(opened.error());
    const std::string what = "put files into container '" + short_id(id) + "'";
    http::request<http::string_body> request{http::verb::put,
                                             full_target("/containers/" + url_encode(id) + "/archive?path=" + url_encode(dir), true), 11};
    request.set(http::field::host, "docker");
    request.set(http::field::user_agent, "tokfence");
    request.set(http::field::content_type, "application/x-tar");
    request.body() = archive;
    request.prepare_payload();
    boost::system::error_code ec;
    http::write(socket, request, ec);
    if (ec) return std::unexpected(io_error(what, ec, 60'000));
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(kJsonBodyLimit);
    http::read(socket, buffer, parser, ec);
    if (ec) return std::unexpected(io_error(what, ec, 60'000));
    // The body is the engine's error text, never the archive: safe to show.
    if (parser.get().result_int() != 200) return fail("docker: " + what + ": " + engine_message(parser.get().body()));
    return {};
  }

  Result<void> stop_container(const std::string& id, int timeout_seconds) override {
    auto r = call(http::verb::post, "/containers/" + url_encode(id) + "/stop?t=" + std::to_string(timeout_seconds),
                  std::nullopt, (timeout_seconds + 30) * 1000);
    if (!r) return std::unexpected(r.error());
    if (r->status != 204 && r->status != 304)
      return fail("docker: stop container '" + short_id(id) + "': " + engine_message(r->body));
    return {};
  }

  Result<void> restart_container(const std::string& id, int timeout_seconds) override {
    auto r = call(http::verb::post, "/containers/" + url_encode(id) + "/restart?t=" + std::to_string(timeout_seconds),
                  std::nullopt, (timeout_seconds + 60) * 1000);
    if (!r) return std::unexpected(r.error());
    if (r->status != 204) return fail("docker: restart container '" + short_id(id) + "': " + engine_message(r->body));
    return {};
  }

  Result<void> remove_container(const std::string& id, bool force) override {
    auto r = call(http::verb::delete_, "/containers/" + url_encode(id) + "?v=1" + (force ? "&force=1" : ""),
                  std::nullopt, 60'000);
    if (!r) return std::unexpected(r.error());
    if (r->status == 204 || r->status == 404) return {};
    // 409 "removal already in progress": someone else is removing it; that is what we wanted.
    if (r->status == 409 && engine_message(r->body).find("already in progress") != std::string::npos) return {};
    return fail("docker: remove container '" + short_id(id) + "': " + engine_message(r->body));
  }

  Result<std::optional<ContainerInfo>> inspect_container(const std::string& name_or_id) override {
    auto r = call(http::verb::get, "/containers/" + url_encode(name_or_id) + "/json");
    if (!r) return std::unexpected(r.error());
    if (r->status == 404) return std::optional<ContainerInfo>{};
    if (r->status != 200) return fail("docker: inspect container '" + name_or_id + "': " + engine_message(r->body));
    auto body = json::parse(r->body, nullptr, false);
    if (!body.is_object()) return fail("docker: inspect container '" + name_or_id + "': malformed response");
    ContainerInfo info;
    info.id = json_string(body, "Id");
    info.name = json_string(body, "Name");
    if (!info.name.empty() && info.name[0] == '/') info.name.erase(0, 1);
    const json state = body.value("State", json::object());
    if (state.is_object()) {
      info.state = json_string(state, "Status");
      info.running = state.value("Running", false);
      info.exit_code = state.value("ExitCode", 0);
      info.started_at = json_string(state, "StartedAt");
      info.finished_at = json_string(state, "FinishedAt");
    }
    const json config = body.value("Config", json::object());
    if (config.is_object()) {
      info.image = json_string(config, "Image");
      info.labels = string_map(config.value("Labels", json()));
    }
    return std::optional<ContainerInfo>{std::move(info)};
  }

  Result<std::vector<ContainerSummary>> list_containers(const std::string& label) override {
    json filters = {{"label", json::array({label})}};
    auto r = call(http::verb::get, "/containers/json?all=1&filters=" + url_encode(filters.dump()));
    if (!r) return std::unexpected(r.error());
    if (r->status != 200) return fail("docker: list containers: " + engine_message(r->body));
    auto body = json::parse(r->body, nullptr, false);
    if (!body.is_array()) return fail("docker: list containers: malformed response");
    std::vector<ContainerSummary> out;
    for (const auto& item : body) {
      if (!item.is_object()) continue;
      ContainerSummary summary;
      summary.id = json_string(item, "Id");
      for (auto name : string_array(item.value("Names", json()))) {
        if (!name.empty() && name[0] == '/') name.erase(0, 1);
        summary.names.push_back(std::move(name));
      }
      summary.image = json_string(item, "Image");
      summary.state = json_string(item, "State");
      summary.labels = string_map(item.value("Labels", json()));
      out.push_back(std::move(summary));
    }
    return out;
  }

  Result<int> wait_container(const std::string& id) override {
    std::string body, error_body;
    // No overall limit: a container may run for days. The engine sends nothing until it stops.
    auto status = stream(http::verb::post, "/containers/" + url_encode(id) + "/wait?condition=not-running",
                         std::nullopt, 0,
                         [&](std::string_view bytes) {
                           if (body.size() < 65536) body.append(bytes);
                           return true;
                         },
                         error_body);
    if (!status) return std::unexpected(status.error());
    if (*status != 200) return fail("docker: wait for container '" + short_id(id) + "': " + engine_message(error_body));
    auto parsed = json::parse(body, nullptr, false);
    if (!parsed.is_object() || !parsed.contains("StatusCode"))
      return fail("docker: wait for container '" + short_id(id) + "': malformed response");
    if (parsed.contains("Error") && parsed["Error"].is_object()) {
      auto message = json_string(parsed["Error"], "Message");
      if (!message.empty()) return fail("docker: wait for container '" + short_id(id) + "': " + message);
    }
    return parsed["StatusCode"].get<int>();
  }

  Result<void> stream_logs(const std::string& id, bool follow, int tail,
                           const std::function<bool(LogStream, std::string_view)>& on_frame) override {
    std::string target = "/containers/" + url_encode(id) + "/logs?stdout=1&stderr=1";
    target += follow ? "&follow=1" : "&follow=0";
    target += "&tail=" + (tail < 0 ? std::string("all") : std::to_string(tail));
    LogDemuxer demuxer(on_frame);
    bool stopped = false;
    std::string error_body;
    auto status = stream(http::verb::get, target, std::nullopt, follow ? 0 : kDefaultTimeoutMs,
                         [&](std::string_view bytes) {
                           if (!demuxer.feed(bytes)) {
                             stopped = true;
                             return false;
                           }
                           return true;
                         },
                         error_body);
    if (!status) return std::unexpected(status.error());
    if (*status != 200) return fail("docker: logs of container '" + short_id(id) + "': " + engine_message(error_body));
    if (stopped && !demuxer.error().empty())
      return fail("docker: logs of container '" + short_id(id) + "': " + demuxer.error());
    return {};
  }

 private:
  static std::string short_id(const std::string& id) { return id.size() == 64 ? id.substr(0, 12) : id; }

  // Opens a connection with send/receive timeouts (0 = none). Errors say how to fix access.
  Result<void> open(Local::socket& socket, int timeout_ms) const {
    boost::system::error_code ec;
    socket.connect(Local::endpoint(socket_path_), ec);
    if (ec) {
      int e = ec.value();
      if (e == ENOENT || e == ENOTDIR)
        return fail("docker: no engine socket at " + socket_path_ +
                    ": start Docker (e.g. 'sudo systemctl start docker'), or set DOCKER_HOST=unix:///path/to/docker.sock");
      if (e == EACCES || e == EPERM)
        return fail("docker: permission denied on " + socket_path_ +
                    ": join the 'docker' group ('sudo usermod -aG docker $USER', then log in again)");
      if (e == ECONNREFUSED)
        return fail("docker: engine not running behind " + socket_path_ + ": start Docker (e.g. 'sudo systemctl start docker')");
      return fail("docker: cannot connect to " + socket_path_ + ": " + ec.message());
    }
    if (timeout_ms > 0) {
      timeval tv{timeout_ms / 1000, static_cast<suseconds_t>((timeout_ms % 1000) * 1000)};
      ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    return {};
  }

  std::string full_target(const std::string& path, bool versioned) const {
    return versioned ? "/v" + api_version_ + path : path;
  }

  Error io_error(const std::string& what, const boost::system::error_code& ec, int timeout_ms) const {
    if (ec == asio::error::would_block || ec == asio::error::try_again || ec == asio::error::timed_out)
      return Error{"docker: " + what + ": the engine did not answer within " + std::to_string(timeout_ms / 1000) + " s"};
    return Error{"docker: " + what + ": " + ec.message()};
  }

  http::request<http::string_body> make_request(http::verb verb, const std::string& target,
                                                const std::optional<json>& body) const {
    http::request<http::string_body> request{verb, target, 11};
    request.set(http::field::host, "docker");
    request.set(http::field::user_agent, "tokfence");
    if (body) {
      request.set(http::field::content_type, "application/json");
      request.body() = body->dump();
    }
    request.prepare_payload();
    return request;
  }

  Result<Response> call(http::verb verb, const std::string& path, const std::optional<json>& body = std::nullopt,
                        int timeout_ms = kDefaultTimeoutMs, std::size_t limit = kJsonBodyLimit,
                        bool versioned = true) const {
    asio::io_context ioc;
    Local::socket socket(ioc);
    if (auto opened = open(socket, timeout_ms); !opened) return std::unexpected(opened.error());
    auto request = make_request(verb, full_target(path, versioned), body);
    boost::system::error_code ec;
    http::write(socket, request, ec);
    if (ec) return std::unexpected(io_error(std::string(request.method_string()) + " " + path, ec, timeout_ms));
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(limit);
    http::read(socket, buffer, parser, ec);
    if (ec) return std::unexpected(io_error(std::string(request.method_string()) + " " + path, ec, timeout_ms));
    auto& message = parser.get();
    Response response;
    response.status = static_cast<int>(message.result_int());
    response.body = std::move(message.body());
    response.api_version_header = std::string(message["Api-Version"]);
    response.content_type = std::string(message[http::field::content_type]);
    return response;
  }

  // Sends a request and hands the response body to `on_bytes` as it arrives. Returns the status;
  // for status >= 400 the (limited) body goes to `error_body` instead. `idle_timeout_ms` bounds
  // each read (0 = none: the engine may legitimately stay silent for hours on wait/follow).
  Result<int> stream(http::verb verb, const std::string& path, const std::optional<json>& body, int idle_timeout_ms,
                     const std::function<bool(std::string_view)>& on_bytes, std::string& error_body) const {
    asio::io_context ioc;
    Local::socket socket(ioc);
    if (auto opened = open(socket, idle_timeout_ms > 0 ? idle_timeout_ms : 0); !opened)
      return std::unexpected(opened.error());
    auto request = make_request(verb, full_target(path, true), body);
    boost::system::error_code ec;
    http::write(socket, request, ec);
    std::string what = std::string(request.method_string()) + " " + path.substr(0, path.find('?'));
    if (ec) return std::unexpected(io_error(what, ec, idle_timeout_ms));
    beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());  // boost::none keeps the default 8 MB limit in 1.74
    http::read_header(socket, buffer, parser, ec);
    if (ec) return std::unexpected(io_error(what, ec, idle_timeout_ms));
    int status = static_cast<int>(parser.get().result_int());
    std::array<char, 16384> chunk;
    while (!parser.is_done()) {
      parser.get().body().data = chunk.data();
      parser.get().body().size = chunk.size();
      // read_some: each piece goes on as it arrives (a followed log); read() would wait until the
      // 16 KiB chunk is full or the stream ends, so a foreground launch's output came at its exit.
      http::read_some(socket, buffer, parser, ec);
      if (ec == http::error::need_buffer) ec = {};
      if (ec == http::error::end_of_stream || ec == asio::error::eof) break;
      if (ec) return std::unexpected(io_error(what, ec, idle_timeout_ms));
      std::size_t got = chunk.size() - parser.get().body().size;
      if (got == 0) continue;
      std::string_view bytes(chunk.data(), got);
      if (status >= 400) {
        if (error_body.size() < 65536) error_body.append(bytes);
        continue;
      }
      if (!on_bytes(bytes)) break;
    }
    return status;
  }

  std::string socket_path_;
  std::string api_version_ = std::string(kOldestApi);
  std::string description_;
  bool podman_ = false;
  IdMapping id_mapping_ = IdMapping::same;
};

std::pair<int, int> parse_version(std::string_view text) {
  int major = 0, minor = 0;
  auto dot = text.find('.');
  std::from_chars(text.data(), text.data() + (dot == std::string_view::npos ? text.size() : dot), major);
  if (dot != std::string_view::npos) std::from_chars(text.data() + dot + 1, text.data() + text.size(), minor);
  return {major, minor};
}

}  // namespace

int compare_api_versions(std::string_view a, std::string_view b) {
  auto va = parse_version(a), vb = parse_version(b);
  if (va == vb) return 0;
  return va < vb ? -1 : 1;
}

Result<std::string> negotiate_api_version(std::string_view engine_version, std::string_view engine_min_version) {
  if (parse_version(engine_version).first == 0) return fail("docker: engine reports a malformed API version: " + std::string(engine_version));
  if (compare_api_versions(engine_version, kOldestApi) < 0)
    return fail("docker: engine API " + std::string(engine_version) + " is too old: tokfence needs " +
                std::string(kOldestApi) + " or newer (Docker 20.10+, Podman 4+)");
  if (!engine_min_version.empty() && compare_api_versions(engine_min_version, kNewestApi) > 0)
    return fail("docker: engine needs API " + std::string(engine_min_version) + " or newer, tokfence speaks up to " +
                std::string(kNewestApi) + ": update tokfence");
  if (compare_api_versions(engine_version, kNewestApi) > 0) return std::string(kNewestApi);
  return std::string(engine_version);
}

namespace {
std::string& configured_engine_socket() {
  static std::string path;
  return path;
}
}  // namespace

void set_configured_engine_socket(const std::string& path) { configured_engine_socket() = path; }

Result<std::string> docker_socket_from_env() {
  const char* host = std::getenv("DOCKER_HOST");
  if (host == nullptr || *host == '\0')
    return configured_engine_socket().empty() ? std::string("/var/run/docker.sock") : configured_engine_socket();
  std::string_view value(host);
  if (value.starts_with("unix://")) {
    std::string path(value.substr(7));
    if (path.empty() || path[0] != '/') return fail("docker: DOCKER_HOST: expected unix:///absolute/path: " + std::string(value));
    return path;
  }
  return fail("docker: DOCKER_HOST: only a local unix:// engine socket can be used (launch bind-mounts host sockets): " +
              std::string(value));
}

Result<std::unique_ptr<ContainerEngine>> connect_engine(const std::string& socket_path) {
  auto engine = std::make_unique<DockerEngine>(socket_path);
  if (auto negotiated = engine->negotiate(); !negotiated) return std::unexpected(negotiated.error());
  return std::unique_ptr<ContainerEngine>(std::move(engine));
}

bool LogDemuxer::feed(std::string_view bytes) {
  buffer_.append(bytes);
  std::size_t pos = 0;
  bool keep_going = true;
  while (keep_going && buffer_.size() - pos >= 8) {
    auto header = reinterpret_cast<const unsigned char*>(buffer_.data() + pos);
    unsigned kind = header[0];
    if (kind > 2 || header[1] != 0 || header[2] != 0 || header[3] != 0) {
      error_ = "malformed log frame header";
      buffer_.clear();
      return false;
    }
    std::uint32_t size = (std::uint32_t(header[4]) << 24) | (std::uint32_t(header[5]) << 16) |
                         (std::uint32_t(header[6]) << 8) | std::uint32_t(header[7]);
    if (buffer_.size() - pos - 8 < size) break;
    // Stream 0 (stdin) only appears on attach; treat it as stdout.
    auto stream = kind == 2 ? LogStream::stderr_stream : LogStream::stdout_stream;
    keep_going = sink_(stream, std::string_view(buffer_).substr(pos + 8, size));
    pos += 8 + size;
  }
  buffer_.erase(0, pos);
  return keep_going;
}

Result<void> PullTracker::add_line(std::string_view line) {
  auto message = json::parse(line, nullptr, false);
  if (!message.is_object()) return {};
  if (auto error = message.find("error"); error != message.end()) {
    std::string text = error->is_string() ? error->get<std::string>() : error->dump();
    return fail(text);
  }
  std::string status = json_string(message, "status");
  std::string id = json_string(message, "id");
  if (!status.empty()) status_ = status;
  // Lines without a layer id are about the image as a whole ("Pulling from ...", "Digest: ...").
  if (id.empty() || status.starts_with("Pulling from")) return {};
  auto& layer = layers_[id];
  const json detail = message.value("progressDetail", json::object());
  if (status == "Downloading" && detail.is_object()) {
    layer.current = detail.value("current", layer.current);
    layer.total = detail.value("total", layer.total);
  } else if (status == "Download complete" || status == "Pull complete" || status == "Already exists") {
    if (layer.total > 0) layer.current = layer.total;
    layer.done = true;
  }
  return {};
}

PullProgress PullTracker::progress() const {
  PullProgress p;
  p.status = status_;
  for (const auto& [id, layer] : layers_) {
    ++p.layers;
    if (layer.done) ++p.layers_done;
    p.current += layer.current;
    p.total += layer.total;
  }
  return p;
}

std::string render_progress_bar(const PullProgress& progress, int width) {
  double fraction = progress.total > 0 ? std::min(1.0, double(progress.current) / double(progress.total)) : 0.0;
  if (progress.total == 0 && progress.layers > 0) fraction = double(progress.layers_done) / progress.layers;
  int filled = static_cast<int>(fraction * width);
  std::string bar = "[" + std::string(filled, '#') + std::string(width - filled, ' ') + "]";
  char numbers[96];
  std::snprintf(numbers, sizeof numbers, " %3d%%  %.1f/%.1f MB  %d/%d layers", static_cast<int>(fraction * 100),
                progress.current / 1e6, progress.total / 1e6, progress.layers_done, progress.layers);
  return bar + numbers + (progress.status.empty() ? "" : "  " + progress.status);
}

}  // namespace tokfence::launcher
