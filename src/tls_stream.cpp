// One TLS connection's stream: the server side of the handshake, then
// records. OpenSSL never sees the socket: its BIO (StreamBio) reads the
// ciphertext the ring received and writes into the connection's send
// buffer, so a record costs no copy through a memory BIO and the ring
// keeps doing every read and write.
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstring>

#include "tls.hpp"

namespace glockd::tls {

// The BIO between OpenSSL and a Stream: reads take from what is being
// decoded (bytes held for a deferred handshake first), writes append to
// the buffer of the call in progress. An empty input means "more to
// come" (a retry), never the end of the stream: the loop sees the FIN.
struct StreamBio {
  static int read(BIO* bio, char* buf, int size) {
    auto* s = static_cast<Stream*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    std::size_t n = 0;
    if (!s->held_.empty()) {
      n = std::min(s->held_.size(), static_cast<std::size_t>(size));
      std::memcpy(buf, s->held_.data(), n);
      s->held_.erase(0, n);
    } else if (!s->in_.empty()) {
      n = std::min(s->in_.size(), static_cast<std::size_t>(size));
      std::memcpy(buf, s->in_.data(), n);
      s->in_.remove_prefix(n);
    }
    if (n == 0) {
      BIO_set_retry_read(bio);
      return -1;
    }
    return static_cast<int>(n);
  }
  static int write(BIO* bio, const char* buf, int size) {
    auto* s = static_cast<Stream*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    (s->out_ != nullptr ? *s->out_ : s->pending_out_).append(buf, static_cast<std::size_t>(size));
    return size;
  }
  static long ctrl(BIO* bio, int cmd, long, void*) {
    auto* s = static_cast<Stream*>(BIO_get_data(bio));
    switch (cmd) {
      case BIO_CTRL_FLUSH:
        return 1;
      case BIO_CTRL_PENDING:
        return static_cast<long>(s->held_.size() + s->in_.size());
      case BIO_CTRL_WPENDING:
        return static_cast<long>(s->pending_out_.size());
      default:
        return 0;
    }
  }
  static BIO_METHOD* method() {
    static BIO_METHOD* const m = [] {
      BIO_METHOD* meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "glockd");
      if (meth == nullptr) return meth;
      BIO_meth_set_read(meth, read);
      BIO_meth_set_write(meth, write);
      BIO_meth_set_ctrl(meth, ctrl);
      return meth;
    }();
    return m;
  }
};

Stream* Stream::make(const Context& context) {
  BIO_METHOD* method = StreamBio::method();
  SSL* ssl = method != nullptr ? SSL_new(context.get()) : nullptr;
  BIO* bio = ssl != nullptr ? BIO_new(method) : nullptr;
  if (bio == nullptr) {
    SSL_free(ssl);
    ERR_clear_error();
    return nullptr;
  }
  auto* s = new Stream(ssl);
  BIO_set_data(bio, s);
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl, bio, bio);  // one BIO both ways: ssl owns its one reference
  SSL_set_accept_state(ssl);
  return s;
}

Stream::~Stream() { SSL_free(ssl_); }

bool Stream::check_input(std::string_view wire) {
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
  // Counted as received, not as held: OpenSSL takes each record into a
  // buffer of its own, up to a ClientHello's declared 16 MiB.
  if (!established_ && (handshake_input_ += wire.size()) > kMaxHandshakeInput) {
    failure_ = "sent more than 64 KiB before its handshake ended";
    return false;
  }
  return true;
}

void Stream::hold(std::string_view wire) {
  if (failure_.empty() && check_input(wire)) held_.append(wire);
}

void Stream::fail(int ret) {
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
  failure_ = reason;
}

// The decrypted bytes of every stream go through one scratch buffer: the
// loop hands them on (or copies them) before another stream decodes, so a
// connection holds no plaintext buffer of its own.
std::string_view Stream::unwrap(std::string_view wire) {
  static std::string scratch(64 * 1024, '\0');
  if (!failure_.empty() || peer_closed_ || !check_input(wire)) return {};
  in_ = wire;
  std::size_t used = 0;
  if (!established_) {
    const int r = SSL_do_handshake(ssl_);
    if (r != 1) {
      const int e = SSL_get_error(ssl_, r);
      if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) fail(r);
    } else {
      established_ = true;
    }
  }
  // Records until the input is used up: no call that can only say "want
  // more" (half the SSL_read calls of a read-until-it-fails loop).
  while (established_ && failure_.empty() && !peer_closed_ &&
         (!in_.empty() || !held_.empty() || SSL_pending(ssl_) > 0)) {
    if (scratch.size() - used < 16 * 1024) scratch.resize(scratch.size() * 2);
    std::size_t n = 0;
    const int r = SSL_read_ex(ssl_, scratch.data() + used, scratch.size() - used, &n);
    if (r == 1) {
      used += n;
      continue;
    }
    const int e = SSL_get_error(ssl_, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) fail(r);
    break;
  }
  // OpenSSL reads a record at a time and stops only when the input is
  // used up, unless the handshake failed (then nothing more is read).
  if (!in_.empty() && failure_.empty()) held_.append(in_);
  in_ = {};
  return {scratch.data(), used};
}

void Stream::write_to(std::string& out) {
  // What a handshake step left goes first (it precedes any record).
  if (!pending_out_.empty()) {
    if (out.empty()) out.swap(pending_out_);
    else out.append(pending_out_);
    std::string().swap(pending_out_);
  }
  out_ = &out;
}

void Stream::wrap(std::string& app, std::string& wire) {
  write_to(wire);
  // Answers exist only once the handshake is over; one write is one record
  // (or several, past 16 KiB), whatever the number of answers in it.
  if (!app.empty() && established_ && failure_.empty()) {
    std::size_t n = 0;
    if (SSL_write_ex(ssl_, app.data(), app.size(), &n) != 1) fail(0);
  }
  out_ = nullptr;
  app.clear();
}

void Stream::close(std::string& wire) {
  write_to(wire);
  if (established_ && failure_.empty() && !close_sent_) {
    close_sent_ = true;
    SSL_shutdown(ssl_);  // our close_notify
    ERR_clear_error();
  }
  out_ = nullptr;
}

std::string Stream::peer_name() const {
  X509* cert = SSL_get0_peer_certificate(ssl_);
  return cert != nullptr ? common_name(cert) : std::string();
}

}  // namespace glockd::tls
