// What every glock subcommand shares: messages, exit codes, and connecting
// to the daemon as the global options (and the environment) say.
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "client/glock.hpp"
#include "client/tls.hpp"

namespace glockd::glock {

using client::Client;
using client::Errc;

void complain(const std::string& message) { std::fprintf(stderr, "glock: %s\n", message.c_str()); }

int exit_code_for(const client::Error& error) {
  switch (error.code) {
    case Errc::Usage:
    case Errc::Address:
    case Errc::Certificate: return kExitUsage;  // a file the user named
    case Errc::Connect:
    case Errc::Io:
    case Errc::Closed:
    case Errc::Disabled: return kExitUnavailable;
    case Errc::BadRequest:  // a request this glock makes right: a server that is not our glockd
    case Errc::Timeout:
    case Errc::Protocol: return kExitProtocol;
  }
  return kExitUnavailable;
}

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

// --cert, --key and --ca, else $GLOCK_CERT, $GLOCK_KEY and $GLOCK_CA. A
// certificate and its key go together: with --cert, $GLOCK_KEY is not
// used (the key is --key's, or in the --cert file).
client::TlsFiles tls_files(const Common& common) {
  client::TlsFiles f;
  f.cert = common.cert ? *common.cert : env("GLOCK_CERT");
  f.key = common.key ? *common.key : common.cert ? "" : env("GLOCK_KEY");
  f.ca = common.ca ? *common.ca : env("GLOCK_CA");
  return f;
}

}  // namespace

std::optional<Client> connect(const Common& common, int& exit_code) {
  auto fail = [&](const std::string& message, int code) -> std::optional<Client> {
    complain(message);
    exit_code = code;
    return std::nullopt;
  };
  std::string text = common.server.value_or("");
  const char* source = "--server";
  if (!common.server) {
    struct stat st{};
    const bool exists = ::stat(client::kPackagedSocket, &st) == 0 && S_ISSOCK(st.st_mode);
    const auto chosen = client::default_server(std::getenv("GLOCKD_SERVER"), exists);
    text = chosen.text;
    source = chosen.source;
  }
  auto address = client::parse_address(text);
  if (!address) return fail(address.error().message, kExitUsage);
  client::Options options;
  options.request_timeout =
      std::chrono::milliseconds(static_cast<long long>(common.timeout_seconds * 1000));
  // Connecting (and the TLS handshake) gets its own 5 s, or --timeout when
  // that is shorter.
  options.connect_timeout = std::min(options.connect_timeout, options.request_timeout);
  options.keepalive_seconds = common.keepalive_seconds;
  if (address->tls) {
    auto context = client::load_tls(tls_files(common));
    if (!context) return fail(context.error().message, exit_code_for(context.error()));
    options.tls = std::move(*context);
  } else if (common.cert || common.key || common.ca) {
    return fail("--cert, --key and --ca are for a tls:// server, and " + address->text() +
                    " (" + source + ") is not one (see glock --help)",
                kExitUsage);
  }
  auto c = Client::connect(*address, options);
  if (!c) return fail(c.error().message, exit_code_for(c.error()));
  return std::move(*c);
}

}  // namespace glockd::glock
