#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <cstdio>
#include <optional>

#include "tests/unit/skip.hpp"
#include "sandbox/landlock.hpp"
#include "sandbox/linux_sandbox.hpp"

using namespace tokfence::sandbox;
namespace fs = std::filesystem;

namespace {
fs::path bin_dir() { return fs::read_symlink("/proc/self/exe").parent_path(); }

// Outside /tmp (which the sandbox replaces), so hiding is what makes things disappear.
struct ScratchDir {
  fs::path path;
  ScratchDir() {
    fs::path base = bin_dir().parent_path() / "test-artifacts";
    fs::create_directories(base);
    std::string tmpl = (base / "unit-sandbox-XXXXXX").string();
    path = ::mkdtemp(tmpl.data());
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

int wait_exit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
}  // namespace

// Whether this kernel should have Landlock, from a witness other than the syscall landlock_abi
// makes: the active security modules (securityfs) or, where that is not mounted, the kernel's
// build config. Neither readable: unknown, and the test is skipped.
std::optional<bool> kernel_says_landlock() {
  std::ifstream lsm("/sys/kernel/security/lsm");
  std::string modules;
  if (lsm && std::getline(lsm, modules)) return ("," + modules + ",").find(",landlock,") != std::string::npos;
  FILE* config = ::popen("zcat /proc/config.gz 2>/dev/null", "r");
  if (!config) return std::nullopt;
  std::string text;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, config)) text.append(buf, n);
  ::pclose(config);
  if (text.empty()) return std::nullopt;
  return text.find("\nCONFIG_SECURITY_LANDLOCK=y") != std::string::npos;
}

TEST_CASE("sandbox::landlock_abi finds Landlock where the kernel says it has it") {
  const auto expected = kernel_says_landlock();
  TOKFENCE_SKIP_UNLESS(expected.has_value(), "neither /sys/kernel/security/lsm nor /proc/config.gz is readable");
  TOKFENCE_SKIP_UNLESS(*expected, "this kernel has no Landlock (the sandbox refuses to run here)");
  CHECK(landlock_abi() >= 1);
}

TEST_CASE("sandbox::apply_landlock allows writes only below the writable paths") {
  TOKFENCE_SKIP_UNLESS(landlock_abi() >= 1, "this kernel has no Landlock");
  ScratchDir scratch;
  fs::create_directories(scratch.path / "ok");
  fs::create_directories(scratch.path / "no");
  pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    auto r = apply_landlock({{"/"}, {scratch.path / "ok"}, {"/dev/null"}});
    if (!r) ::_exit(10);
    int fd = ::open((scratch.path / "ok" / "f").c_str(), O_WRONLY | O_CREAT, 0600);
    if (fd < 0) ::_exit(11);
    ::close(fd);
    if (::open((scratch.path / "no" / "f").c_str(), O_WRONLY | O_CREAT, 0600) >= 0) ::_exit(12);
    if (errno != EACCES) ::_exit(13);
    if (::open("/dev/null", O_WRONLY) < 0) ::_exit(14);
    if (::open("/proc/self/status", O_RDONLY) < 0) ::_exit(15);  // reads stay allowed
    ::_exit(0);
  }
  CHECK(wait_exit(pid) == 0);
  CHECK(fs::exists(scratch.path / "ok" / "f"));
  CHECK_FALSE(fs::exists(scratch.path / "no" / "f"));
}

