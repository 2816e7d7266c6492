// tls::Context and tls::Stream against a real OpenSSL client over memory
// BIOs (no sockets): the handshake, records both ways, a batch of answers
// as one record, the failures the loop logs, close_notify, and the bound
// on bytes held before the handshake ends. Certificates come from
// tests/tlscerts.py (TLSCERTS_PY), made once for the suite.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdlib>
#include <string>

#include "tls.hpp"

namespace glockd::tls {
namespace {

std::string g_dir;

class TlsEnv : public ::testing::Environment {
 public:
  void SetUp() override {
    char tmpl[] = "/tmp/glockd-tls-unit-XXXXXX";  // mkdtemp template
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    g_dir = tmpl;
    const char* script = std::getenv("TLSCERTS_PY");
    ASSERT_NE(script, nullptr) << "TLSCERTS_PY must name tests/tlscerts.py";
    const std::string cmd = std::string("/usr/bin/python3 ") + script + " " + g_dir + " >/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  void TearDown() override {
    std::system(("rm -rf " + g_dir).c_str());
  }
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new TlsEnv);

std::string path(const std::string& name) { return g_dir + "/" + name; }

Files server_files(bool client_ca = true) {
  Files f{path("server.pem"), path("server.key"), client_ca ? path("ca.pem") : "", "--ssl-ca", ""};
  return f;
}

// A client SSL over two memory BIOs; pump() moves bytes between it and
// the server stream as the ring would.
struct Client {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = nullptr;
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(BIO_s_mem());

