#pragma once
// ContainerEngine: the few Docker Engine API calls `tokfence launch` needs, spoken directly over the
// engine's Unix socket (no `docker` CLI). Works with Docker 20.10 (API 1.41) through current
// releases (which refuse API versions below 1.44) and with Podman's Docker-compatible API: the
// version is negotiated from `GET /_ping` and `GET /version` at connect time.
//
// Every call has a timeout (socket send/receive timeouts), every response body a size limit; the
// streaming calls (pull, logs, wait) take a callback and can run as long as the engine streams.
// Errors read `docker: <what>: <engine message>` and, for an unreachable engine, say how to fix it.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace tokfence::launcher {

using json = nlohmann::json;

// The engine's socket: `unix://` path from DOCKER_HOST when set, else /var/run/docker.sock.
// Errors for a DOCKER_HOST that is not a unix:// URL (tcp:// is refused: a remote engine could not
// bind-mount tokfence's sockets).
Result<std::string> docker_socket_from_env();
// The socket docker_socket_from_env() answers when DOCKER_HOST is unset: `[launch] engine_socket`,
// set once by the CLI before any engine is used (empty = /var/run/docker.sock).
void set_configured_engine_socket(const std::string& path);

struct ImageInfo {
  std::string id;
  std::vector<std::string> entrypoint;  // Config.Entrypoint (may be empty)
  std::vector<std::string> cmd;         // Config.Cmd (may be empty)
  std::vector<std::string> env;         // Config.Env, "K=V"
  std::string user;                     // Config.User
  std::string working_dir;              // Config.WorkingDir
  std::map<std::string, std::string> labels;  // Config.Labels
};

struct ContainerInfo {
  std::string id;
  std::string name;  // without the leading '/'
  std::string image;
  std::string state;  // created|running|paused|restarting|removing|exited|dead
  bool running = false;
  int exit_code = 0;
  std::string started_at, finished_at;
  std::map<std::string, std::string> labels;
};

struct ContainerSummary {
  std::string id;
  std::vector<std::string> names;  // without the leading '/'
  std::string image;
  std::string state;
  std::map<std::string, std::string> labels;
};

struct ImageSummary {
  std::string id;
  std::vector<std::string> tags;  // RepoTags ("name:tag")
  std::map<std::string, std::string> labels;
  std::int64_t size = 0;     // bytes
  std::int64_t created = 0;  // Unix time
};

// POST /build: a Dockerfile-only context, built with the engine's classic builder.
struct BuildRequest {
  std::string tag;
  std::map<std::string, std::string> labels;
  bool network_none = true;  // RUN steps (if any) get no network
};

enum class LogStream { stdout_stream = 1, stderr_stream = 2 };

// Pull progress, summed over the layers the engine reports so far.
struct PullProgress {
  std::string status;           // last status line ("Downloading", "Pull complete", ...)
  std::int64_t current = 0;     // bytes downloaded, all layers
  std::int64_t total = 0;       // bytes to download, layers whose size is known
  int layers = 0, layers_done = 0;
};

class ContainerEngine {
 public:
  virtual ~ContainerEngine() = default;
  // "1.41" etc: the API version every request is sent with.
  virtual const std::string& api_version() const = 0;
  // Engine name and version for messages ("Docker 20.10.24", "Podman 5.0.1").
  virtual const std::string& engine_description() const = 0;
  // How container user ids land on the host. `same`: a rootful engine, container uid N is host
  // uid N. `podman_rootless`: Podman running as the calling user (its socket is ours): container
  // ids map to subordinate ids unless the container asks for UsernsMode "keep-id", which maps
  // our own uid and gid to themselves. `docker_rootless`: the same for rootless Docker, which has
  // no keep-id.
  enum class IdMapping { same, podman_rootless, docker_rootless };
  virtual IdMapping id_mapping() const = 0;

  // nullopt when the image is not present locally.
  virtual Result<std::optional<ImageInfo>> inspect_image(const std::string& ref) = 0;
  // Pulls `ref`; `on_progress` is called for every progress message. Errors carry the engine's
  // error line (e.g. "manifest unknown").
  virtual Result<void> pull_image(const std::string& ref, const std::function<void(const PullProgress&)>& on_progress) = 0;

