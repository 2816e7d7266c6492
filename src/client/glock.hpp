// The glock command's pieces: options shared by every subcommand, exit
// codes (sysexits.h), and one entry point per subcommand.
#pragma once

#include <sysexits.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "client/client.hpp"

namespace glockd::glock {

// Exit codes; the man page and --help list them.
inline constexpr int kExitBusy = EX_TEMPFAIL;          // 75: lock busy, wait timed out
inline constexpr int kExitUnavailable = EX_UNAVAILABLE;  // 69: cannot reach/use the daemon
inline constexpr int kExitUsage = EX_USAGE;            // 64
inline constexpr int kExitLost = EX_IOERR;             // 74: the lock was lost while CMD ran
inline constexpr int kExitProtocol = EX_PROTOCOL;      // 76: an answer not understood, or none
inline constexpr int kExitCannotRun = 126;             // CMD found but not runnable
inline constexpr int kExitNotFound = 127;              // CMD not found

struct Common {
  // --server; unset: $GLOCKD_SERVER, the packaged socket, 127.0.0.1:9999. Given
  // but empty is an error, never the default: `--server "$UNSET"` must not
  // quietly lock on another daemon.
  std::optional<std::string> server;
  std::optional<std::string> name;  // --name; unset: a default for exec, none otherwise
  // --cert, --key, --ca: for a tls:// server only; unset: $GLOCK_CERT,
  // $GLOCK_KEY, $GLOCK_CA (which a plain server ignores).
  std::optional<std::string> cert, key, ca;
  double timeout_seconds = 10;      // each request's deadline (and at most the connect's)
  int keepalive_seconds = 10;
  bool json = false;
};

struct ExecOptions {
  std::string lock;
  std::vector<std::string> command;
  std::optional<std::uint64_t> wait_ms;  // unset: forever
  bool shared = false;
  std::uint32_t limit = 0;  // 0: no semaphore
  std::string token_env;
  int conflict_exit_code = kExitBusy;
  double kill_after_seconds = 10;
  bool keep_running = false;
};

// Prints "glock: message" on stderr.
void complain(const std::string& message);
// The exit code for a client error (before CMD runs).
int exit_code_for(const client::Error& error);
// Connects as Common says (loading the TLS files for a tls:// server); on failure complains and returns nullopt with
// `exit_code` set.
std::optional<client::Client> connect(const Common& common, int& exit_code);

int run_exec(const Common& common, const ExecOptions& options);
int run_inspect(const Common& common, const std::string& lock);
int run_locks(const Common& common);
int run_who(const Common& common, const std::optional<std::string>& name);
int run_stats(const Common& common);

}  // namespace glockd::glock
