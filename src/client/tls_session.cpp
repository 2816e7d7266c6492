// TLS for the client: one session over a connected socket, OpenSSL behind
// memory BIOs and the socket I/O done here without blocking (see tls.hpp).
#include <arpa/inet.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <climits>
#include <cstring>

#include "client/tls.hpp"

namespace glockd::client {

namespace {

constexpr std::size_t kChunk = 16384;  // one TLS record's plaintext at most

bool is_ip(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 || ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// An alert in which a server says it does not take our certificate (or
// that it wants one).
bool certificate_alert(int alert) {
  switch (alert) {
    case SSL_AD_BAD_CERTIFICATE:
    case SSL_AD_UNSUPPORTED_CERTIFICATE:
    case SSL_AD_CERTIFICATE_REVOKED:
    case SSL_AD_CERTIFICATE_EXPIRED:
    case SSL_AD_CERTIFICATE_UNKNOWN:
    case SSL_AD_UNKNOWN_CA:
    case SSL_AD_ACCESS_DENIED:
    case SSL_AD_CERTIFICATE_REQUIRED: return true;
  }
  return false;
}

}  // namespace

Result<std::unique_ptr<TlsSession>> TlsSession::start(int fd, const TlsContext& context,
                                                      const Address& address) {
  SSL* ssl = SSL_new(context.get());
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  if (ssl == nullptr || in == nullptr || out == nullptr) {
    SSL_free(ssl);
    BIO_free(in);
    BIO_free(out);
    ERR_clear_error();
    return Error{Errc::Connect, "cannot set up TLS for " + address.text() + ": out of memory"};
  }
  SSL_set_bio(ssl, in, out);  // ssl owns them now
  std::unique_ptr<TlsSession> session(
      new TlsSession(fd, ssl, in, out, context.has_certificate()));
  SSL_set_connect_state(ssl);
  // The server's certificate must be for the name or address we reached it
  // by, as Go's tls.Dial checks: an IP address against its IP SANs, a name
  // against its DNS SANs (and sent as SNI).
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  const std::string bare = address.host.substr(0, address.host.find('%'));  // no IPv6 zone
  bool set = false;
  if (is_ip(bare)) {
    set = X509_VERIFY_PARAM_set1_ip_asc(param, bare.c_str()) == 1;
  } else {
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    set = X509_VERIFY_PARAM_set1_host(param, address.host.c_str(), address.host.size()) == 1 &&
          SSL_set_tlsext_host_name(ssl, address.host.c_str()) == 1;
  }
  if (!set) {
    ERR_clear_error();
    return Error{Errc::Address, "cannot check a TLS certificate against the host '" +
                                    address.host + "'"};
  }
  return session;
}

TlsSession::~TlsSession() {
  SSL_free(ssl_);
  ERR_clear_error();
}

void TlsSession::close_notify() {
  if (!usable_ || !finished_handshake_) return;
  usable_ = false;
  ERR_clear_error();
  SSL_shutdown(ssl_);
  ERR_clear_error();
  take_output();
  (void)flush();
}

void TlsSession::take_output() {
  char buf[kChunk];
  int n;
  while ((n = BIO_read(out_bio_, buf, sizeof buf)) > 0) out_.append(buf, static_cast<std::size_t>(n));
}

Step TlsSession::flush() {
  while (!out_.empty()) {
    const ssize_t n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      out_.erase(0, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Step{Step::WantWrite};
    return sys_failed(errno);
  }
  return Step{Step::Moved};
}

Step TlsSession::pump_in() {
  if (Step s = flush(); s.kind != Step::Moved) return s;
  char buf[kChunk];
  for (;;) {
    const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      BIO_write(in_, buf, static_cast<int>(n));
      return Step{Step::Moved, static_cast<std::size_t>(n)};
    }
    if (n == 0) {
      usable_ = false;
      return Step{Step::End};
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Step{Step::WantRead};
    return sys_failed(errno);
  }
}

Step TlsSession::sys_failed(int err) {
  usable_ = false;
  return Step{Step::Failed, 0, std::strerror(err), err == EPIPE ? Errc::Closed : Errc::Io};
}

// OpenSSL's reason, and what it likely means when that is not plain.
Step TlsSession::failed(int ret) {
  usable_ = false;
  const int kind = SSL_get_error(ssl_, ret);
  const unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  if (e == 0) return Step{Step::Failed, 0, "TLS error " + std::to_string(kind)};
  const int reason = ERR_GET_REASON(e);
  const char* text = ERR_reason_error_string(e);
  std::string why = text != nullptr ? text : "TLS error " + std::to_string(e);
  if (ERR_GET_LIB(e) != ERR_LIB_SSL) return Step{Step::Failed, 0, why};
  if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    why += std::string(": ") + X509_verify_cert_error_string(SSL_get_verify_result(ssl_));
  } else if (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG) {
    why += " (the server does not speak TLS on this port; a glockd without --ssl is reached "
           "with tcp://)";
  } else if (reason > SSL_AD_REASON_OFFSET && certificate_alert(reason - SSL_AD_REASON_OFFSET)) {
    why += has_certificate_ ? " (the server refused our client certificate)"
                            : " (the server wants a client certificate; we sent none)";
  } else if (reason == SSL_AD_REASON_OFFSET + SSL_AD_HANDSHAKE_FAILURE && !has_certificate_) {
    why += " (a TLS 1.2 server says this when it wants a client certificate; we sent none)";
  } else if (reason == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION || reason == SSL_R_UNSUPPORTED_PROTOCOL) {
    why += " (this client speaks TLS 1.2 and 1.3 only)";
  }
  return Step{Step::Failed, 0, why};
}

Step TlsSession::handshake() {
  if (!usable_) return Step{Step::Failed, 0, "the TLS session has ended"};
  for (;;) {
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl_);
    take_output();
    if (r == 1) {
      Step s = flush();  // our last handshake message
      finished_handshake_ = s.kind == Step::Moved;
      return s;
    }
    if (SSL_get_error(ssl_, r) != SSL_ERROR_WANT_READ) {
      Step f = failed(r);
      (void)flush();  // our alert, so that the server can log why
      return f;
    }
    if (Step s = pump_in(); s.kind != Step::Moved) return s;
  }
}

Step TlsSession::read(char* buf, std::size_t size) {
  if (!usable_) return Step{Step::Failed, 0, "the TLS session has ended"};
  for (;;) {
    ERR_clear_error();
    const int r = SSL_read(ssl_, buf, static_cast<int>(std::min<std::size_t>(size, INT_MAX)));
    take_output();  // e.g. an answer to a TLS 1.3 key update
    if (r > 0) {
      (void)flush();  // what cannot go now goes with the next write or read
      return Step{Step::Moved, static_cast<std::size_t>(r)};
    }
    const int kind = SSL_get_error(ssl_, r);
    if (kind == SSL_ERROR_ZERO_RETURN) {  // the server's close_notify
      usable_ = false;
      return Step{Step::End};
    }
    if (kind != SSL_ERROR_WANT_READ) {
      Step f = failed(r);
      (void)flush();
      return f;
    }
    if (Step s = pump_in(); s.kind != Step::Moved) return s;
  }
}

Step TlsSession::write(std::string_view bytes) {
  if (!usable_) return Step{Step::Failed, 0, "the TLS session has ended"};
  if (!out_.empty()) {  // an earlier write's ciphertext first
    if (Step s = flush(); s.kind != Step::Moved) return s;
    return Step{Step::Moved, std::exchange(owed_, 0)};
  }
  if (bytes.empty()) return Step{Step::Moved};
  ERR_clear_error();
  const int r = SSL_write(ssl_, bytes.data(), static_cast<int>(std::min(bytes.size(), kChunk)));
  take_output();
  if (r <= 0) {
    if (SSL_get_error(ssl_, r) != SSL_ERROR_WANT_READ) {
      Step f = failed(r);
      (void)flush();
      return f;
    }
    Step s = pump_in();  // Moved: call again, the write can go on
    return s.kind == Step::Moved ? Step{Step::Moved} : s;
  }
  owed_ = static_cast<std::size_t>(r);
  if (Step s = flush(); s.kind != Step::Moved) return s;
  return Step{Step::Moved, std::exchange(owed_, 0)};
}

}  // namespace glockd::client
