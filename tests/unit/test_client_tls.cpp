// TLS in the client library (tls://): the certificate files and what is
// wrong with them, and against glockd --ssl: the server checked against our
// CA and against the name or address it is reached by, our certificate
// (none, another CA's), --ssl-subject-name, and the deadlines of connecting
// and of each call over TLS. Every call over TLS is in test_client.cpp
// (Via::Tls4, Via::Tls6).
#include <poll.h>

#include <gtest/gtest.h>

#include "client_fixture.hpp"

namespace {

using namespace glockd::client_test;

std::string port_of(const Daemon& d) { return std::to_string(d.port()); }

// A connect, or the first call after it, must fail: the error. (Over TLS
// 1.3 the client's handshake ends before the server has checked the
// client's certificate: a refusal comes with the first answer.)
std::optional<Error> refused(const std::string& where, std::shared_ptr<const TlsContext> tls) {
  Options o;
  o.tls = std::move(tls);
  auto c = Client::connect(ok(parse_address(where)), o);
  if (!c) return c.error();
  auto r = c->is_locked("x");
  if (!r) return r.error();
  return std::nullopt;
}

// --- the files (no daemon) ----------------------------------------------------------

Error files_error(const TlsFiles& f) {
  auto r = load_tls(f);
  if (r) throw std::runtime_error("load_tls took " + f.cert + " / " + f.key + " / " + f.ca);
  EXPECT_EQ(r.error().code, Errc::Certificate) << r.error().message;
  return r.error();
}

TEST(TlsFiles, EachProblemNamesTheFileAndWhat) {
  const Pki& p = Pki::get();
  const std::string none = p.dir() + "/none.pem";
  struct Case {
    TlsFiles files;
    std::string says;
  };
  const Case cases[] = {
      {{none, p.key("client"), p.pem("ca")},
       "client certificate " + none + ": cannot read: No such file or directory"},
      {{p.pem("client"), none, p.pem("ca")},
       "client key " + none + ": cannot read: No such file or directory"},
      {{p.pem("client"), p.key("client"), none},
       "CA file " + none + ": cannot read: No such file or directory"},
      {{p.key("client"), p.key("client"), p.pem("ca")},
       "client certificate " + p.key("client") + ": no PEM certificate in it"},
      {{p.pem("client"), p.pem("client"), p.pem("ca")},
       "client key " + p.pem("client") + ": no PEM private key in it"},
      {{p.pem("client"), p.key("client2"), p.pem("ca")},
       "client key " + p.key("client2") + ": does not match the certificate in " + p.pem("client")},
      {{p.pem("client"), "", p.pem("ca")},
       "client certificate " + p.pem("client") + ": no PEM private key in it (give the key's file too)"},
      {{"", p.key("client"), p.pem("ca")},
       "client key " + p.key("client") + ": given without its certificate"},
      {{p.pem("client"), p.key("client"), p.key("ca")},
       "CA file " + p.key("ca") + ": no PEM certificate in it"},
      {{p.pem("weak"), p.key("weak"), p.pem("ca")},
       "client certificate " + p.pem("weak") + ": refused by OpenSSL's security level"},
      {{p.dir(), p.key("client"), p.pem("ca")},
       "client certificate " + p.dir() + ": cannot read: Is a directory"},
  };
  for (const Case& c : cases) {
    const Error e = files_error(c.files);
    EXPECT_TRUE(contains(e.message, c.says)) << e.message << "\nexpected: " << c.says;
  }
}

TEST(TlsFiles, GoodOnesLoad) {
  const Pki& p = Pki::get();
  EXPECT_TRUE(ok(load_tls({p.pem("client"), p.key("client"), p.pem("ca")}))->has_certificate());
  EXPECT_FALSE(ok(load_tls({"", "", p.pem("ca")}))->has_certificate());
  EXPECT_TRUE(load_tls({}).ok());  // the system's CAs, no certificate
  // Certificate and key in one file, and several CAs in one.
  const std::string both = p.dir() + "/both.pem", cas = p.dir() + "/cas.pem";
  {
    std::ofstream(both) << std::ifstream(p.pem("client")).rdbuf() << std::ifstream(p.key("client")).rdbuf();
    std::ofstream(cas) << std::ifstream(p.pem("other_ca")).rdbuf() << std::ifstream(p.pem("ca")).rdbuf();
  }
  EXPECT_TRUE(load_tls({both, "", cas}).ok());
}

// --- against glockd --ssl ----------------------------------------------------------------

class TlsTest : public ::testing::Test {
 protected:
  void start(std::vector<std::string> extra = {}) {
    daemon_.emplace(ssl_args(std::move(extra)), tls_as("client"));
    ASSERT_EQ(daemon_->start(), "");
  }
  void TearDown() override {
    if (daemon_) expect_clean_stop(*daemon_);
  }
  std::string tls(const std::string& host = "127.0.0.1") const {
    return "tls://" + host + ":" + port_of(*daemon_);
  }
  Client open(const std::string& where, const std::string& as = "client") {
    Options o;
    o.tls = tls_as(as);
    return ok(Client::connect(ok(parse_address(where)), o));
  }
  // The daemon still serves a client with a good certificate.
  void still_serving() {
    Client c = open(tls());
    EXPECT_FALSE(ok(c.is_locked("still")));
  }

