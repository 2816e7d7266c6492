// glockd's life from the command line to the exit status: parse flags,
// open (or adopt) listeners, take the pidfile, run the loop.
#include <spdlog/spdlog.h>

#include <cstdio>

#include "config.hpp"
#include "crash.hpp"
#include "listeners.hpp"
#include "log.hpp"
#include "loop.hpp"
#include "systemd.hpp"
#include "serve.hpp"
#include "token_mark.hpp"

namespace glockd {

namespace {

int fail(const std::string& message) {
  std::fprintf(stderr, "glockd: %s\n", message.c_str());
  return 1;
}

std::string summary(const std::vector<Listener>& listeners) {
  std::string s = "serving";
  for (const Listener& l : listeners)
    s += std::string(" ") + transport_name(l.transport) + "=" + l.where;
  return s;
}

// Socket files glockd created (none under socket activation: those are
// systemd's).
std::vector<std::string> unix_paths_created(const std::vector<Listener>& listeners) {
  std::vector<std::string> paths;
  for (const Listener& l : listeners)
    if (!l.unix_path.empty()) paths.push_back(l.unix_path);
  return paths;
}

}  // namespace

int serve(int argc, char** argv, LineHandler* handler) {
  Config config;
  const ParseOutcome parsed = parse_command_line(argc, argv, config);
  if (parsed.action == ParseOutcome::Action::ExitOk) {
    std::fputs(parsed.message.c_str(), stdout);
    return 0;
  }
  if (parsed.action == ParseOutcome::Action::ExitError) {
    std::fputs(parsed.message.c_str(), stderr);
    return 2;
  }
  setup_logging(config.verbose);
  // From here on SIGTERM/SIGINT/SIGQUIT wait for the loop, which shuts down
  // cleanly, and a crash still removes the files created below.
  take_over_signals();
  install_crash_cleanup();

  // The pidfile first: a second instance must name the pidfile, not the port.
  Pidfile pidfile;
  if (!config.pidfile.empty()) {
    if (std::string err = pidfile.acquire(config.pidfile); !err.empty()) return fail(err);
  }

  // The fencing-token mark before any port is taken: a state directory
  // that cannot be used refuses the start without touching the network.
  TokenMark token_mark;
  if (!config.state_dir.empty()) {
    if (std::string err = token_mark.open(config.state_dir); !err.empty()) return fail(err);
    if (std::string err = token_mark.start(clock_token()); !err.empty()) return fail(err);
  }

  // TLS files before any port is taken: a bad certificate refuses the
  // start without touching the network. OpenSSL's memory is counted in
  // --max-memory from its first allocation.
  TlsContexts tls;
  if (config.tls_anywhere()) {
    tls::count_allocations();
    if (std::string err = load_tls(config, tls); !err.empty()) return fail(err);
  }

  Activation activation = adopt_systemd_sockets(config.keepalive_seconds);
  if (!activation.error.empty()) return fail(activation.error);
  std::vector<Listener> listeners;
  if (activation.activated) {
    listeners = std::move(activation.listeners);
    spdlog::info("socket activation: {} sockets from systemd", listeners.size());
  } else {
    if (config.port == 0 && config.unix_path.empty() && config.ws_port == 0)
      return fail("nothing to listen on: set --port, --unix or --ws to a non-zero value");
    ListenResult opened = open_listeners(config);
    if (!opened.error.empty()) return fail(opened.error);
    listeners = std::move(opened.listeners);
  }

  // Under socket activation --port and --ws do not count: what matters is
  // whether a TCP (websocket) socket came. None is odd, not fatal.
  const auto has = [&](Transport t) {
    for (const Listener& l : listeners)
      if (l.transport == t) return true;
    return false;
  };
  if (config.ssl && !has(Transport::Tcp))
    spdlog::warn("--ssl: there is no TCP socket (--port 0, or none from systemd): nothing "
                 "speaks TLS");
  if (config.ws_ssl && !has(Transport::Ws))
    spdlog::warn("--ws-ssl: there is no websocket socket (--ws 0, or none from systemd): "
                 "nothing speaks TLS there");

  const std::string status = summary(listeners);
  // Removes the socket files glockd made, unless the loop's clean stop did
  // already or another glockd's file stands there now.
  const auto remove_socket_files = [owned = unix_paths_created(listeners)] {
    for (const std::string& path : owned) remove_if_ours(path);
  };
  Loop loop(config, std::move(listeners), config.state_dir.empty() ? nullptr : &token_mark,
            handler);
  if (std::string err = loop.init(); !err.empty()) {
    remove_socket_files();
    return fail(err);
  }
  loop.use_tls(std::move(tls));
  loop.on_ready([&] { notify_ready(status); });
  const int rc = loop.run();
  remove_socket_files();
  notify_stopping();
  pidfile.remove();
  return rc;
}

}  // namespace glockd
