// core/file: every promise of the safe file module, checked against the links an agent could plant in a
// directory it can write (symlinks at target names, symlinked directory components, hard links, sprayed
// temporary names, non-socket / foreign sockets, links leading out of a tree being removed).
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <set>

#include "core/file.hpp"
#include "core/home.hpp"
#include "temp_dir.hpp"

using namespace tokfence;
namespace fs = std::filesystem;

namespace {

using test::TempDir;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void spit(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary);
  out << s;
}

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::lstat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

file::Fd open_dir(const fs::path& p) {
  int fd = ::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  return file::Fd(fd);
}

// A listening Unix socket at `path` (closed on destruction).
struct Listener {
  file::Fd fd;
  explicit Listener(const fs::path& path) {
    fd = file::Fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(fd);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd.get(), 4) == 0);
  }
};

}  // namespace

TEST_CASE("core::file write_atomic_at replaces a symlink planted at the target name, never follows it") {
  TempDir t;
  fs::create_directory(t.path / "d");
  spit(t.path / "victim", "precious");
  ::chmod((t.path / "victim").c_str(), 0644);
  fs::create_symlink(t.path / "victim", t.path / "d" / "config.toml");
  auto dir = open_dir(t.path / "d");

  REQUIRE(file::write_atomic_at(dir.get(), "config.toml", "new", {.mode = 0640, .owner = std::nullopt}));

  CHECK(slurp(t.path / "victim") == "precious");
  CHECK(mode_of(t.path / "victim") == 0644);
  CHECK_FALSE(fs::is_symlink(t.path / "d" / "config.toml"));
  CHECK(slurp(t.path / "d" / "config.toml") == "new");
  CHECK(mode_of(t.path / "d" / "config.toml") == 0640);
}

TEST_CASE("core::file write_atomic_at leaves the other inode of a planted hard link unchanged") {
  TempDir t;
  spit(t.path / "victim", "precious");
  ::chmod((t.path / "victim").c_str(), 0644);
  fs::create_hard_link(t.path / "victim", t.path / "target");
  auto dir = open_dir(t.path);

  REQUIRE(file::write_atomic_at(dir.get(), "target", "new"));

  CHECK(slurp(t.path / "victim") == "precious");
  CHECK(mode_of(t.path / "victim") == 0644);
  CHECK(fs::hard_link_count(t.path / "victim") == 1);
  CHECK(slurp(t.path / "target") == "new");
}

TEST_CASE("core::file write_atomic_at ignores sprayed predictable temp names and uses random O_EXCL ones") {
  TempDir t;
  spit(t.path / "victim", "precious");
  auto dir = open_dir(t.path);
  // What an agent would spray: the old `<name>.tmp<pid>` scheme and a few other guesses.
  for (int pid = 1; pid < 300; ++pid) fs::create_symlink(t.path / "victim", t.path / ("f.tmp" + std::to_string(pid)));
  fs::create_symlink(t.path / "victim", t.path / "f.tmp");
  fs::create_symlink(t.path / "victim", t.path / ".f.tmp");

  int in = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  REQUIRE(in >= 0);
  file::Fd inotify(in);
  REQUIRE(::inotify_add_watch(in, t.path.c_str(), IN_CREATE) >= 0);
  REQUIRE(file::write_atomic_at(dir.get(), "f", "one"));
  REQUIRE(file::write_atomic_at(dir.get(), "f", "two"));

  std::vector<std::string> created;
  alignas(inotify_event) char buffer[8192];
  ssize_t n = ::read(in, buffer, sizeof buffer);
  REQUIRE(n > 0);
  for (char* p = buffer; p < buffer + n;) {
    auto* ev = reinterpret_cast<inotify_event*>(p);
    if (ev->len) created.emplace_back(ev->name);
    p += sizeof(inotify_event) + ev->len;
  }
  REQUIRE(created.size() == 2);
  CHECK(created[0] != created[1]);
  for (const auto& name : created) {
    CHECK(name.rfind(".f.tmp-", 0) == 0);
    CHECK(name.size() == std::string(".f.tmp-").size() + 24);
  }
  CHECK(slurp(t.path / "victim") == "precious");
  CHECK(slurp(t.path / "f") == "two");
  // Nothing left behind: only the target, the victim and the planted links.
  size_t entries = 0;
  for (auto& e : fs::directory_iterator(t.path)) {
    (void)e;
    ++entries;
  }
  CHECK(entries == 2 + 299 + 2);
}