  std::optional<Daemon> daemon_;
};

TEST_F(TlsTest, LockAndUnlockByIpv4Ipv6AndName) {
  start();
  std::vector<std::string> hosts = {"127.0.0.1", "localhost"};
  if (have_ipv6_loopback()) hosts.push_back("[::1]");
  for (const auto& host : hosts) {
    Client a = open(tls(host)), b = open(tls(host));
    EXPECT_TRUE(ok(a.get("x"))) << host;
    EXPECT_FALSE(ok(b.get("x"))) << host;
    EXPECT_TRUE(ok(b.is_locked("x"))) << host;
    EXPECT_TRUE(ok(a.release("x"))) << host;
    EXPECT_FALSE(ok(b.is_locked("x"))) << host;
    EXPECT_EQ(a.address().text(), tls(host));
  }
}

TEST_F(TlsTest, ServerCheckedAgainstOurCa) {
  start();
  auto e = refused(tls(), tls_as("client", "other_ca"));
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->code, Errc::Connect) << e->message;
  // The reason depends on whether the server sends its CA along (glockd
  // does: OpenSSL completes its chain from --ssl-ca).
  EXPECT_TRUE(contains(e->message, "TLS handshake with glockd at " + tls() +
                                       " failed: certificate verify failed: "))
      << e->message;
  EXPECT_TRUE(contains(e->message, "unable to get local issuer certificate") ||
              contains(e->message, "self-signed certificate in certificate chain"))
      << e->message;
  still_serving();
}

TEST_F(TlsTest, NoClientCertificate) {
  start();
  auto e = refused(tls(), tls_as(""));
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(e->code == Errc::Connect || e->code == Errc::Io || e->code == Errc::Closed) << e->message;
  EXPECT_TRUE(contains(e->message, tls())) << e->message;
  EXPECT_TRUE(contains(e->message, "certificate")) << e->message;
  still_serving();
}

TEST_F(TlsTest, ClientCertificateOfAnotherCa) {
  start();
  auto e = refused(tls(), tls_as("other_client"));
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(e->code == Errc::Connect || e->code == Errc::Io || e->code == Errc::Closed) << e->message;
  EXPECT_TRUE(contains(e->message, tls())) << e->message;
  EXPECT_TRUE(contains(e->message, "certificate")) << e->message;
  still_serving();
}

TEST_F(TlsTest, SubjectNameIsTheRegisteredName) {
  start({"--ssl-subject-name"});
  Client a = open(tls()), b = open(tls(), "client2");
  EXPECT_EQ(ok(a.me()).name, "client-one");
  ASSERT_TRUE(ok(a.get("x")));
  auto h = ok(b.holders("x"));
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].holder, "client-one");
  ok(a.iam("job"));  // under the CN, not instead of it
  EXPECT_EQ(ok(b.holders("x"))[0].holder, "client-one/job");
  auto who = ok(b.who());  // in the order they registered: iam came last
  ASSERT_EQ(who.size(), 2u);
  EXPECT_EQ(who[0].name, "client-two");
  EXPECT_EQ(who[1].name, "client-one/job");
}