  // Builds an image from the tar context that `read_context` yields (it fills the buffer and
  // returns the byte count, 0 at the end, or an error); the body is sent chunked as it is read.
  // `on_output` gets each line of the builder's output ("Step 2/6 : COPY ...", " ---> Using
  // cache"). Returns the new image's id. Errors carry the builder's error line.
  virtual Result<std::string> build_image(const BuildRequest& request,
                                          const std::function<Result<std::size_t>(char*, std::size_t)>& read_context,
                                          const std::function<void(std::string_view)>& on_output) = 0;
  // Images carrying `label` (key, or key=value).
  virtual Result<std::vector<ImageSummary>> list_images(const std::string& label) = 0;
  // Removes the image `ref` (a tag removes that tag; the layers go when no tag is left). Absent is
  // an error whose message contains "no such image".
  virtual Result<void> remove_image(const std::string& ref) = 0;

  // POST /containers/create?name=<name> with `spec` as the body (an empty `name`: the engine picks
  // one); returns the id. A name conflict
  // comes back as an error whose message contains "already in use".
  virtual Result<std::string> create_container(const std::string& name, const json& spec) = 0;
  virtual Result<void> start_container(const std::string& id) = 0;
  // PUT /containers/{id}/archive?path=<dir>: extracts the tar `archive` into the existing directory
  // `dir` of the container (created or stopped; a bind mount there receives the files). The engine
  // extracts within the container's view and replaces what is at each name instead of following it.
  virtual Result<void> put_archive(const std::string& id, const std::string& dir, const std::string& archive) = 0;
  // Asks the container to stop (its stop signal, then SIGKILL after `timeout_seconds`). A container
  // that is already stopped is not an error.
  virtual Result<void> stop_container(const std::string& id, int timeout_seconds) = 0;
  virtual Result<void> restart_container(const std::string& id, int timeout_seconds) = 0;
  // Removes the container (with `force`, also a running one) and its anonymous volumes. A container
  // that is already gone is not an error.
  virtual Result<void> remove_container(const std::string& id, bool force) = 0;
  // nullopt when no container has that name or id.
  virtual Result<std::optional<ContainerInfo>> inspect_container(const std::string& name_or_id) = 0;
  // Containers (running or not) carrying `label` (key, or key=value).
  virtual Result<std::vector<ContainerSummary>> list_containers(const std::string& label) = 0;
  // Blocks until the container is not running; returns its exit status.
  virtual Result<int> wait_container(const std::string& id) = 0;
  // Streams stdout/stderr: the last `tail` lines (-1 = all), then with `follow` everything until the
  // container stops. `on_frame` returns false to stop early. For containers created with Tty=false
  // (which launch always does) the stream is demultiplexed.
  virtual Result<void> stream_logs(const std::string& id, bool follow, int tail,
                                   const std::function<bool(LogStream, std::string_view)>& on_frame) = 0;
};

// Connects to the engine at `socket_path` and negotiates the API version. Errors name the fix:
// socket absent (start Docker), permission denied (join the `docker` group), not an engine, or an
// engine too old (API < 1.41).
Result<std::unique_ptr<ContainerEngine>> connect_engine(const std::string& socket_path);

// --- pure helpers, exposed for unit tests ---------------------------------------------------

// Splits a Docker attach/logs stream (8-byte headers: [stream, 0, 0, 0, size u32 big-endian]) into
// frames. Bytes may arrive in any chunking.
class LogDemuxer {
 public:
  using Sink = std::function<bool(LogStream, std::string_view)>;
  explicit LogDemuxer(Sink sink) : sink_(std::move(sink)) {}
  // Returns false once the sink asked to stop, or on a malformed header (then error() is set).
  bool feed(std::string_view bytes);
  const std::string& error() const { return error_; }
  // Bytes of an unfinished frame (non-zero when a stream ended mid-frame).
  std::size_t pending() const { return buffer_.size(); }

 private:
  Sink sink_;
  std::string buffer_;
  std::string error_;
};

// Folds the JSON lines of a pull stream into a PullProgress (one line at a time).
class PullTracker {
 public:
  // Returns an error for an {"error": ...} line; ignores lines it does not understand.
  Result<void> add_line(std::string_view line);
  PullProgress progress() const;

 private:
  struct Layer {
    std::int64_t current = 0, total = 0;
    bool done = false;
  };
  std::map<std::string, Layer> layers_;
  std::string status_;
};

// "[#########           ]  45%  12.3/27.0 MB  Downloading" for a terminal line.
std::string render_progress_bar(const PullProgress& progress, int width = 30);

// Picks the API version to speak from what the engine reported: its own version capped at the
// newest this client knows, and at least 1.41. Errors when the engine is older than 1.41 or its
// minimum is newer than this client's newest.
Result<std::string> negotiate_api_version(std::string_view engine_version, std::string_view engine_min_version);

// Compares "1.41" style versions numerically.
int compare_api_versions(std::string_view a, std::string_view b);

}  // namespace tokfence::launcher
