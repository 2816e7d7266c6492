// Config: the command line. Accepts the original Go glockd's flag forms
// (-port 9999, -port=9999, -dump=false) next to GNU-style --port.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <vector>

namespace glockd {

// Named limits and defaults; each has a flag.
inline constexpr int kDefaultPort = 9999;
inline constexpr int kDefaultWsPort = 9998;
inline constexpr std::size_t kDefaultMaxLine = 8 * 1024;
inline constexpr std::size_t kDefaultWsMaxMessage = 1024 * 1024;
inline constexpr int kDefaultWsHandshakeTimeout = 10;
inline constexpr std::size_t kDefaultHttpMaxHeader = 8 * 1024;
inline constexpr int kDefaultKeepaliveSeconds = 60;
inline constexpr std::size_t kDefaultMaxWaiters = 100000;
inline constexpr std::size_t kDefaultMaxWaitersPerLock = 10000;
inline constexpr int kDefaultDrainTimeout = 10;
inline constexpr std::size_t kDefaultMaxOutputPerConnection = 4 * 1024 * 1024;
inline constexpr std::size_t kDefaultMaxInputPerConnection = 1024 * 1024;
inline constexpr std::size_t kDefaultMaxLocksPerConnection = 10000;
inline constexpr int kDefaultWsMessageTimeout = 10;
inline constexpr std::size_t kMinMaxMemory = 1024 * 1024;
inline constexpr int kDefaultSslHandshakeTimeout = 10;

struct Config {
  int port = kDefaultPort;              // 0: no TCP listener
  std::vector<std::string> bind;        // empty: every address, dual-stack
  std::string unix_path;                // empty: no unix listener
  mode_t unix_mode = 0666;
  int ws_port = kDefaultWsPort;         // 0: no websocket/HTTP listener
  std::vector<std::string> ws_origins;  // empty: any Origin
  std::size_t ws_max_message = kDefaultWsMaxMessage;
  int ws_handshake_timeout_seconds = kDefaultWsHandshakeTimeout;  // HTTP head deadline
  std::size_t http_max_header = kDefaultHttpMaxHeader;
  bool dump = true;
  bool registry = true;
  bool verbose = false;
  std::string pidfile;
  std::size_t max_line = kDefaultMaxLine;
  std::size_t max_connections = 0;      // 0: as many as RLIMIT_NOFILE allows
  int keepalive_seconds = kDefaultKeepaliveSeconds;  // 0: off
  std::size_t max_waiters = kDefaultMaxWaiters;      // queued w/sw in total
  std::size_t max_waiters_per_lock = kDefaultMaxWaitersPerLock;
  int drain_timeout_seconds = kDefaultDrainTimeout;  // closing: unread answers kept this long
  std::size_t max_sessions = 0;         // 0: 10,000, or --max-connections if lower
  std::string state_dir;                // empty: fencing tokens seeded from the clock only
  // Bounds on what one client, and all of them, make the daemon hold.
  std::size_t max_output_per_connection = kDefaultMaxOutputPerConnection;  // unsent answers
  std::size_t max_input_per_connection = kDefaultMaxInputPerConnection;    // queued requests
  std::size_t max_locks_per_connection = kDefaultMaxLocksPerConnection;    // 0: no bound
  std::size_t max_memory = 0;           // 0: a quarter of what the daemon may use (at start)
  int ws_message_timeout_seconds = kDefaultWsMessageTimeout;  // a started message must end
  // TLS (the original's -ssl flags): with `ssl` the TCP port speaks only
  // TLS and requires a client certificate signed by `ssl_ca`.
  bool ssl = false;
  std::string ssl_cert;                 // PEM: the server's certificate (chain)
  std::string ssl_key;                  // PEM: its private key
  std::string ssl_ca;                   // PEM: CAs that sign client certificates
  std::string ssl_crl;                  // PEM: revoked client certificates (optional)
  int ssl_handshake_timeout_seconds = kDefaultSslHandshakeTimeout;
  bool ssl_subject_name = false;        // the client certificate's CN is its `iam` name
  bool ws_ssl = false;                  // the websocket/HTTP port speaks TLS (wss, https)
  std::string ws_ssl_ca;                // client certificates there, signed by these CAs
  bool tls_anywhere() const { return ssl || ws_ssl; }
};

struct ParseOutcome {
  enum class Action { Run, ExitOk, ExitError } action = Action::Run;
  std::string message;  // help/version text, or the error to print
};

ParseOutcome parse_command_line(int argc, char** argv, Config& config);

// Which TLS flags go together; the error (a usage error) or empty.
std::string check_tls_flags(const Config& config);

// Rewrites single-dash long flags (-port, -dump=false) to --port, --dump=false
// so CLI11 (which wants two dashes) sees what Go's flag package accepted.
// long_names: the flags' names without dashes ("port", "max-line").
std::vector<std::string> normalise_go_flags(int argc, char** argv,
                                            const std::vector<std::string>& long_names);

}  // namespace glockd
