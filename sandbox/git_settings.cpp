#include "sandbox/git_settings.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <time.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <set>
#include <utility>

#include "core/file.hpp"

namespace tokfence::sandbox {
namespace {

constexpr std::size_t kMaxConfig = 1 << 20;
constexpr int kMaxDepth = 64;

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) text.remove_suffix(1);
  return text;
}

bool one_of(const std::string& key, std::initializer_list<const char*> names) {
  return std::any_of(names.begin(), names.end(), [&](const char* n) { return key == n; });
}

// Whether git runs a program for this setting (git-config(1); every key whose value is a command
// or a path git executes, and the ones that pull in another file or protocol that could).
bool runs_program(const std::string& section, const std::string& sub, const std::string& key, std::string_view value) {
  if (section == "core")
    return one_of(key, {"fsmonitor", "hookspath", "pager", "editor", "sshcommand", "askpass", "gitproxy",
                        "alternaterefscommand"});
  if (section == "sequence") return key == "editor";
  if (section == "diff") return sub.empty() ? key == "external" : one_of(key, {"textconv", "command"});
  if (section == "merge") return !sub.empty() && key == "driver";
  if (section == "filter") return one_of(key, {"clean", "smudge", "process"});
  if (section == "credential") return key == "helper";
  if (section == "alias" || (section == "submodule" && key == "update")) return trim(value).starts_with("!");
  if (section == "include" || section == "includeif") return key == "path";
  if (section == "gpg") return key == "program";
  if (section == "uploadpack") return key == "packobjectshook";
  if (section == "pager") return true;
  if (section == "interactive") return key == "difffilter";
  if (section == "remote") return one_of(key, {"uploadpack", "receivepack", "vcs"});
  if (section == "protocol") return key == "allow";
  if (section == "url") return sub.starts_with("ext::") || sub.starts_with("fd::");
  if (section == "difftool" || section == "mergetool") return one_of(key, {"cmd", "path"});
  return false;
}

