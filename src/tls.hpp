// TLS with OpenSSL 3: a Context (certificate, key, the CAs that sign client
// certificates, their CRLs) loaded from PEM files, and a Stream, the byte
// stream of one TLS connection. The Stream never touches the socket: the
// ring's recv hands it ciphertext (a memory BIO), and what it has to send
// (handshake, alerts, records) is taken from another memory BIO, so the
// handshake never blocks the loop. Why not kernel TLS: docs/DESIGN.md.
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "stream.hpp"

namespace glockd::tls {

// Counts what OpenSSL allocates, so its memory counts in --max-memory.
// Must run before any other OpenSSL call; false if too late.
bool count_allocations();
std::size_t allocated();

// OpenSSL's reason for its last failure; its error queue is emptied (it is
// per thread: a reason left there would be blamed on the next connection).
std::string openssl_reason();
// A certificate's subject CN as one line of printable text (at most 256
// bytes), or empty.
std::string common_name(X509* cert);

// What a context is made of, and the flags that name each file in errors.
struct Files {
  std::string cert, key;  // --ssl-cert, --ssl-key
  std::string ca;         // client certificates required and verified when set
  const char* ca_flag = "--ssl-ca";
  std::string crl;        // --ssl-crl (only with a CA)
};

class Context {
 public:
  // Reads and checks every file; null with `error` naming the flag, the
  // file and the problem when one is missing, unreadable, malformed,
  // mismatched or refused by OpenSSL's security level.
  static std::unique_ptr<Context> load(const Files& files, std::string& error);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  SSL_CTX* get() const { return ctx_; }
  // The server certificate's notAfter (unix time), subject CN.
  std::int64_t not_after() const { return not_after_; }
  const std::string& subject() const { return subject_; }

 private:
  explicit Context(SSL_CTX* ctx) : ctx_(ctx) {}
  SSL_CTX* ctx_;
  std::int64_t not_after_ = 0;
  std::string subject_;
};

// One connection's TLS: the server side of the handshake, then records.
class Stream final : public ByteStream {
 public:
  // Null when OpenSSL cannot allocate the connection's state.
  static Stream* make(const Context& context);
  ~Stream() override;

  bool established() const override { return established_; }
  bool has_output() const override;
  const std::string& failure() const override { return failure_; }
  bool peer_closed() const override { return peer_closed_; }
  void hold(std::string_view wire) override;
  void close(std::string& wire) override;
  std::string peer_name() const override;

 private:
  explicit Stream(SSL* ssl);
  std::string_view unwrap(std::string_view wire) override;
  void wrap(std::string& app, std::string& wire) override;
  bool take_in(std::string_view wire);
  void fail(int ret, const char* doing);
  void drain(std::string& wire);

  SSL* ssl_;
  BIO* rbio_;  // ciphertext from the peer (owned by ssl_)
  BIO* wbio_;  // ciphertext to the peer (owned by ssl_)
  bool seen_input_ = false;
  bool established_ = false;
  bool peer_closed_ = false;
  bool close_sent_ = false;
  std::string failure_;
};

// Bytes a client may send before its handshake is over (a ClientHello,
// a certificate chain); past it the handshake fails.
inline constexpr std::size_t kMaxHandshakeInput = 64 * 1024;

}  // namespace glockd::tls