TEST_CASE("core::file write_atomic_at sets the mode on the descriptor whatever the umask") {
  TempDir t;
  auto dir = open_dir(t.path);
  mode_t old = ::umask(0);
  auto ok = file::write_atomic_at(dir.get(), "a", "x", {.mode = 0600, .owner = std::nullopt});
  ::umask(old);
  REQUIRE(ok);
  CHECK(mode_of(t.path / "a") == 0600);
  old = ::umask(0077);
  ok = file::write_atomic_at(dir.get(), "b", "x", {.mode = 0644, .owner = std::nullopt});
  ::umask(old);
  REQUIRE(ok);
  CHECK(mode_of(t.path / "b") == 0644);
}

TEST_CASE("core::file write_atomic_at refuses a directory at the target and bad names, leaving nothing") {
  TempDir t;
  fs::create_directory(t.path / "d");
  spit(t.path / "d" / "inside", "keep");
  auto dir = open_dir(t.path);
  auto r = file::write_atomic_at(dir.get(), "d", "x");
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("is a directory") != std::string::npos);
  CHECK(slurp(t.path / "d" / "inside") == "keep");
  CHECK_FALSE(file::write_atomic_at(dir.get(), "a/b", "x"));
  CHECK_FALSE(file::write_atomic_at(dir.get(), "..", "x"));
  CHECK_FALSE(file::write_atomic_at(dir.get(), "", "x"));
  size_t entries = 0;
  for (auto& e : fs::directory_iterator(t.path)) {
    (void)e;
    ++entries;
  }
  CHECK(entries == 1);
}

TEST_CASE("core::file open_dir_beneath refuses a symlinked directory component below the trusted root") {
  TempDir t;
  fs::create_directories(t.path / "root" / "a");
  fs::create_directories(t.path / "elsewhere" / "b");
  fs::create_directory_symlink(t.path / "elsewhere", t.path / "root" / "a" / "link");

  auto r = file::open_dir_beneath(t.path / "root", t.path / "root" / "a" / "link" / "b");
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("link: is a symlink") != std::string::npos);
  // Create::yes does not create through the link either.
  auto c = file::open_dir_beneath(t.path / "root", t.path / "root" / "a" / "link" / "new", file::Create::yes);
  REQUIRE_FALSE(c);
  CHECK_FALSE(fs::exists(t.path / "elsewhere" / "new"));
  // A non-directory component is refused too.
  spit(t.path / "root" / "a" / "file", "x");
  CHECK_FALSE(file::open_dir_beneath(t.path / "root", t.path / "root" / "a" / "file"));
  // Outside the root or with `..`: refused.
  CHECK_FALSE(file::open_dir_beneath(t.path / "root", t.path / "elsewhere"));
  CHECK_FALSE(file::open_dir_at(open_dir(t.path / "root").get(), "a/../../elsewhere"));
}

TEST_CASE("core::file open_dir_beneath resolves above the root normally and creates missing dirs 0700") {
  TempDir t;
  fs::create_directories(t.path / "real" / "root");
  fs::create_directory_symlink(t.path / "real", t.path / "alias");  // above the trusted root: fine
  auto r = file::open_dir_beneath(t.path / "alias" / "root", t.path / "alias" / "root" / "x" / "y",
                                  file::Create::yes);
  REQUIRE(r);
  CHECK(fs::is_directory(t.path / "real" / "root" / "x" / "y"));
  CHECK(mode_of(t.path / "real" / "root" / "x") == 0700);
  CHECK(mode_of(t.path / "real" / "root" / "x" / "y") == 0700);
  REQUIRE(file::write_atomic_at(r->get(), "f", "ok"));
  CHECK(slurp(t.path / "real" / "root" / "x" / "y" / "f") == "ok");
}