TEST_CASE("sandbox::spawn_sandboxed hides paths, limits writes, and only loopback exists") {
  TOKFENCE_SKIP_UNLESS(landlock_abi() >= 1, "this kernel has no Landlock");
  REQUIRE(missing_linux_features().empty());
  ScratchDir scratch;
  fs::path work = scratch.path / "work", hidden = scratch.path / "hidden", sockdir = scratch.path / "sock",
           other = scratch.path / "other";
  for (auto& d : {work, hidden, sockdir, other}) fs::create_directories(d);
  std::ofstream(hidden / "secret") << "s";
  // A listener standing in for the daemon's proxy socket.
  int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string sock = (sockdir / "proxy.sock").string();
  REQUIRE(sock.size() < sizeof addr.sun_path);
  std::strcpy(addr.sun_path, sock.c_str());
  REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(listener, 4) == 0);

  Policy policy;
  std::string probe = (bin_dir() / "tokfence-probe").string();
  std::string script =
      "test ! -e '" + (hidden / "secret").string() + "' || exit 21\n"
      "ls -A '" + hidden.string() + "' | grep -q . && exit 22\n"
      "echo x > '" + (work / "out").string() + "' || exit 23\n"
      "echo x 2>/dev/null > '" + (other / "out").string() + "' && exit 24\n"
      "echo x > /tmp/private || exit 25\n"
      "test \"$(cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ')\" = lo || exit 26\n"
      "test \"$(pwd)\" = '" + work.string() + "' || exit 27\n"
      "'" + probe + "' connect 127.0.0.1 7777 >/dev/null || exit 28\n"
      "test \"$(grep CapEff /proc/self/status | cut -f2)\" = 0000000000000000 || exit 29\n"
      "test \"$(grep NoNewPrivs /proc/self/status | cut -f2)\" = 1 || exit 30\n"
      "test -S /run/tokfence-proxy/proxy.sock || exit 31\n"
      "test \"$(ls /dev | tr '\\n' ' ')\" = 'fd full null ptmx pts random shm stderr stdin stdout tty urandom zero ' || exit 32\n"
      "echo x > /dev/null && head -c 1 /dev/urandom >/dev/null && echo x > /dev/shm/x || exit 33\n"
      "exit 7\n";
  policy.argv = {"/bin/sh", "-c", script};
  policy.env = {"PATH=/usr/bin:/bin"};
  policy.workdir = work;
  policy.hidden = {hidden};
  policy.proxy_socket = sock;
  policy.proxy_port = 7777;
  policy.relay = bin_dir() / "tokfence-relay";
  auto pid = spawn_sandboxed(policy, nullptr);
  REQUIRE(pid);
  CHECK(wait_exit(pid->pid) == 7);
  CHECK(fs::exists(work / "out"));
  CHECK_FALSE(fs::exists(other / "out"));
  CHECK_FALSE(fs::exists("/tmp/private"));
  // The probe's connection to 127.0.0.1:7777 inside arrived at our socket through the relay.
  int conn = ::accept(listener, nullptr, nullptr);
  CHECK(conn >= 0);
  if (conn >= 0) ::close(conn);
  ::close(listener);
}

TEST_CASE("sandbox::spawn_sandboxed brings readable paths back read-only below a hide, hides below them kept") {
  TOKFENCE_SKIP_UNLESS(landlock_abi() >= 1, "this kernel has no Landlock");
  REQUIRE(missing_linux_features().empty());
  ScratchDir scratch;
  fs::path work = scratch.path / "work", hidden = scratch.path / "hidden", sockdir = scratch.path / "sock";
  for (auto& d : {work, sockdir, hidden / "keep" / "store", hidden / "gone"}) fs::create_directories(d);
  std::ofstream(hidden / "keep" / "file") << "kept";
  std::ofstream(hidden / "keep" / "store" / "token") << "s";
  std::ofstream(hidden / "gone" / "file") << "s";
  // The command itself lives below the hide, in the readable part (as root: ~/.local/bin/claude).
  fs::copy_file("/bin/sh", hidden / "keep" / "sh");
  fs::permissions(hidden / "keep" / "sh", fs::perms::owner_all);
  const std::string h = hidden.string();
  std::string script =
      "test \"$(cat '" + h + "/keep/file')\" = kept || exit 21\n"
      "test ! -e '" + h + "/gone' || exit 22\n"
      "test ! -e '" + h + "/keep/store/token' || exit 23\n"
      "echo x 2>/dev/null > '" + h + "/keep/new' && exit 24\n"
      "echo x 2>/dev/null > '" + h + "/keep/file' && exit 25\n"
      "exit 7\n";
  Policy policy;
  policy.argv = {(hidden / "keep" / "sh").string(), "-c", script};
  policy.env = {"PATH=/usr/bin:/bin"};
  policy.workdir = work;
  policy.hidden = {hidden, hidden / "keep" / "store"};
  policy.readable = {hidden / "keep"};
  policy.proxy_socket = sockdir / "proxy.sock";
  policy.proxy_port = 7777;
  policy.relay = bin_dir() / "tokfence-relay";
  auto pid = spawn_sandboxed(policy, nullptr);
  REQUIRE(pid);
  CHECK(wait_exit(pid->pid) == 7);
  CHECK_FALSE(fs::exists(hidden / "keep" / "new"));
  CHECK(std::ifstream(hidden / "keep" / "file").get() == 'k');

  policy.readable = {hidden / "keep" / "store"};  // a hidden path itself: refused, not undone
  auto refused = spawn_sandboxed(policy, nullptr);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message.find("readable path is hidden") != std::string::npos);
}

