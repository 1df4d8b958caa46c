#pragma once
// Two tiers of failure (see docs/ARCHITECTURE.md):
//  - Functions that can fail on bad input or the environment return `Result<T>`; the data path of the
//    daemon never throws.
//  - CLI and setup code may throw `UserError`; one catch at the top of main prints
//    `tokfence: error: <message>` and exits with `exit_code`.
// Messages are lowercase, shaped `subject: problem: value`, and name the fix where there is one.
// They never contain a key.
#include <expected>
#include <stdexcept>
#include <string>

namespace tokfence {

struct Error {
  std::string message;
};

template <class T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(std::string message) { return std::unexpected(Error{std::move(message)}); }

class UserError : public std::runtime_error {
 public:
  explicit UserError(const std::string& message, int exit_code = 1)
      : std::runtime_error(message), exit_code_(exit_code) {}
  explicit UserError(const Error& error, int exit_code = 1) : UserError(error.message, exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

// Unwraps a Result in CLI code: returns the value or throws UserError with its message.
template <class T>
T value_or_throw(Result<T>&& result) {
  if (!result) throw UserError(result.error());
  if constexpr (!std::is_void_v<T>) return std::move(*result);
}

}  // namespace tokfence
