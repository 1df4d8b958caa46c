#pragma once
// The environment a sandboxed (or --no-sandbox) harness child gets: built from an allow-list of
// harmless variables taken from the parent, plus the harness's own variables. Never from "the
// parent's minus a deny-list": a variable nobody thought of (a new cloud credential, an agent
// socket) must not pass by default.
#include <map>
#include <string>
#include <vector>

namespace tokfence::sandbox {

using EnvMap = std::map<std::string, std::string>;

// True for names that may be copied from the parent: PATH, HOME, USER, LOGNAME, SHELL, TERM,
// COLORTERM, LANG, LANGUAGE, LC_*, TZ, EDITOR, VISUAL, PAGER, NO_COLOR, FORCE_COLOR, COLUMNS, LINES...
bool allowed_from_parent(const std::string& name);

// True for names that must never reach a child, whoever sets them: TOKFENCE_*, provider key
// variables, cloud credentials, agent/bus/engine socket variables (SSH_AUTH_SOCK,
// DBUS_SESSION_BUS_ADDRESS, DOCKER_HOST, XDG_RUNTIME_DIR...).
bool forbidden(const std::string& name);

// `parent` filtered through allowed_from_parent, then `own` (the harness's variables) added on top.
// A name in `own` that is forbidden() is dropped too, so a template cannot smuggle one in; the
// exceptions are the names listed in `vouched_vars`, whose values in `own` the caller vouches for:
// the harness's key variables (holding the session's capability token, or the dummy key) and the
// session's decoy variables (AWS_ACCESS_KEY_ID... holding decoys, core/decoys.hpp). The parent's
// values for those names still never pass.
EnvMap build_child_env(const EnvMap& parent, const EnvMap& own, const std::vector<std::string>& vouched_vars = {});

// The current process environment as a map.
EnvMap current_environment();

// "NAME=value" strings, sorted, for execve.
std::vector<std::string> to_envp(const EnvMap& env);

}  // namespace tokfence::sandbox