TEST_CASE("sandbox::spawn_sandboxed reports bad policies before starting anything") {
  ScratchDir scratch;
  Policy policy;
  policy.argv = {"sh"};
  policy.workdir = scratch.path;
  policy.proxy_socket = scratch.path / "proxy.sock";
  policy.proxy_port = 7777;
  policy.relay = bin_dir() / "tokfence-relay";
  auto relative = spawn_sandboxed(policy, nullptr);
  REQUIRE_FALSE(relative);
  CHECK(relative.error().message == "sandbox: command must be an absolute path");

  policy.argv = {"/bin/sh"};
  policy.workdir = scratch.path / "missing";
  auto workdir = spawn_sandboxed(policy, nullptr);
  REQUIRE_FALSE(workdir);
  CHECK(workdir.error().message == "sandbox: workdir does not exist: " + (scratch.path / "missing").string());

  policy.workdir = scratch.path;
  policy.proxy_port = 0;
  CHECK_FALSE(spawn_sandboxed(policy, nullptr));

  policy.proxy_port = 7777;
  policy.writable = {"/dev/null"};
  auto device = spawn_sandboxed(policy, nullptr);
  REQUIRE_FALSE(device);
  CHECK(device.error().message ==
        "sandbox: writable path is below /dev, which the sandbox replaces with its own: /dev/null");
  policy.writable.clear();

  policy.relay = scratch.path / "no-relay";
  auto relay = spawn_sandboxed(policy, nullptr);
  REQUIRE_FALSE(relay);
  CHECK(relay.error().message.rfind("sandbox: tokfence-relay: ", 0) == 0);
}

TEST_CASE("sandbox::spawn_sandboxed plants files in a tmpfs over the home, never on its disk") {
  TOKFENCE_SKIP_UNLESS(landlock_abi() >= 1, "this kernel has no Landlock");
  REQUIRE(missing_linux_features().empty());
  ScratchDir scratch;
  fs::path home = scratch.path / "home", work = scratch.path / "work", sockdir = scratch.path / "sock",
           victim = scratch.path / "victim";
  for (auto& d : {home / ".config" / "other", home / ".hidden", work, sockdir, victim}) fs::create_directories(d);
  std::ofstream(home / ".config" / "other" / "keep") << "keep";
  std::ofstream(home / ".profile") << "profile";
  std::ofstream(home / ".hidden" / "secret") << "s";
  std::ofstream(home / ".env") << "REAL=1";
  fs::create_symlink(".profile", home / ".link");
  fs::create_symlink(victim, home / ".aws");  // a link on the way: that file is left out
  const std::string uid = std::to_string(::geteuid());
  std::string script =
      "test \"$(cat ~/.env)\" = PLANTED-ENV || exit 21\n"
      "test \"$(cat ~/.config/gh/hosts.yml)\" = PLANTED-GH || exit 22\n"
      "test \"$(stat -c '%a %u' ~/.config/gh/hosts.yml)\" = '600 " + uid + "' || exit 23\n"
      "test \"$(cat ~/.config/other/keep)\" = keep || exit 24\n"
      "test \"$(cat ~/.link)\" = profile || exit 25\n"
      "test ! -e ~/.hidden/secret || exit 26\n"
      "test ! -e ~/.aws/credentials || exit 27\n"
      "echo x 2>/dev/null > ~/.new && exit 28\n"
      "exit 7\n";
  Policy policy;
  policy.argv = {"/bin/sh", "-c", script};
  policy.env = {"PATH=/usr/bin:/bin", "HOME=" + home.string()};
  policy.workdir = work;
  policy.hidden = {home / ".hidden"};
  policy.proxy_socket = sockdir / "proxy.sock";
  std::ofstream(policy.proxy_socket) << "";
  policy.proxy_port = 7777;
  policy.relay = bin_dir() / "tokfence-relay";
  policy.plant_home = home;
  policy.planted = {{".env", "PLANTED-ENV"}, {".config/gh/hosts.yml", "PLANTED-GH"}, {".aws/credentials", "PLANTED-AWS"}};
  auto listing = [&] {
    std::string out;
    for (auto it = fs::recursive_directory_iterator(scratch.path); it != fs::recursive_directory_iterator(); ++it)
      out += it->path().string() + "\n";
    return out;
  };
  const std::string before = listing();
  auto pid = spawn_sandboxed(policy, nullptr);
  REQUIRE(pid);
  CHECK(wait_exit(pid->pid) == 7);
  CHECK(listing() == before);
  std::ifstream env(home / ".env");
  std::string text;
  std::getline(env, text);
  CHECK(text == "REAL=1");

  // A home the program may write would put them on the disk: refused.
  policy.workdir = home;
  auto writable = spawn_sandboxed(policy, nullptr);
  REQUIRE_FALSE(writable);
  CHECK(writable.error().message.find("it is writable in the sandbox") != std::string::npos);
  policy.workdir = work;
  policy.planted = {{"../escape", "x"}};
  CHECK_FALSE(spawn_sandboxed(policy, nullptr));
}