  explicit Client(const char* cert = "client", const char* ca = "ca.pem") {
    SSL_CTX_load_verify_locations(ctx, path(ca).c_str(), nullptr);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    if (cert != nullptr) {
      SSL_CTX_use_certificate_file(ctx, path(std::string(cert) + ".pem").c_str(), SSL_FILETYPE_PEM);
      SSL_CTX_use_PrivateKey_file(ctx, path(std::string(cert) + ".key").c_str(), SSL_FILETYPE_PEM);
    }
    ssl = SSL_new(ctx);
    BIO_set_mem_eof_return(rbio, -1);
    SSL_set_bio(ssl, rbio, wbio);
    SSL_set_connect_state(ssl);
    SSL_set1_host(ssl, "localhost");
  }
  ~Client() {
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    ERR_clear_error();
  }
  std::string take() {
    std::string out(BIO_ctrl_pending(wbio), '\0');
    if (!out.empty()) BIO_read(wbio, out.data(), static_cast<int>(out.size()));
    return out;
  }
  void give(const std::string& bytes) {
    if (!bytes.empty()) BIO_write(rbio, bytes.data(), static_cast<int>(bytes.size()));
  }
  std::string read_all() {
    std::string got;
    char buf[4096];
    std::size_t n = 0;
    while (SSL_read_ex(ssl, buf, sizeof buf, &n) == 1) got.append(buf, n);
    return got;
  }
};

// Runs the handshake to its end (or a failure); returns what the server
// stream decoded meanwhile.
std::string handshake(Client& c, ByteStream& s) {
  std::string app;
  for (int round = 0; round < 10; ++round) {
    SSL_do_handshake(c.ssl);
    const std::string to_server = c.take();
    if (!to_server.empty()) app += std::string(s.decode(to_server));
    std::string to_client, none;
    s.encode(none, to_client);
    c.give(to_client);
    if (SSL_is_init_finished(c.ssl) && s.established() && to_client.empty() && to_server.empty())
      break;
    if (!s.failure().empty()) break;
  }
  return app;
}

TEST(Tls, HandshakeThenRecordsBothWays) {
  std::string error;
  auto ctx = Context::load(server_files(), error);
  ASSERT_TRUE(ctx) << error;
  EXPECT_EQ(ctx->subject(), "glockd-test-server");
  EXPECT_GT(ctx->not_after(), 0);
  std::unique_ptr<Stream> s(Stream::make(*ctx));
  ASSERT_TRUE(s);
  Client c;
  handshake(c, *s);
  ASSERT_TRUE(s->established()) << s->failure();
  EXPECT_EQ(s->peer_name(), "client-one");

  std::size_t n = 0;
  ASSERT_EQ(SSL_write_ex(c.ssl, "g x\ng y\n", 8, &n), 1);
  EXPECT_EQ(s->decode(c.take()), "g x\ng y\n");

  // A batch of 16 answers is one record: one header, one tag.
  std::string answers;
  for (int i = 0; i < 16; ++i) answers += "1 Lock Get Success: lock-" + std::to_string(i) + "\n";
  const std::size_t plain = answers.size();
  std::string wire;
  s->encode(answers, wire);
  EXPECT_TRUE(answers.empty());
  EXPECT_EQ(wire[0], 23);  // application data
  const std::size_t record = (static_cast<unsigned char>(wire[3]) << 8) | static_cast<unsigned char>(wire[4]);
  EXPECT_EQ(wire.size(), 5 + record) << "more than one record";
  c.give(wire);
  EXPECT_EQ(c.read_all().size(), plain);
}

TEST(Tls, NoClientCertificateFailsWithAReason) {
  std::string error;
  auto ctx = Context::load(server_files(), error);
  ASSERT_TRUE(ctx) << error;
  std::unique_ptr<Stream> s(Stream::make(*ctx));
  Client c(nullptr);
  handshake(c, *s);
  EXPECT_FALSE(s->established());
  EXPECT_NE(s->failure().find("certificate"), std::string::npos) << s->failure();
  // Its alert reached the client, which names the cause.
  c.read_all();
  char reason[256];
  ERR_error_string_n(ERR_peek_last_error(), reason, sizeof reason);
  EXPECT_NE(std::string(reason).find("certificate required"), std::string::npos) << reason;
}

TEST(Tls, ClientFromAnotherCaFails) {
  std::string error;
  auto ctx = Context::load(server_files(), error);
  ASSERT_TRUE(ctx) << error;
  std::unique_ptr<Stream> s(Stream::make(*ctx));
  Client c("other_client");
  handshake(c, *s);
  EXPECT_FALSE(s->established());
  EXPECT_NE(s->failure().find("unable to get local issuer certificate"), std::string::npos)
      << s->failure();
}

TEST(Tls, RevokedClientFailsWithTheCrl) {
  std::string error;
  Files f = server_files();
  f.crl = path("crl.pem");
  auto ctx = Context::load(f, error);
  ASSERT_TRUE(ctx) << error;
  std::unique_ptr<Stream> good(Stream::make(*ctx));
  Client ok;
  handshake(ok, *good);
  EXPECT_TRUE(good->established()) << good->failure();
  std::unique_ptr<Stream> s(Stream::make(*ctx));
  Client c("revoked");
  handshake(c, *s);
  EXPECT_FALSE(s->established());
  EXPECT_NE(s->failure().find("revoked"), std::string::npos) << s->failure();
}

TEST(Tls, WithoutACaNoClientCertificateIsAsked) {
  std::string error;
  auto ctx = Context::load(server_files(false), error);
  ASSERT_TRUE(ctx) << error;
  std::unique_ptr<Stream> s(Stream::make(*ctx));
  Client c(nullptr);
  handshake(c, *s);
  EXPECT_TRUE(s->established()) << s->failure();
  EXPECT_EQ(s->peer_name(), "");
}

TEST(Tls, PlainTextIsNamedAtOnce) {
  std::string error;
  auto ctx = Context::load(server_files(), error);
  ASSERT_TRUE(ctx) << error;
  std::unique_ptr<Stream> s(Stream::make(*ctx));
  EXPECT_EQ(s->decode("g x\n"), "");
  EXPECT_NE(s->failure().find("not TLS"), std::string::npos) << s->failure();
  EXPECT_NE(s->failure().find("g x."), std::string::npos) << s->failure();
}

TEST(Tls, BytesHeldBeforeTheHandshakeAreBounded) {
  std::string error;
  auto ctx = Context::load(server_files(), error);
  ASSERT_TRUE(ctx) << error;
  std::unique_ptr<Stream> s(Stream::make(*ctx));
  std::string record("\x16\x03\x01", 3);
  record += std::string(4096, 'x');
  for (int i = 0; i < 15; ++i) s->hold(record);
  EXPECT_EQ(s->failure(), "");
  s->hold(std::string(4096, 'x'));
  s->hold(std::string(4096, 'x'));
  EXPECT_NE(s->failure().find("64 KiB"), std::string::npos) << s->failure();
}

TEST(Tls, CloseNotifyBothWays) {
  std::string error;
  auto ctx = Context::load(server_files(), error);
  ASSERT_TRUE(ctx) << error;
  std::unique_ptr<Stream> s(Stream::make(*ctx));
  Client c;
  handshake(c, *s);
  ASSERT_TRUE(s->established());
  std::string wire;
  s->close(wire);
  ASSERT_FALSE(wire.empty());
  c.give(wire);
  c.read_all();
  EXPECT_EQ(SSL_get_shutdown(c.ssl) & SSL_RECEIVED_SHUTDOWN, SSL_RECEIVED_SHUTDOWN);
  SSL_shutdown(c.ssl);
  s->decode(c.take());
  EXPECT_TRUE(s->peer_closed());
  EXPECT_EQ(s->failure(), "");
}

// The name --ssl-subject-name registers: valid UTF-8 cut at a character,
// one line, no control characters.
std::string name_of(const std::string& cn) {
  X509* cert = X509_new();
  X509_NAME_add_entry_by_NID(X509_get_subject_name(cert), NID_commonName, V_ASN1_UTF8STRING,
                             reinterpret_cast<const unsigned char*>(cn.data()),
                             static_cast<int>(cn.size()), -1, 0);
  std::string name = common_name(cert);
  X509_free(cert);
  return name;
}

TEST(Tls, CertificateNamesAreOneLineOfValidUtf8) {
  EXPECT_EQ(name_of("client-one"), "client-one");
  EXPECT_EQ(name_of("a\nb\rc\x1b"), "a?b?c?");
  EXPECT_EQ(name_of("nel\xc2\x85ls\xe2\x80\xa8ps\xe2\x80\xa9"), "nel?ls?ps?");
  EXPECT_EQ(name_of("caf\xc3\xa9"), "caf\xc3\xa9");
  // 255 ASCII bytes then two-byte characters: cut before the one that
  // would straddle byte 256, not inside it.
  const std::string name = name_of(std::string(255, 'B') + "\xc3\xa9\xc3\xa9");
  EXPECT_EQ(name, std::string(255, 'B'));
}

TEST(Tls, LoadErrorsNameTheFlagTheFileAndTheProblem) {
  std::string error;
  Files f = server_files();
  f.cert = path("missing.pem");
  EXPECT_FALSE(Context::load(f, error));
  EXPECT_EQ(error, "--ssl-cert " + path("missing.pem") + ": cannot read: No such file or directory");
  f = server_files();
  f.key = path("client.key");
  EXPECT_FALSE(Context::load(f, error));
  EXPECT_NE(error.find("--ssl-key " + path("client.key") + ": does not match"), std::string::npos)
      << error;
  f = server_files();
  f.ca = path("server.key");
  EXPECT_FALSE(Context::load(f, error));
  EXPECT_NE(error.find("--ssl-ca " + path("server.key") + ": no certificate in it"),
            std::string::npos)
      << error;
  f = server_files();
  f.cert = path("weak.pem");
  f.key = path("weak.key");
  EXPECT_FALSE(Context::load(f, error));
  EXPECT_NE(error.find("refused by OpenSSL's security level"), std::string::npos) << error;
  f = server_files();
  f.crl = path("ca.pem");
  EXPECT_FALSE(Context::load(f, error));
  EXPECT_NE(error.find("--ssl-crl " + path("ca.pem") + ": no CRL in it"), std::string::npos)
      << error;
}

}  // namespace
}  // namespace glockd::tls