TEST_CASE("core::file open_dir_beneath refuses a component with the wrong owner") {
  TempDir t;
  fs::create_directories(t.path / "root" / "a");
  auto r = file::open_dir_beneath(t.path / "root", t.path / "root" / "a", file::Create::no, ::geteuid() + 1);
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("is owned by uid") != std::string::npos);
  if (::geteuid() == 0) {
    REQUIRE(::chown((t.path / "root" / "a").c_str(), 65534, 65534) == 0);
    CHECK_FALSE(file::open_dir_beneath(t.path / "root", t.path / "root" / "a"));
  }
}

TEST_CASE("core::file write_atomic refuses a symlinked parent directory") {
  TempDir t;
  fs::create_directory(t.path / "real");
  fs::create_directory_symlink(t.path / "real", t.path / "link");
  auto r = file::write_atomic(t.path / "link" / "f", "x");
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("is a symlink") != std::string::npos);
  CHECK_FALSE(fs::exists(t.path / "real" / "f"));
  REQUIRE(file::write_atomic(t.path / "real" / "f", "x"));
  CHECK(slurp(t.path / "real" / "f") == "x");
}

TEST_CASE("core::file read_at refuses a symlink, a FIFO and an oversized file") {
  TempDir t;
  spit(t.path / "victim", "secret");
  fs::create_symlink(t.path / "victim", t.path / "link");
  REQUIRE(::mkfifo((t.path / "fifo").c_str(), 0600) == 0);
  spit(t.path / "big", std::string(100, 'x'));
  auto dir = open_dir(t.path);
  CHECK_FALSE(file::read_at(dir.get(), "link"));
  CHECK_FALSE(file::read_at(dir.get(), "fifo"));  // would hang without O_NONBLOCK
  CHECK_FALSE(file::read_at(dir.get(), "big", 99));
  auto ok = file::read_at(dir.get(), "big", 100);
  REQUIRE(ok);
  CHECK(ok->size() == 100);
}

TEST_CASE("core::file connect_unix_at refuses a symlink, a non-socket and the wrong owner") {
  TempDir t;
  Listener real(t.path / "real.sock");
  fs::create_symlink(t.path / "real.sock", t.path / "link.sock");
  spit(t.path / "plain", "x");
  auto dir = open_dir(t.path);

  auto ok = file::connect_unix_at(dir.get(), "real.sock", ::geteuid());
  REQUIRE(ok);
  auto link = file::connect_unix_at(dir.get(), "link.sock");
  REQUIRE_FALSE(link);
  CHECK(link.error().message.find("symlink") != std::string::npos);
  auto plain = file::connect_unix_at(dir.get(), "plain");
  REQUIRE_FALSE(plain);
  CHECK(plain.error().message.find("is not a socket") != std::string::npos);
  auto owner = file::connect_unix_at(dir.get(), "real.sock", ::geteuid() + 1);
  REQUIRE_FALSE(owner);
  CHECK(owner.error().message.find("is owned by uid") != std::string::npos);
}

TEST_CASE("core::file remove_tree_at never follows a link out of the tree") {
  TempDir t;
  fs::create_directories(t.path / "outside" / "sub");
  spit(t.path / "outside" / "keep", "keep");
  spit(t.path / "outside" / "sub" / "keep2", "keep");
  fs::create_directories(t.path / "tree" / "a" / "b");
  spit(t.path / "tree" / "a" / "b" / "f", "x");
  fs::create_directory_symlink(t.path / "outside", t.path / "tree" / "a" / "dirlink");
  fs::create_symlink(t.path / "outside" / "keep", t.path / "tree" / "filelink");
  fs::create_hard_link(t.path / "outside" / "keep", t.path / "tree" / "a" / "hard");
  fs::create_directories(t.path / "tree" / "locked");
  ::chmod((t.path / "tree" / "locked").c_str(), 0);
  auto dir = open_dir(t.path);

  REQUIRE(file::remove_tree_at(dir.get(), "tree"));
  CHECK_FALSE(fs::exists(t.path / "tree"));
  CHECK(slurp(t.path / "outside" / "keep") == "keep");
  CHECK(slurp(t.path / "outside" / "sub" / "keep2") == "keep");
  // A symlink passed as the tree itself is unlinked, not entered.
  fs::create_directory_symlink(t.path / "outside", t.path / "top");
  REQUIRE(file::remove_tree_at(dir.get(), "top"));
  CHECK_FALSE(fs::exists(fs::symlink_status(t.path / "top")));
  CHECK(fs::exists(t.path / "outside" / "keep"));
  // Missing is success.
  CHECK(file::remove_tree_at(dir.get(), "never-there"));
}

