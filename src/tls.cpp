// TLS contexts from PEM files, with errors that name the flag, the file
// and the problem; OpenSSL's allocations counted. The stream: tls_stream.cpp.
#include "tls.hpp"

#include <fcntl.h>
#include <malloc.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "fd.hpp"

namespace glockd::tls {

namespace {

// --- OpenSSL's allocations, counted ------------------------------------------

std::atomic<std::size_t> g_allocated{0};

void* counted_malloc(std::size_t n, const char*, int) {
  void* p = std::malloc(n);
  if (p != nullptr) g_allocated.fetch_add(::malloc_usable_size(p), std::memory_order_relaxed);
  return p;
}

void counted_free(void* p, const char*, int) {
  if (p == nullptr) return;
  g_allocated.fetch_sub(::malloc_usable_size(p), std::memory_order_relaxed);
  std::free(p);
}

void* counted_realloc(void* p, std::size_t n, const char* file, int line) {
  if (p == nullptr) return counted_malloc(n, file, line);
  if (n == 0) return counted_free(p, file, line), nullptr;
  const std::size_t before = ::malloc_usable_size(p);
  void* q = std::realloc(p, n);
  if (q != nullptr) {
    g_allocated.fetch_sub(before, std::memory_order_relaxed);
    g_allocated.fetch_add(::malloc_usable_size(q), std::memory_order_relaxed);
  }
  return q;
}

// --- errors --------------------------------------------------------------------

std::string where(const char* flag, const std::string& path) {
  return std::string(flag) + " " + path + ": ";
}

// The whole file, or an error naming it. Bounded: a CA bundle is a few
// hundred KiB; a mistaken path to something huge must not be slurped.
constexpr std::size_t kMaxPemFile = 16 * 1024 * 1024;

bool read_file(const char* flag, const std::string& path, std::string& text, std::string& error) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) return error = where(flag, path) + "cannot read: " + std::strerror(errno), false;
  struct stat st{};
  if (::fstat(fd.get(), &st) == 0 && S_ISDIR(st.st_mode))
    return error = where(flag, path) + "cannot read: it is a directory", false;
  text.clear();
  char buf[16384];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return error = where(flag, path) + "cannot read: " + std::strerror(errno), false;
    }
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > kMaxPemFile)
      return error = where(flag, path) + "more than 16 MiB: not a PEM file", false;
  }
  if (text.empty()) return error = where(flag, path) + "the file is empty", false;
  return true;
}

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

BioPtr memory(const std::string& text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// A key must not ask for a pass phrase on a terminal (there is none).
int no_passphrase(char*, int, int, void*) { return -1; }

// OpenSSL 3's default security level (2) refuses what the original's Go
// accepted: RSA and DSA keys under 2048 bits, SHA-1 signatures.
constexpr const char* kSecurityHint =
    "level 2 wants RSA and DSA keys of 2048 bits or more and signatures of SHA-256 or "
    "better: reissue it (e.g. RSA 2048 or EC P-256, signed with SHA-256)";

std::int64_t unix_time(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<std::int64_t>(::timegm(&tm));
}

bool load_certificate(SSL_CTX* ctx, const Files& f, X509*& leaf, std::string& error) {
  std::string text;
  if (!read_file("--ssl-cert", f.cert, text, error)) return false;
  BioPtr bio = memory(text);
  leaf = PEM_read_bio_X509_AUX(bio.get(), nullptr, nullptr, nullptr);
  if (leaf == nullptr) {
    ERR_clear_error();
    return error = where("--ssl-cert", f.cert) +
                   "no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)",
           false;
  }
  if (SSL_CTX_use_certificate(ctx, leaf) != 1) {
    const std::string reason = openssl_reason();
    if (reason.find("too small") != std::string::npos ||
        reason.find("too weak") != std::string::npos)
      error = where("--ssl-cert", f.cert) + "refused by OpenSSL's security level: " + reason +
              "; " + kSecurityHint;
    else
      error = where("--ssl-cert", f.cert) + "refused: " + reason;
    return false;
  }
  // The intermediates that follow it go out with it.
  while (X509* extra = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
      X509_free(extra);
      const std::string reason = openssl_reason();
      return error = where("--ssl-cert", f.cert) +
                     "an intermediate certificate is refused by OpenSSL's security level: " +
                     reason + "; " + kSecurityHint,
             false;
    }
  }
  ERR_clear_error();  // the end of the file reads as "no start line"
  return true;
}

bool load_key(SSL_CTX* ctx, const Files& f, std::string& error) {
  std::string text;
  if (!read_file("--ssl-key", f.key, text, error)) return false;
  BioPtr bio = memory(text);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr);
  if (key == nullptr) {
    const std::string reason = openssl_reason();
    const bool encrypted = text.find("ENCRYPTED") != std::string::npos;
    return error = where("--ssl-key", f.key) +
                   (encrypted ? "the key is encrypted; glockd cannot ask for a pass phrase: "
                                "decrypt it (openssl pkey -in KEY -out PLAIN)"
                              : "no private key in it (expected PEM: -----BEGIN PRIVATE "
                                "KEY-----; OpenSSL says: " + reason + ")"),
           false;
  }
  const int used = SSL_CTX_use_PrivateKey(ctx, key);
  EVP_PKEY_free(key);
  if (used != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    return error = where("--ssl-key", f.key) + "does not match the certificate in --ssl-cert " +
                   f.cert,
           false;
  }
  return true;
}

