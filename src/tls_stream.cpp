// One TLS connection's stream: the server side of the handshake, then
// records, over two memory BIOs (the ring does every read and write).
#include <openssl/err.h>
#include <openssl/x509.h>

#include <algorithm>

#include "tls.hpp"

namespace glockd::tls {

Stream* Stream::make(const Context& context) {
  SSL* ssl = SSL_new(context.get());
  if (ssl == nullptr) return ERR_clear_error(), nullptr;
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(BIO_s_mem());
  if (rbio == nullptr || wbio == nullptr) {
    BIO_free(rbio);
    BIO_free(wbio);
    SSL_free(ssl);
    ERR_clear_error();
    return nullptr;
  }
  // An empty read BIO means "more to come", not the end of the stream.
  BIO_set_mem_eof_return(rbio, -1);
  SSL_set_bio(ssl, rbio, wbio);
  SSL_set_accept_state(ssl);
  auto* s = new Stream(ssl);
  s->rbio_ = rbio;
  s->wbio_ = wbio;
  return s;
}

Stream::Stream(SSL* ssl) : ByteStream(false), ssl_(ssl), rbio_(nullptr), wbio_(nullptr) {}

Stream::~Stream() { SSL_free(ssl_); }

bool Stream::has_output() const { return BIO_ctrl_pending(wbio_) > 0; }

bool Stream::take_in(std::string_view wire) {
  if (wire.empty()) return true;
  // A TLS client's first byte is a handshake record's (22). Anything else is
  // a plain-text client on a TLS port: said at once, not after its line
  // fills a record header or the handshake times out.
  if (!seen_input_) {
    seen_input_ = true;
    if (static_cast<unsigned char>(wire[0]) != 22) {
      std::string start;
      for (char ch : wire.substr(0, 16))
        start += (ch >= 0x20 && ch < 0x7f) ? ch : '.';
      failure_ = "not TLS (a plain-text client on a TLS port?); it sent \"" + start + "\"";
      return false;
    }
  }
  if (!established_ && BIO_ctrl_pending(rbio_) + wire.size() > kMaxHandshakeInput) {
    failure_ = "sent more than 64 KiB before its handshake ended";
    return false;
  }
  if (BIO_write(rbio_, wire.data(), static_cast<int>(wire.size())) != static_cast<int>(wire.size())) {
    ERR_clear_error();
    failure_ = "out of memory";
    return false;
  }
  return true;
}

void Stream::hold(std::string_view wire) {
  if (failure_.empty()) take_in(wire);
}

void Stream::fail(int ret, const char* doing) {
  const int e = SSL_get_error(ssl_, ret);
  if (e == SSL_ERROR_ZERO_RETURN) {
    peer_closed_ = true;
    return;
  }
  std::string reason = e == SSL_ERROR_SSL ? openssl_reason() : "error " + std::to_string(e);
  ERR_clear_error();
  const long verify = SSL_get_verify_result(ssl_);
  if (!established_ && verify != X509_V_OK)
    reason += std::string(": ") + X509_verify_cert_error_string(verify);
  failure_ = std::string(doing) + reason;
}

// The decrypted bytes of every stream go through one scratch buffer: the
// loop hands them on (or copies them) before another stream decodes, so a
// connection holds no plaintext buffer of its own.
std::string_view Stream::unwrap(std::string_view wire) {
  static std::string scratch(64 * 1024, '\0');
  if (!failure_.empty() || peer_closed_ || !take_in(wire)) return {};
  if (!established_) {
    const int r = SSL_do_handshake(ssl_);
    if (r != 1) {
      const int e = SSL_get_error(ssl_, r);
      if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) fail(r, "");
      return {};
    }
    established_ = true;
  }
  std::size_t used = 0;
  for (;;) {
    if (scratch.size() - used < 16 * 1024) scratch.resize(scratch.size() * 2);
    std::size_t n = 0;
    const int r = SSL_read_ex(ssl_, scratch.data() + used, scratch.size() - used, &n);
    if (r == 1) {
      used += n;
      continue;
    }
    const int e = SSL_get_error(ssl_, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) fail(r, "");
    break;
  }
  return {scratch.data(), used};
}

void Stream::drain(std::string& wire) {
  const std::size_t n = BIO_ctrl_pending(wbio_);
  if (n == 0) return;
  const std::size_t old = wire.size();
  wire.resize(old + n);
  const int got = BIO_read(wbio_, wire.data() + old, static_cast<int>(n));
  wire.resize(old + static_cast<std::size_t>(std::max(got, 0)));
}

void Stream::wrap(std::string& app, std::string& wire) {
  // Answers exist only once the handshake is over; one write is one record
  // (or several, past 16 KiB), whatever the number of answers in it.
  if (!app.empty() && established_ && failure_.empty()) {
    std::size_t n = 0;
    if (SSL_write_ex(ssl_, app.data(), app.size(), &n) != 1) fail(0, "sending: ");
  }
  app.clear();
  drain(wire);
}

void Stream::close(std::string& wire) {
  if (established_ && failure_.empty() && !close_sent_) {
    close_sent_ = true;
    SSL_shutdown(ssl_);  // our close_notify, into the write BIO
    ERR_clear_error();
  }
  drain(wire);
}

std::string Stream::peer_name() const {
  X509* cert = SSL_get0_peer_certificate(ssl_);
  return cert != nullptr ? common_name(cert) : std::string();
}

}  // namespace glockd::tls