TEST_CASE("sandbox::spawn_sandboxed gives the program a terminal of its own devpts instance, no host pty") {
  TOKFENCE_SKIP_UNLESS(landlock_abi() >= 1, "this kernel has no Landlock");
  REQUIRE(missing_linux_features().empty());
  ScratchDir scratch;
  fs::path work = scratch.path / "work";
  fs::create_directories(work);
  // A pty of the host's, as another terminal of the user would have: it must not show inside.
  int host_master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  REQUIRE(host_master >= 0);
  REQUIRE(::grantpt(host_master) == 0);
  REQUIRE(::unlockpt(host_master) == 0);
  struct stat host_pts{};
  REQUIRE(::stat("/dev/pts", &host_pts) == 0);

  Policy policy;
  std::string script =
      "test -t 0 && test -t 1 && test -t 2 || exit 21\n"
      "test \"$(tty)\" = /dev/pts/0 || exit 22\n"
      "test \"$(ls -A /dev/pts | tr '\\n' ' ')\" = '0 ptmx ' || exit 23\n"
      "test \"$(stat -c %d /dev/pts)\" != " + std::to_string(host_pts.st_dev) + " || exit 24\n"
      "test \"$(stty size)\" = '45 123' || exit 25\n"
      "echo via-dev-tty >/dev/tty || exit 26\n"
      "echo from-the-program\n"
      "exit 7\n";
  policy.argv = {"/bin/sh", "-c", script};
  policy.env = {"PATH=/usr/bin:/bin"};
  policy.workdir = work;
  std::ofstream(scratch.path / "proxy.sock") << "";
  policy.proxy_socket = scratch.path / "proxy.sock";
  policy.proxy_port = 7777;
  policy.relay = bin_dir() / "tokfence-relay";
  TerminalSettings settings;
  settings.size.ws_row = 45;
  settings.size.ws_col = 123;
  settings.has_size = true;
  auto spawned = spawn_sandboxed(policy, &settings);
  REQUIRE(spawned);
  REQUIRE(spawned->master >= 0);
  std::string out;
  char buf[512];
  for (int i = 0; i < 100; ++i) {  // 10 s at most
    pollfd p{spawned->master, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    ssize_t n = ::read(spawned->master, buf, sizeof buf);
    if (n <= 0) break;  // EIO: the program and everything in the sandbox are gone
    out.append(buf, static_cast<std::size_t>(n));
  }
  CHECK(wait_exit(spawned->pid) == 7);
  CHECK(out.find("via-dev-tty") != std::string::npos);
  CHECK(out.find("from-the-program") != std::string::npos);
  ::close(spawned->master);
  ::close(host_master);
}