// Reads a regular file below `dir_fd` without following a link or blocking on a FIFO: its text
// when it changed at or after `since`, else nothing.
std::optional<std::string> changed_file(int dir_fd, const char* name, const timespec& since) {
  file::Fd fd(::openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd) return std::nullopt;
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  if (st.st_ctim.tv_sec < since.tv_sec || (st.st_ctim.tv_sec == since.tv_sec && st.st_ctim.tv_nsec < since.tv_nsec))
    return std::nullopt;
  std::string text;
  char buf[16384];
  ssize_t n;
  while (text.size() < kMaxConfig && (n = ::read(fd.get(), buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
  return text;
}

bool changed_since(const struct stat& st, const timespec& since) {
  return st.st_ctim.tv_sec > since.tv_sec || (st.st_ctim.tv_sec == since.tv_sec && st.st_ctim.tv_nsec >= since.tv_nsec);
}

class Walker {
 public:
  Walker(const timespec& since, std::size_t max_entries) : since_(since), budget_(max_entries) {}

  void walk_tree(int dir_fd, const std::string& path, int depth) {
    if (depth > kMaxDepth) return;
    for (auto& [name, type] : entries(dir_fd)) {
      if (type == DT_LNK) continue;  // never followed
      if (name == ".git") {
        if (type == DT_DIR) {
          file::Fd git(::openat(dir_fd, ".git", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
          // The top repository's own config and hooks were read-only in the sandbox (and may be
          // the user's own settings, e.g. husky's core.hooksPath): only what is below it.
          if (git) inspect_gitdir(git.get(), path + "/.git", depth > 0);
        } else if (type == DT_REG) {
          follow_git_file(dir_fd, path);
        }
        continue;
      }
      if (type != DT_DIR) continue;
      file::Fd sub(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (sub) walk_tree(sub.get(), path + "/" + name, depth + 1);
    }
  }

  GitAudit result() { return std::move(audit_); }

 private:
  // The entries of a directory, with their types (lstat when the file system does not say).
  std::vector<std::pair<std::string, unsigned char>> entries(int dir_fd) {
    std::vector<std::pair<std::string, unsigned char>> out;
    int copy = ::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) return out;
    DIR* dir = ::fdopendir(copy);
    if (!dir) {
      ::close(copy);
      return out;
    }
    ::rewinddir(dir);
    while (const dirent* e = ::readdir(dir)) {
      const std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      if (budget_ == 0) {
        audit_.cut_short = true;
        break;
      }
      --budget_;
      unsigned char type = e->d_type;
      if (type == DT_UNKNOWN) {
        struct stat st{};
        if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : S_ISLNK(st.st_mode) ? DT_LNK : DT_UNKNOWN;
      }
      out.emplace_back(name, type);
    }
    ::closedir(dir);
    return out;
  }

  // A git directory: its config, config.worktree and hooks when `own_settings`, then its
  // submodules' (modules/, nested, names may hold '/') and worktrees' git directories.
  void inspect_gitdir(int git_fd, const std::string& path, bool own_settings) {
    struct stat st{};
    if (::fstat(git_fd, &st) != 0 || !seen_.insert({st.st_dev, st.st_ino}).second) return;
    if (own_settings) {
      for (const char* name : {"config", "config.worktree"})
        if (auto text = changed_file(git_fd, name, since_))
          for (auto& setting : program_settings(*text)) audit_.findings.push_back({path + "/" + name, setting});
      file::Fd hooks(::openat(git_fd, "hooks", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (hooks)
        for (auto& [name, type] : entries(hooks.get())) {
          if (name.ends_with(".sample")) continue;
          struct stat hook{};
          if (::fstatat(hooks.get(), name.c_str(), &hook, AT_SYMLINK_NOFOLLOW) == 0 && changed_since(hook, since_))
            audit_.findings.push_back({path + "/hooks/" + name, "hook " + name});
        }
    } else if (auto text = changed_file(git_fd, "config.worktree", since_)) {
      // Not mounted read-only (it rarely exists at the start): git reads it beside config.
      for (auto& setting : program_settings(*text)) audit_.findings.push_back({path + "/config.worktree", setting});
    }
    // commondir sends git to another directory's config and hooks (one the agent wrote).
    if (auto text = changed_file(git_fd, "commondir", since_))
      audit_.findings.push_back({path + "/commondir", "points git at " + std::string(trim(text->substr(0, text->find('\n')))).substr(0, 200)});
    for (const char* holder : {"modules", "worktrees"}) {
      file::Fd dir(::openat(git_fd, holder, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (dir) walk_gitdirs(dir.get(), path + "/" + holder, 0);
    }
  }

  // Below modules/ or worktrees/: a directory with a HEAD is a git directory; others are the
  // path components of a submodule name.
  void walk_gitdirs(int dir_fd, const std::string& path, int depth) {
    if (depth > kMaxDepth) return;
    for (auto& [name, type] : entries(dir_fd)) {
      if (type != DT_DIR) continue;
      file::Fd sub(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub) continue;
      struct stat head{};
      if (::fstatat(sub.get(), "HEAD", &head, AT_SYMLINK_NOFOLLOW) == 0)
        inspect_gitdir(sub.get(), path + "/" + name, true);
      else
        walk_gitdirs(sub.get(), path + "/" + name, depth + 1);
    }
  }

  // A .git file ("gitdir: <path>", a submodule's or a worktree's): the git directory it names, read
  // like any other (opened by that name: only read, never written).
  void follow_git_file(int dir_fd, const std::string& path) {
    auto text = changed_file(dir_fd, ".git", timespec{0, 0});
    if (!text || !text->starts_with("gitdir:")) return;
    std::string target(trim(std::string_view(*text).substr(7, text->find('\n') == std::string::npos
                                                                    ? std::string::npos
                                                                    : text->find('\n') - 7)));
    if (target.empty()) return;
    file::Fd git(::openat(dir_fd, target.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (git) inspect_gitdir(git.get(), path + "/.git -> " + target, true);
  }

  timespec since_;
  std::size_t budget_;
  GitAudit audit_;
  std::set<std::pair<dev_t, ino_t>> seen_;
};

Result<void> collect_settings(int git_fd, const std::string& prefix, int depth, std::vector<GitSettingsEntry>& out);

// Below modules/ or worktrees/: a directory with a HEAD is a git directory, others are components
// of a submodule's name.
Result<void> collect_holder(int dir_fd, const std::string& prefix, int depth, std::vector<GitSettingsEntry>& out) {
  if (depth > 16) return fail("git: " + prefix + ": nested too deep to protect");
  file::Fd copy(::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0));
  DIR* dir = copy ? ::fdopendir(copy.get()) : nullptr;
  if (!dir) return {};
  copy.release();
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(dir))
    if (std::string_view(e->d_name) != "." && std::string_view(e->d_name) != "..") names.emplace_back(e->d_name);
  ::closedir(dir);
  for (const auto& name : names) {
    struct stat st{};
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) continue;
    file::Fd sub(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub) continue;
    auto r = ::fstatat(sub.get(), "HEAD", &st, AT_SYMLINK_NOFOLLOW) == 0
                 ? collect_settings(sub.get(), prefix + name + "/", depth + 1, out)
                 : collect_holder(sub.get(), prefix + name + "/", depth + 1, out);
    if (!r) return r;
  }
  return {};
}

Result<void> collect_settings(int git_fd, const std::string& prefix, int depth, std::vector<GitSettingsEntry>& out) {
  if (depth > 16) return fail("git: " + prefix + ": nested too deep to protect");
  for (const char* name : {"hooks", "config", "config.worktree"}) {
    struct stat st{};
    if (::fstatat(git_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (S_ISLNK(st.st_mode)) return fail("git: " + prefix + name + " is a symbolic link");
    out.push_back({prefix + name, S_ISDIR(st.st_mode)});
  }
  for (const char* holder : {"modules", "worktrees"}) {
    file::Fd dir(::openat(git_fd, holder, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (dir)
      if (auto r = collect_holder(dir.get(), prefix + holder + "/", depth + 1, out); !r) return r;
  }
  return {};
}

}  // namespace

Result<std::vector<GitSettingsEntry>> git_settings_entries(int git_fd) {
  std::vector<GitSettingsEntry> out;
  if (auto r = collect_settings(git_fd, "", 0, out); !r) return std::unexpected(r.error());
  return out;
}

std::vector<std::string> program_settings(std::string_view config) {
  std::vector<std::string> found;
  std::string section, sub;
  while (!config.empty()) {
    const auto eol = config.find('\n');
    std::string_view line = trim(config.substr(0, eol));
    config = eol == std::string_view::npos ? std::string_view() : config.substr(eol + 1);
    if (line.starts_with("[")) {
      const auto close = line.find(']');
      if (close == std::string_view::npos) continue;
      std::string_view header = trim(line.substr(1, close - 1));
      line = trim(line.substr(close + 1));  // a key may follow on the same line
      sub.clear();
      if (const auto quote = header.find('"'); quote != std::string_view::npos) {
        section = lower(trim(header.substr(0, quote)));
        std::string_view rest = header.substr(quote + 1);
        sub = std::string(rest.substr(0, rest.rfind('"')));
      } else if (const auto dot = header.find('.'); dot != std::string_view::npos) {
        section = lower(header.substr(0, dot));
        sub = lower(header.substr(dot + 1));
      } else {
        section = lower(header);
      }
    }
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    const auto eq = line.find('=');
    const std::string key = lower(trim(line.substr(0, eq)));
    const std::string_view value = eq == std::string_view::npos ? std::string_view() : trim(line.substr(eq + 1));
    if (key.empty() || !std::all_of(key.begin(), key.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-'; }))
      continue;
    if (runs_program(section, lower(sub), key, value))
      found.push_back(section + (sub.empty() ? "" : "." + sub) + "." + key);
  }
  return found;
}

timespec git_audit_clock() {
  timespec t{};
  ::clock_gettime(CLOCK_REALTIME_COARSE, &t);
  return t;
}

std::string git_audit_warning(const GitAudit& audit, const std::string& root, std::string_view who) {
  std::string out;
  if (!audit.findings.empty()) {
    out = std::string(who) + ": warning: the agent left git settings or hooks that run programs when you use git (below " +
          root + "):\n";
    for (const auto& f : audit.findings) out += "  " + f.path + ": " + f.what + "\n";
    out += "  git runs them unfenced, in that repository and, for a repository the project's index lists as a "
           "submodule, on a plain `git status` in the project. Read them and remove what you did not ask for before "
           "you run git there (docs/SANDBOX.md)\n";
  }
  if (audit.cut_short)
    out += std::string(who) + ": warning: " + root +
           " has too many files to look through for git settings the agent left: not everything was checked\n";
  return out;
}

GitAudit audit_git_changes(const std::string& root, const timespec& since, std::size_t max_entries) {
  Walker walker(since, max_entries);
  file::Fd top(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (top) walker.walk_tree(top.get(), root, 0);
  return walker.result();
}

}  // namespace tokfence::sandbox
