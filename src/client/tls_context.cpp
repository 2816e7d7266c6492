// TLS for the client: loading and checking the certificate, key and CA
// files into one SSL_CTX (see tls.hpp).
#include <fcntl.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>

#include "client/tls.hpp"

namespace glockd::client {

namespace {

// A PEM file of certificates or a key is small; past this it is not one.
constexpr std::size_t kMaxFile = 4u << 20;

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

Error bad(const char* what, const std::string& path, const std::string& problem) {
  return Error{Errc::Certificate, std::string(what) + " " + path + ": " + problem};
}

// OpenSSL's reason for the last error (and the queue cleared).
std::string openssl_reason() {
  const unsigned long e = ERR_peek_last_error();
  const char* r = e != 0 ? ERR_reason_error_string(e) : nullptr;
  ERR_clear_error();
  return r != nullptr ? r : "unknown OpenSSL error";
}

// A certificate refused at OpenSSL 3's security level (RSA keys under 2048
// bits, SHA-1 signatures) gets a reason that says so and what to use.
std::string refused(const std::string& reason) {
  if (reason.find("too small") != std::string::npos || reason.find("too weak") != std::string::npos) {
    return "refused by OpenSSL's security level (" + reason +
           "): use an RSA key of 2048 bits or more, or an EC key, and SHA-256 signatures";
  }
  return "refused: " + reason;
}

Result<std::string> read_file(const char* what, const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return bad(what, path, std::string("cannot read: ") + std::strerror(errno));
  std::string data;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      data.append(buf, static_cast<std::size_t>(n));
      if (data.size() > kMaxFile) {
        ::close(fd);
        return bad(what, path, "over 4 MiB: not a PEM file");
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    const int e = errno;
    ::close(fd);
    if (n < 0) return bad(what, path, std::string("cannot read: ") + std::strerror(e));
    return data;
  }
}

// Never asks for a passphrase (glock runs unattended).
int no_passphrase(char*, int, int, void*) { return -1; }

BioPtr bio_of(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// Our certificate, then any intermediate certificates after it.
Result<Done> use_certificate(SSL_CTX* ctx, const std::string& path) {
  constexpr const char* what = "client certificate";
  auto pem = read_file(what, path);
  if (!pem) return pem.error();
  BioPtr bio = bio_of(*pem);
  X509* leaf = PEM_read_bio_X509_AUX(bio.get(), nullptr, no_passphrase, nullptr);
  if (leaf == nullptr) {
    ERR_clear_error();
    return bad(what, path, "no PEM certificate in it");
  }
  const int used = SSL_CTX_use_certificate(ctx, leaf);
  X509_free(leaf);
  if (used != 1) return bad(what, path, refused(openssl_reason()));
  while (X509* extra = PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr)) {
    if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
      X509_free(extra);
      return bad(what, path, "an intermediate certificate in it is " + refused(openssl_reason()));
    }
  }
  ERR_clear_error();  // the end of the file
  return Done{};
}

// The key: from its own file, or (`in_cert`) after the certificate in its file.
Result<Done> use_key(SSL_CTX* ctx, const std::string& path, const std::string& cert_path,
                     bool in_cert) {
  const char* what = in_cert ? "client certificate" : "client key";
  auto pem = read_file(what, path);
  if (!pem) return pem.error();
  BioPtr bio = bio_of(*pem);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr);
  if (key == nullptr) {
    ERR_clear_error();
    if (pem->find("ENCRYPTED") != std::string::npos) {
      return bad(what, path, "the key is encrypted; glock needs it unencrypted (it asks for no passphrase)");
    }
    return bad(what, path, in_cert ? "no PEM private key in it (give the key's file too)"
                                   : "no PEM private key in it");
  }
  if (X509_check_private_key(SSL_CTX_get0_certificate(ctx), key) != 1) {
    EVP_PKEY_free(key);
    ERR_clear_error();
    return bad(what, path, "does not match the certificate in " + cert_path);
  }
  const int used = SSL_CTX_use_PrivateKey(ctx, key);
  EVP_PKEY_free(key);
  if (used != 1) return bad(what, path, refused(openssl_reason()));
  return Done{};
}

Result<Done> use_ca(SSL_CTX* ctx, const std::string& path) {
  constexpr const char* what = "CA file";
  auto pem = read_file(what, path);
  if (!pem) return pem.error();
  BioPtr bio = bio_of(*pem);
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int count = 0;
  while (X509* ca = PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr)) {
    const int added = X509_STORE_add_cert(store, ca);
    X509_free(ca);
    if (added != 1) return bad(what, path, "a certificate in it cannot be used: " + openssl_reason());
    ++count;
  }
  ERR_clear_error();
  if (count == 0) return bad(what, path, "no PEM certificate in it");
  return Done{};
}

}  // namespace

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

Result<std::shared_ptr<const TlsContext>> load_tls(const TlsFiles& files) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return Error{Errc::Certificate, "cannot set up TLS: " + openssl_reason()};
  auto context = std::make_shared<const TlsContext>(ctx, !files.cert.empty());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
  if (!files.key.empty() && files.cert.empty()) {
    return Error{Errc::Certificate, "client key " + files.key + ": given without its certificate"};
  }
  if (!files.cert.empty()) {
    if (auto r = use_certificate(ctx, files.cert); !r) return r.error();
    const bool in_cert = files.key.empty();
    if (auto r = use_key(ctx, in_cert ? files.cert : files.key, files.cert, in_cert); !r) {
      return r.error();
    }
  }
  if (!files.ca.empty()) {
    if (auto r = use_ca(ctx, files.ca); !r) return r.error();
  } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
    return Error{Errc::Certificate, "cannot load the system's CA certificates: " + openssl_reason()};
  }
  return context;
}

}  // namespace glockd::client
