// Command line parsing with CLI11.
#include "config.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <string_view>

namespace glockd {

std::vector<std::string> normalise_go_flags(int argc, char** argv,
                                            const std::vector<std::string>& long_names) {
  std::vector<std::string> out;
  out.reserve(static_cast<std::size_t>(argc));
  for (int i = 0; i < argc; ++i) {
    std::string_view arg = argv[i];
    // An empty argument (--unix '') is a value, never a flag.
    const std::string_view name = arg.size() > 2 ? arg.substr(1, arg.find('=') - 1) : "";
    if (i > 0 && arg.size() > 2 && arg[0] == '-' && arg[1] != '-' &&
        std::find(long_names.begin(), long_names.end(), name) != long_names.end()) {
      out.push_back("-" + std::string(arg));
    } else {
      out.emplace_back(arg);
    }
  }
  return out;
}

ParseOutcome parse_command_line(int argc, char** argv, Config& config) {
  CLI::App app{"glockd: a network lock server (glockd protocol over TCP, unix sockets "
               "and websocket)",
               "glockd"};
  app.set_version_flag("--version", std::string("glockd ") + GLOCKD_VERSION);
  app.option_defaults()->always_capture_default();

  app.add_option("--port", config.port, "TCP port for the line protocol; 0 disables TCP")
      ->check(CLI::Range(0, 65535));
  app.add_option("--bind", config.bind,
                 "Address to listen on for TCP and websocket (repeatable); default: all "
                 "addresses, IPv4 and IPv6")
      ->type_name("ADDR");
  app.add_option("--unix", config.unix_path, "Unix socket path; empty disables it")
      ->type_name("PATH");
  std::string mode = "0666";
  app.add_option("--unix-mode", mode, "File mode of the unix socket (octal)")
      ->type_name("OCTAL");
  app.add_option("--ws", config.ws_port,
                 "Websocket and HTTP (/metrics, /healthz) port; 0 disables it")
      ->check(CLI::Range(0, 65535));
  app.add_option("--ws-origin", config.ws_origins,
                 "Origin allowed to open a websocket (repeatable); default: any")
      ->type_name("ORIGIN");
  app.add_option("--ws-max-message", config.ws_max_message,
                 "Largest websocket message in bytes; bigger ones close with 1009")
      ->check(CLI::Range(std::size_t{125}, std::size_t{1} << 30));
  app.add_option("--ws-handshake-timeout", config.ws_handshake_timeout_seconds,
                 "Seconds a client on the websocket/HTTP port has to send its request head")
      ->check(CLI::Range(1, 3600));
  app.add_option("--http-max-header", config.http_max_header,
                 "Largest HTTP request head in bytes; bigger ones get 431")
      ->check(CLI::Range(std::size_t{512}, std::size_t{1} << 20));
  app.add_flag("--dump", config.dump, "Answer d, sd, dump and who (--dump=false refuses)");
  app.add_flag("--registry", config.registry, "Answer iam and who (--registry=false refuses)");
  app.add_flag("--verbose", config.verbose, "Log every connection's events");
  app.add_option("--pidfile", config.pidfile, "Write the pid here, locked against a second "
                 "instance")->type_name("PATH");
  app.add_option("--max-line", config.max_line,
                 "Longest request line in bytes; longer lines are discarded")
      ->check(CLI::Range(std::size_t{16}, std::size_t{64} * 1024 * 1024));
  app.add_option("--max-connections", config.max_connections,
                 "Most simultaneous connections; 0: as many as the open-file limit allows")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--keepalive", config.keepalive_seconds,
                 "Seconds of silence before TCP keepalive probes a peer; a dead peer's "
                 "locks are released about 2x this later. 0 disables")
      ->check(CLI::Range(0, 86400));

