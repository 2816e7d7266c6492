// TLS on the load generator's side (OpenSSL 3): the client context built
// from --tls-ca/--tls-cert/--tls-key, and the small helpers the load,
// handshake and ping modes share. Only the TLS paths include this; the
// plain paths do not change.
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <string>

namespace bench {

struct TlsOptions {
  std::string ca;       // --tls-ca: verifies the server's certificate (chain and 127.0.0.1/::1)
  std::string cert;     // --tls-cert: the client certificate the daemon asks for
  std::string key;      // --tls-key
  std::string version;  // --tls-version: "" (1.2 or 1.3, whatever the server picks), 1.2, 1.3
  bool resume = false;  // --tls-resume: handshake mode reuses each slot's last session
  bool enabled() const { return !ca.empty(); }
};

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using SslCtx = std::unique_ptr<SSL_CTX, SslCtxFree>;

// The client context, or null with `error` saying which file and why.
// Verification is on: a wrong CA fails the handshake, as for a real client.
SslCtx make_client_ctx(const TlsOptions& o, const std::string& ip, std::string& error);

// OpenSSL's error queue as one line (emptied); `fallback` if it was empty.
std::string tls_error(const char* fallback);

// One TLS connection over an open non-blocking socket, blocking with poll
// until `deadline_ns` (the ping mode and the smoke test's probes).
SSL* tls_connect_blocking(SSL_CTX* ctx, int fd, std::uint64_t deadline_ns, std::string& error);

}  // namespace bench