TEST_CASE("core::file helpers: random names, single components, self_exe") {
  CHECK(file::random_hex(24).size() == 24);
  CHECK(file::random_hex(24) != file::random_hex(24));
  CHECK(file::is_single_component("a.toml"));
  CHECK_FALSE(file::is_single_component("a/b"));
  CHECK_FALSE(file::is_single_component(".."));
  CHECK_FALSE(file::is_single_component(""));
  CHECK(fs::exists(file::self_exe()));
  file::Fd a(::dup(0));
  int raw = a.get();
  file::Fd b(std::move(a));
  CHECK_FALSE(a);
  CHECK(b.get() == raw);
}

TEST_CASE("core::home ensure_private_dir refuses a symlink at the directory and never chmods through it") {
  TempDir t;
  fs::create_directory(t.path / "victim");
  ::chmod((t.path / "victim").c_str(), 0755);
  fs::create_directory_symlink(t.path / "victim", t.path / "link");
  auto r = ensure_private_dir(t.path / "link");
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("is a symlink") != std::string::npos);
  CHECK(mode_of(t.path / "victim") == 0755);
  CHECK_FALSE(ensure_private_dir(t.path / "link/"));  // a trailing slash must not make it follow
  CHECK(mode_of(t.path / "victim") == 0755);
  fs::create_directory(t.path / "mine");
  ::chmod((t.path / "mine").c_str(), 0755);
  REQUIRE(ensure_private_dir(t.path / "mine"));
  CHECK(mode_of(t.path / "mine") == 0700);
  REQUIRE(ensure_private_dir(t.path / "new" / "deeper"));
  CHECK(mode_of(t.path / "new" / "deeper") == 0700);
}

TEST_CASE("file::fence_dir_as_named: a link on the way is refused, the real path is checked and identified") {
  TempDir dir;
  fs::create_directories(dir.path / "real" / "sub");
  fs::create_directories(dir.path / "home");
  fs::create_symlink(dir.path / "real", dir.path / "link");
  // A link another user could change (as root, the scratch directory is root's own and 0700, so a
  // link of root's there is one only root can change, which is taken: /home -> /var/home).
  if (::geteuid() == 0) REQUIRE(::lchown((dir.path / "link").c_str(), 65534, 65534) == 0);
  auto ok = file::fence_dir_as_named("--workdir", dir.path / "real" / "sub", dir.path / "home");
  REQUIRE(ok);
  struct stat st {};
  REQUIRE(::stat((dir.path / "real" / "sub").c_str(), &st) == 0);
  CHECK(ok->dev == st.st_dev);
  CHECK(ok->ino == st.st_ino);
  // Review 15d L1: a link another agent could re-point.
  auto linked = file::fence_dir_as_named("--workdir", dir.path / "link" / "sub", dir.path / "home");
  REQUIRE_FALSE(linked);
  CHECK(linked.error().message.find("is reached through a symbolic link") != std::string::npos);
  CHECK_FALSE(file::fence_dir_as_named("--workdir", dir.path / "home", dir.path / "home"));
  CHECK_FALSE(file::fence_dir_as_named("--workdir", dir.path, dir.path / "home"));
  CHECK_FALSE(file::fence_dir_as_named("--workdir", dir.path / "missing", dir.path / "home"));
  // A link only root can change (root's, in a directory of root's no one else may write) is taken.
  if (::geteuid() == 0) {
    fs::create_symlink(dir.path / "real", dir.path / "rootlink");
    auto through = file::fence_dir_as_named("--workdir", dir.path / "rootlink" / "sub", dir.path / "home");
    REQUIRE(through);
    CHECK(through->path == fs::canonical(dir.path / "real" / "sub"));
  }
  // A trailing slash names the same directory.
  CHECK(file::fence_dir_as_named("--workdir", (dir.path / "real").string() + "/", dir.path / "home"));
}