  app.add_option("--max-waiters", config.max_waiters,
                 "Most queued w/sw requests in total; more get the time-out answer at once")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-waiters-per-lock", config.max_waiters_per_lock,
                 "Most queued w/sw requests on one lock")
      ->check(CLI::NonNegativeNumber);

  app.add_option("--drain-timeout", config.drain_timeout_seconds,
                 "Seconds a closing connection (a peer that half-closed, an HTTP reply) has "
                 "to read its last answers before they are dropped")
      ->check(CLI::Range(1, 3600));
  app.add_option("--max-sessions", config.max_sessions,
                 "Most sessions kept by grace (connections with grace > 0, open or dropped); "
                 "past it grace answers '0 Bad Request: too many sessions'. 0: 10000, or "
                 "--max-connections if lower")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-output-per-connection", config.max_output_per_connection,
                 "Unsent answers one connection may have; past it its further requests wait "
                 "until the peer reads (accepts units: 4MiB, 512KiB)")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(std::size_t{4096}, std::size_t{1} << 34));
  app.add_option("--max-input-per-connection", config.max_input_per_connection,
                 "Requests one connection may have queued behind a wait (past it it is "
                 "closed); reading pauses at 32KiB not yet served, or at this if lower")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(std::size_t{4096}, std::size_t{1} << 34));
  app.add_option("--max-locks-per-connection", config.max_locks_per_connection,
                 "Locks (exclusive and shared) one connection may hold; past it g, w, sg and "
                 "sw get their failure answer. 0: no bound")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-memory", config.max_memory,
                 "Bytes that clients may make the daemon hold in total (locks, waiters, "
                 "buffered requests and answers); past it lock requests fail and the biggest "
                 "readers pause. 0: a quarter of the cgroup's memory.max, else of physical "
                 "memory, at least 64MiB (accepts units: 512MiB, 2GiB)")
      ->transform(CLI::AsSizeValue(false));
  app.add_option("--ws-message-timeout", config.ws_message_timeout_seconds,
                 "Seconds a websocket client has to finish a message it started; then it is "
                 "closed with 1008")
      ->check(CLI::Range(1, 3600));
  app.add_option("--state-dir", config.state_dir,
                 "Directory for the fencing-token high-water mark, so tokens grow across "
                 "restarts and crashes whatever the clock does; must be writable")
      ->type_name("DIR");

  app.add_flag("--ssl", config.ssl,
               "TLS on the TCP port (1.2 and 1.3 only), with a client certificate required "
               "and verified against --ssl-ca; plain TCP is refused");
  app.add_option("--ssl-cert", config.ssl_cert,
                 "PEM file: the server's certificate, then any intermediates (--ssl, "
                 "--ws-ssl); reread on SIGHUP")->type_name("FILE");
  app.add_option("--ssl-key", config.ssl_key,
                 "PEM file: the private key of --ssl-cert; reread on SIGHUP")->type_name("FILE");
  app.add_option("--ssl-ca", config.ssl_ca,
                 "PEM file: the CAs that sign client certificates on the TCP port; reread on "
                 "SIGHUP")->type_name("FILE");
  app.add_option("--ssl-crl", config.ssl_crl,
                 "PEM file: certificate revocation lists for client certificates (--ssl-ca, "
                 "--ws-ssl-ca); reread on SIGHUP")->type_name("FILE");
  app.add_option("--ssl-handshake-timeout", config.ssl_handshake_timeout_seconds,
                 "Seconds a TLS client has to finish its handshake before it is dropped")
      ->check(CLI::Range(1, 3600));
  app.add_flag("--ssl-subject-name", config.ssl_subject_name,
               "A client certificate's subject CN becomes the connection's registered name "
               "(as with iam), shown by d and who");
  app.add_flag("--ws-ssl", config.ws_ssl,
               "TLS on the websocket/HTTP port (wss://, https://), with --ssl-cert and "
               "--ssl-key");
  app.add_option("--ws-ssl-ca", config.ws_ssl_ca,
                 "PEM file: with --ws-ssl, require client certificates on the websocket/HTTP "
                 "port, signed by these CAs")->type_name("FILE");

  // The long names CLI11 knows, so the Go forms follow every flag defined above.
  std::vector<std::string> long_names;
  for (const CLI::Option* opt : app.get_options())
    for (const std::string& n : opt->get_lnames()) long_names.push_back(n);
  std::vector<std::string> args = normalise_go_flags(argc, argv, long_names);
  std::vector<char*> argp;
  for (auto& a : args) argp.push_back(a.data());
  try {
    app.parse(static_cast<int>(argp.size()), argp.data());
  } catch (const CLI::CallForHelp&) {
    return {ParseOutcome::Action::ExitOk, app.help()};
  } catch (const CLI::CallForVersion&) {
    return {ParseOutcome::Action::ExitOk, std::string("glockd ") + GLOCKD_VERSION + "\n"};
  } catch (const CLI::ParseError& e) {
    return {ParseOutcome::Action::ExitError,
            std::string("glockd: ") + e.what() + "\nRun 'glockd --help' for the flags.\n"};
  }

  char* end = nullptr;
  const unsigned long m = std::strtoul(mode.c_str(), &end, 8);
  if (mode.empty() || *end != '\0' || m > 07777) {
    return {ParseOutcome::Action::ExitError,
            "glockd: --unix-mode: '" + mode + "' is not an octal file mode such as 0660\n"};
  }
  config.unix_mode = static_cast<mode_t>(m);
  if (config.max_memory != 0 && config.max_memory < kMinMaxMemory) {
    return {ParseOutcome::Action::ExitError,
            "glockd: --max-memory: " + std::to_string(config.max_memory) +
                " bytes is too small to serve anyone; give at least 1MiB (or 0 for the "
                "default)\n"};
  }
  if (std::string err = check_tls_flags(config); !err.empty())
    return {ParseOutcome::Action::ExitError, "glockd: " + err + "\n"};
  return {};
}

std::string check_tls_flags(const Config& c) {
  if (c.tls_anywhere()) {
    const char* who = c.ssl ? "--ssl" : "--ws-ssl";
    if (c.ssl_cert.empty())
      return std::string(who) + " needs --ssl-cert FILE (the server's certificate, PEM)";
    if (c.ssl_key.empty())
      return std::string(who) + " needs --ssl-key FILE (the private key of --ssl-cert, PEM)";
  } else if (!c.ssl_cert.empty() || !c.ssl_key.empty() || !c.ssl_ca.empty() ||
             !c.ssl_crl.empty() || c.ssl_subject_name) {
    return "--ssl-cert, --ssl-key, --ssl-ca, --ssl-crl and --ssl-subject-name take effect "
           "only with --ssl (the TCP port) or --ws-ssl (the websocket port): add one";
  }
  if (c.ssl && c.ssl_ca.empty())
    return "--ssl requires client certificates: give --ssl-ca FILE (the CAs that sign "
           "them, PEM)";
  if (!c.ws_ssl_ca.empty() && !c.ws_ssl)
    return "--ws-ssl-ca takes effect only with --ws-ssl: add it";
  return {};
}

}  // namespace glockd
