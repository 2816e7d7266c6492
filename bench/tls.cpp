// The load generator's TLS helpers (tls.hpp).
#include "tls.hpp"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>

#include "stats.hpp"

namespace bench {

std::string tls_error(const char* fallback) {
  std::string out;
  char buf[256];
  while (const unsigned long e = ERR_get_error()) {
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? fallback : out;
}

SslCtx make_client_ctx(const TlsOptions& o, const std::string& ip, std::string& error) {
  SslCtx ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) {
    error = tls_error("SSL_CTX_new failed");
    return nullptr;
  }
  int min = TLS1_2_VERSION, max = TLS1_3_VERSION;
  if (o.version == "1.2") max = TLS1_2_VERSION;
  else if (o.version == "1.3") min = TLS1_3_VERSION;
  else if (!o.version.empty()) {
    error = "--tls-version is 1.2 or 1.3, got '" + o.version + "'";
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx.get(), min);
  SSL_CTX_set_max_proto_version(ctx.get(), max);
  if (SSL_CTX_load_verify_locations(ctx.get(), o.ca.c_str(), nullptr) != 1) {
    error = "--tls-ca " + o.ca + ": " + tls_error("no certificate in it");
    return nullptr;
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  if (!ip.empty())
    X509_VERIFY_PARAM_set1_ip_asc(SSL_CTX_get0_param(ctx.get()), ip.c_str());
  if (!o.cert.empty() &&
      SSL_CTX_use_certificate_chain_file(ctx.get(), o.cert.c_str()) != 1) {
    error = "--tls-cert " + o.cert + ": " + tls_error("cannot load");
    return nullptr;
  }
  if (!o.key.empty()) {
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), o.key.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx.get()) != 1) {
      error = "--tls-key " + o.key + ": " + tls_error("cannot load");
      return nullptr;
    }
  }
  // A batch is one SSL_write and so one record; the buffer may move (the
  // batch string grows) between a write that wanted to wait and its retry.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Read every record the socket has in one recv: fewer system calls on
  // the generator's side. The readers drain until SSL_ERROR_WANT_READ.
  SSL_CTX_set_read_ahead(ctx.get(), 1);
  // Sessions are reused only when asked (--tls-resume): full handshakes.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  return ctx;
}

SSL* tls_connect_blocking(SSL_CTX* ctx, int fd, std::uint64_t deadline_ns, std::string& error) {
  SSL* ssl = SSL_new(ctx);
  if (ssl == nullptr || SSL_set_fd(ssl, fd) != 1) {
    error = tls_error("SSL_new failed");
    SSL_free(ssl);
    return nullptr;
  }
  for (;;) {
    ERR_clear_error();
    const int r = SSL_connect(ssl);
    if (r == 1) return ssl;
    const int e = SSL_get_error(ssl, r);
    short want = 0;
    if (e == SSL_ERROR_WANT_READ) want = POLLIN;
    else if (e == SSL_ERROR_WANT_WRITE) want = POLLOUT;
    else {
      error = "TLS handshake failed: " + tls_error(e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN
                                                       ? "the server closed the connection"
                                                       : "unknown error");
      SSL_free(ssl);
      return nullptr;
    }
    const std::uint64_t now = now_ns();
    pollfd p{fd, want, 0};
    if (now >= deadline_ns ||
        ::poll(&p, 1, static_cast<int>((deadline_ns - now) / 1000000 + 1)) <= 0) {
      error = "TLS handshake not finished in time";
      SSL_free(ssl);
      return nullptr;
    }
  }
}

}  // namespace bench