// A server certificate for another name: neither the address nor the name
// we reach it by is in it.
TEST_F(TlsTest, ServerCheckedAgainstTheNameItIsReachedBy) {
  const Pki& p = Pki::get();
  const std::string stem = p.dir() + "/elsewhere", ext = stem + ".ext";
  std::ofstream(ext) << "subjectAltName=DNS:elsewhere.invalid\nextendedKeyUsage=serverAuth\n";
  const std::string openssl = "/usr/bin/openssl";
  ASSERT_EQ(run({openssl, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
                 stem + ".key"}), 0);
  ASSERT_EQ(run({openssl, "req", "-new", "-key", stem + ".key", "-subj", "/CN=elsewhere", "-out",
                 stem + ".csr"}), 0);
  ASSERT_EQ(run({openssl, "x509", "-req", "-in", stem + ".csr", "-CA", p.pem("ca"), "-CAkey", p.key("ca"),
                 "-set_serial", "4242", "-sha256", "-days", "30", "-extfile", ext, "-out", stem + ".pem"}), 0);
  daemon_.emplace(std::vector<std::string>{"--ssl", "--ssl-cert", stem + ".pem", "--ssl-key",
                                           stem + ".key", "--ssl-ca", p.pem("ca")});
  daemon_->check_tcp = false;  // (the check would fail as below)
  ASSERT_EQ(daemon_->start(), "");
  for (const auto& [host, why] : {std::pair{"127.0.0.1", "IP address mismatch"},
                                  std::pair{"localhost", "hostname mismatch"}}) {
    auto e = refused(tls(host), tls_as("client"));
    ASSERT_TRUE(e.has_value()) << host;
    EXPECT_EQ(e->code, Errc::Connect) << e->message;
    EXPECT_TRUE(contains(e->message, std::string("certificate verify failed: ") + why)) << e->message;
  }
}

// A daemon that has stopped answering (SIGSTOP: the kernel still accepts
// connections): the handshake ends at the connect deadline, a call on a
// connection made before at its request deadline.
TEST_F(TlsTest, SilentDaemonGivesTimeoutsWithinTheDeadlines) {
  start();
  Options o;
  o.tls = tls_as("client");
  o.connect_timeout = 300ms;
  o.request_timeout = 300ms;
  Client c = ok(Client::connect(ok(parse_address(tls())), o));
  daemon_->signal(SIGSTOP);
  const auto started = SteadyClock::now();
  auto late = Client::connect(ok(parse_address(tls())), o);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code, Errc::Timeout) << late.error().message;
  EXPECT_TRUE(contains(late.error().message, "glockd at " + tls() +
                                                 " did not complete the TLS handshake within the "
                                                 "connect timeout (300 ms)"))
      << late.error().message;
  auto r = c.get("x");
  daemon_->signal(SIGCONT);
  EXPECT_LT(SteadyClock::now() - started, kPatience);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::Timeout) << r.error().message;
  EXPECT_TRUE(contains(r.error().message, "no answer from glockd at " + tls() + " to 'g x'"))
      << r.error().message;
}

// A port that accepts and never says a word: no handshake, a Timeout.
TEST(TlsErrors, SilentServerTimesOutInTheHandshake) {
  std::uint16_t port = 0;
  UniqueFd listener = bound_tcp("127.0.0.1", port);
  ASSERT_TRUE(listener);
  ASSERT_EQ(::listen(listener.get(), 4), 0);
  Options o;
  o.tls = tls_as("client");
  o.connect_timeout = 300ms;
  auto c = Client::connect(ok(parse_address("tls://127.0.0.1:" + std::to_string(port))), o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, Errc::Timeout) << c.error().message;
  EXPECT_TRUE(contains(c.error().message, "is that port serving TLS?")) << c.error().message;
}

// A plain glockd reached with tls://: it never sees a request, so it never
// answers (or refuses the bytes); no hang either way.
TEST(TlsErrors, PlainPortReachedWithTls) {
  Daemon plain;
  ASSERT_EQ(plain.start(), "");
  Options o;
  o.tls = tls_as("client");
  o.connect_timeout = 500ms;
  auto c = Client::connect(ok(parse_address("tls://127.0.0.1:" + std::to_string(plain.port()))), o);
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(c.error().code == Errc::Timeout || c.error().code == Errc::Connect) << c.error().message;
  expect_clean_stop(plain);
}

// The daemon stopping (SIGTERM: close_notify, then FIN) and killed (FIN
// alone): a connection that waits for nothing learns it, as glock exec's
// watch does.
TEST_F(TlsTest, IdleConnectionLearnsTheDaemonWentAway) {
  for (const bool hard : {false, true}) {
    start();
    Client c = open(tls());
    ASSERT_TRUE(ok(c.get("x")));
    EXPECT_FALSE(c.check_link().has_value());
    daemon_->stop(hard);
    pollfd p{c.fd(), POLLIN | POLLRDHUP, 0};
    ASSERT_EQ(::poll(&p, 1, static_cast<int>(std::chrono::milliseconds(kPatience).count())), 1);
    std::optional<Error> e;
    ASSERT_TRUE(eventually([&] { return (e = c.check_link()).has_value(); }));
    EXPECT_EQ(e->code, Errc::Closed) << e->message;
    EXPECT_EQ(e->message, "glockd at " + tls() + " closed the connection");
    daemon_.reset();
  }
}

}  // namespace