bool load_client_cas(SSL_CTX* ctx, const Files& f, std::string& error) {
  std::string text;
  if (!read_file(f.ca_flag, f.ca, text, error)) return false;
  BioPtr bio = memory(text);
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int count = 0;
  while (X509* ca = PEM_read_bio_X509_AUX(bio.get(), nullptr, nullptr, nullptr)) {
    ++count;
    // A weak CA would only be found at each client's handshake: say it now.
    const int bits = EVP_PKEY_get_security_bits(X509_get0_pubkey(ca));
    if (bits > 0 && bits < 112) {
      const std::string cn = common_name(ca);
      X509_free(ca);
      return error = where(f.ca_flag, f.ca) + "certificate " + std::to_string(count) + " (CN=" +
                     cn + ") is refused by OpenSSL's security level: its key has " +
                     std::to_string(bits) + " security bits; " + kSecurityHint,
             false;
    }
    X509_STORE_add_cert(store, ca);
    SSL_CTX_add_client_CA(ctx, ca);  // named in the CertificateRequest
    X509_free(ca);
  }
  ERR_clear_error();
  if (count == 0)
    return error = where(f.ca_flag, f.ca) +
                   "no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)",
           false;
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_verify_depth(ctx, 10);
  if (f.crl.empty()) return true;
  if (!read_file("--ssl-crl", f.crl, text, error)) return false;
  bio = memory(text);
  int crls = 0;
  while (X509_CRL* crl = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr)) {
    ++crls;
    X509_STORE_add_crl(store, crl);
    X509_CRL_free(crl);
  }
  ERR_clear_error();
  if (crls == 0)
    return error = where("--ssl-crl", f.crl) +
                   "no CRL in it (expected PEM: -----BEGIN X509 CRL-----)",
           false;
  // The client's own certificate is checked against its CA's CRL.
  X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
  return true;
}

}  // namespace

std::string openssl_reason() {
  std::string reason;
  while (const unsigned long e = ERR_get_error()) {
    if (!reason.empty()) continue;  // the first is the cause
    const char* r = ERR_reason_error_string(e);
    if (r != nullptr) {
      reason = r;
    } else {
      char buf[256];
      ERR_error_string_n(e, buf, sizeof buf);
      reason = buf;
    }
  }
  return reason.empty() ? "unknown error" : reason;
}

std::string common_name(X509* cert) {
  X509_NAME* name = X509_get_subject_name(cert);
  const int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (i < 0) return {};
  unsigned char* utf8 = nullptr;
  const int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
  if (n < 0) return {};
  std::string cn(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(n));
  OPENSSL_free(utf8);
  // A name for logs and `d` lines: one line of valid UTF-8, bounded (cut
  // at a character's start), with no control character: C0, DEL, C1 (NEL)
  // and the Unicode line and paragraph separators become '?'.
  if (cn.size() > 256) {
    std::size_t cut = 256;
    while (cut > 0 && (static_cast<unsigned char>(cn[cut]) & 0xC0) == 0x80) --cut;
    cn.resize(cut);
  }
  std::string clean;
  for (std::size_t k = 0; k < cn.size(); ++k) {
    const auto b = static_cast<unsigned char>(cn[k]);
    const auto next = [&](std::size_t d) {
      return k + d < cn.size() ? static_cast<unsigned char>(cn[k + d]) : 0;
    };
    if (b < 0x20 || b == 0x7f) {
      clean += '?';
    } else if (b == 0xC2 && next(1) >= 0x80 && next(1) <= 0x9F) {  // U+0080..U+009F
      clean += '?';
      k += 1;
    } else if (b == 0xE2 && next(1) == 0x80 && (next(2) == 0xA8 || next(2) == 0xA9)) {
      clean += '?';  // U+2028, U+2029
      k += 2;
    } else {
      clean += static_cast<char>(b);
    }
  }
  return clean;
}

bool count_allocations() {
  return CRYPTO_set_mem_functions(counted_malloc, counted_realloc, counted_free) == 1;
}

std::size_t allocated() { return g_allocated.load(std::memory_order_relaxed); }

std::unique_ptr<Context> Context::load(const Files& f, std::string& error) {
  ERR_clear_error();
  SSL_CTX* raw = SSL_CTX_new(TLS_server_method());
  if (raw == nullptr) return error = "cannot set up TLS: " + openssl_reason(), nullptr;
  std::unique_ptr<Context> context(new Context(raw));
  SSL_CTX* ctx = raw;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // No renegotiation (its CPU is the peer's to spend), no compression.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE);
  // The chain sent is the --ssl-cert file's, as Go sends it: never one
  // OpenSSL completes from the client CAs. Record buffers (about 34 KiB a
  // connection) are kept while a connection is busy, not freed and made
  // again for every record (SSL_MODE_RELEASE_BUFFERS): the loop frees an
  // idle connection's (Loop::sweep_tls_buffers).
  SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
  // Resumption by tickets only: no server memory per session.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, 1);
  static const unsigned char kId[] = "glockd";
  SSL_CTX_set_session_id_context(ctx, kId, sizeof kId - 1);

  X509* leaf = nullptr;
  const bool ok = load_certificate(ctx, f, leaf, error);
  if (leaf != nullptr) {
    context->not_after_ = unix_time(X509_get0_notAfter(leaf));
    context->subject_ = common_name(leaf);
    X509_free(leaf);
  }
  if (!ok || !load_key(ctx, f, error)) return nullptr;
  if (!f.ca.empty() && !load_client_cas(ctx, f, error)) return nullptr;
  return context;
}

Context::~Context() { SSL_CTX_free(ctx_); }

}  // namespace glockd::tls
