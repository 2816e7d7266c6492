// The client library (src/client) against the real glockd: every call over
// the unix socket, TCP on 127.0.0.1 and [::1], and TLS on both, and its
// errors as values (a disabled feature, a bad request, nothing listening, a
// silent server, a daemon killed in the middle of a call). Each test starts
// its own daemon ($GLOCKD_BIN) on free ports and a temporary unix socket.
// What is only about TLS is in test_client_tls.cpp.
#include <poll.h>

#include <gtest/gtest.h>

#include "client_fixture.hpp"

namespace {

using namespace glockd::client_test;

enum class Via { Unix, Tcp4, Tcp6, Tls4, Tls6 };

bool is_tls(Via via) { return via == Via::Tls4 || via == Via::Tls6; }

Address address_of(const Daemon& d, Via via) {
  const std::string port = std::to_string(d.port());
  switch (via) {
    case Via::Unix: return ok(parse_address("unix:" + d.unix_path()));
    case Via::Tcp4: return ok(parse_address("127.0.0.1:" + port));
    case Via::Tcp6: return ok(parse_address("[::1]:" + port));
    case Via::Tls4: return ok(parse_address("tls://127.0.0.1:" + port));
    case Via::Tls6: return ok(parse_address("tls://[::1]:" + port));
  }
  return {};
}

class ClientTest : public ::testing::TestWithParam<Via> {
 protected:
  void SetUp() override {
    if ((GetParam() == Via::Tcp6 || GetParam() == Via::Tls6) && !have_ipv6_loopback()) {
      GTEST_SKIP() << "this machine has no ::1";
    }
    if (is_tls(GetParam())) tls_ = tls_as("client");
    daemon_.emplace(daemon_args(), tls_);
    const std::string why = daemon_->start();
    ASSERT_EQ(why, "");
  }
  void TearDown() override {
    if (daemon_ && running_) expect_clean_stop(*daemon_);
  }

  // The daemon's flags: `extra`, and TLS on its TCP port for the Tls cases.
  std::vector<std::string> daemon_args(std::vector<std::string> extra = {}) const {
    return is_tls(GetParam()) ? ssl_args(std::move(extra)) : extra;
  }
  Client open(const Daemon& d) {
    Options o;
    o.tls = tls_;
    return ok(Client::connect(address_of(d, GetParam()), o));
  }
  Client open() { return open(*daemon_); }

  // What the daemon calls a connection of this transport (ADDR): over TLS
  // as over TCP.
  std::string addr_prefix() const {
    switch (GetParam()) {
      case Via::Unix: return "unix:";
      case Via::Tcp4:
      case Via::Tls4: return "127.0.0.1:";
      case Via::Tcp6:
      case Via::Tls6: return "[::1]:";
    }
    return "";
  }
  std::uint64_t waiters() { return daemon_->metric("glockd_waiters").value_or(~0ull); }
  std::uint64_t stat(Client& c, const std::string& key) {
    for (auto& s : ok(c.stats())) {
      if (s.key == key) return s.value;
    }
    throw std::runtime_error("no " + key + " in q");
  }
  // SIGKILL, from any thread; the fixture then expects no clean stop.
  void kill_daemon() {
    running_ = false;
    daemon_->stop(true);
  }

  std::shared_ptr<const TlsContext> tls_;  // the Tls cases: client-one's certificate
  std::optional<Daemon> daemon_;
  bool running_ = true;
};

// --- addresses (no daemon) ---------------------------------------------------

TEST(Address, UnixForms) {
  for (const char* text : {"unix:/run/x.sock", "/run/x.sock"}) {
    auto a = ok(parse_address(text));
    EXPECT_EQ(a.kind, Address::Kind::Unix) << text;
    EXPECT_EQ(a.path, "/run/x.sock") << text;
    EXPECT_EQ(a.text(), "unix:/run/x.sock") << text;
  }
  EXPECT_EQ(ok(parse_address("./rel/sock")).path, "./rel/sock");
  EXPECT_EQ(ok(parse_address("../up")).kind, Address::Kind::Unix);
  EXPECT_EQ(failure(parse_address("unix:")), Errc::Address);
  EXPECT_EQ(failure(parse_address("/" + std::string(200, 'x'))), Errc::Address);
}

TEST(Address, TcpForms) {
  struct Case {
    const char* text;
    const char* host;
    std::uint16_t port;
    const char* shown;
  };
  for (const Case& c : {Case{"tcp://db.example:7000", "db.example", 7000, "db.example:7000"},
                        Case{"tcp://db.example:7000/", "db.example", 7000, "db.example:7000"},
                        Case{"10.1.2.3:1", "10.1.2.3", 1, "10.1.2.3:1"},
                        Case{"localhost", "localhost", 9999, "localhost:9999"},
                        Case{"[::1]:9999", "::1", 9999, "[::1]:9999"},
                        Case{"[fe80::1]:65535", "fe80::1", 65535, "[fe80::1]:65535"},
                        Case{"[::1]", "::1", 9999, "[::1]:9999"},
                        Case{"::1", "::1", 9999, "[::1]:9999"}}) {
    auto a = ok(parse_address(c.text));
    EXPECT_EQ(a.kind, Address::Kind::Tcp) << c.text;
    EXPECT_EQ(a.host, c.host) << c.text;
    EXPECT_EQ(a.port, c.port) << c.text;
    EXPECT_EQ(a.text(), c.shown) << c.text;
  }
}

TEST(Address, Refused) {
  for (const char* text : {"", "h:0", "h:65536", "h:abc", "h:", "h:-1", ":80", "[]:80", "[::1", "[::1]x",
                           "[::1]:", "tcp://", "a b:1", "http://h:1", "tls://", "tls://h:0",
                           "tls://[::1", "tls://unix:/x"}) {
    auto a = parse_address(text);
    ASSERT_FALSE(a.ok()) << text;
    EXPECT_EQ(a.error().code, Errc::Address) << text;
  }
  EXPECT_TRUE(contains(parse_address("h:65536").error().message, "1 to 65535"));
  EXPECT_TRUE(contains(parse_address(":80").error().message, "host is empty"));
  EXPECT_TRUE(contains(parse_address("http://h:1").error().message, "unknown scheme 'http'"));
}

TEST(Address, TlsForms) {
  struct Case {
    const char* text;
    const char* host;
    std::uint16_t port;
    const char* shown;
  };
  for (const Case& c : {Case{"tls://db.example:7000", "db.example", 7000, "tls://db.example:7000"},
                        Case{"tls://db.example:7000/", "db.example", 7000, "tls://db.example:7000"},
                        Case{"tls://localhost", "localhost", 9999, "tls://localhost:9999"},
                        Case{"tls://127.0.0.1:1", "127.0.0.1", 1, "tls://127.0.0.1:1"},
                        Case{"tls://[::1]:9999", "::1", 9999, "tls://[::1]:9999"},
                        Case{"tls://[::1]", "::1", 9999, "tls://[::1]:9999"}}) {
    auto a = ok(parse_address(c.text));
    EXPECT_EQ(a.kind, Address::Kind::Tcp) << c.text;
    EXPECT_TRUE(a.tls) << c.text;
    EXPECT_EQ(a.host, c.host) << c.text;
    EXPECT_EQ(a.port, c.port) << c.text;
    EXPECT_EQ(a.text(), c.shown) << c.text;
  }
  EXPECT_FALSE(ok(parse_address("tcp://h:1")).tls);
  EXPECT_FALSE(ok(parse_address("h:1")).tls);
}

TEST(Address, DefaultServer) {
  auto env = default_server("tcp://h:1", true);
  EXPECT_EQ(env.text, "tcp://h:1");
  EXPECT_STREQ(env.source, "GLOCKD_SERVER");
  EXPECT_EQ(default_server("/x", false).text, "/x");
  for (const char* unset : {static_cast<const char*>(nullptr), ""}) {
    EXPECT_EQ(default_server(unset, true).text, "unix:/run/glockd/socket");
    EXPECT_STREQ(default_server(unset, true).source, "the packaged socket");
    EXPECT_EQ(default_server(unset, false).text, "127.0.0.1:9999");
    EXPECT_STREQ(default_server(unset, false).source, "the default");
  }
}

// --- every call, over every transport -----------------------------------------

TEST_P(ClientTest, ExclusiveLocks) {
  Client a = open(), b = open();
  EXPECT_FALSE(ok(a.is_locked("x")));
  EXPECT_TRUE(ok(a.get("x")));
  EXPECT_TRUE(ok(a.get("x")));  // already held by a
  EXPECT_FALSE(ok(b.get("x")));
  EXPECT_TRUE(ok(b.is_locked("x")));
  EXPECT_FALSE(ok(b.release("x")));
  EXPECT_TRUE(ok(a.release("x")));
  EXPECT_FALSE(ok(a.release("x")));
  EXPECT_FALSE(ok(b.is_locked("x")));
  EXPECT_TRUE(ok(b.get("x")));
}

TEST_P(ClientTest, WaitSucceedsTimesOutAndIsGranted) {
  Client a = open(), b = open();
  EXPECT_TRUE(ok(b.wait(1000, "free")));
  ASSERT_TRUE(ok(a.get("x")));
  EXPECT_FALSE(ok(b.wait(0, "x")));
  EXPECT_FALSE(ok(b.wait(50, "x")));
  const auto before = ok(a.token("x"));
  std::optional<Result<bool>> got;
  std::thread waiter([&] { got = b.wait(60000, "x"); });
  const bool queued = eventually([&] { return waiters() == 1; });
  EXPECT_TRUE(queued);
  EXPECT_TRUE(ok(a.release("x")));
  waiter.join();
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(ok(std::move(*got)));
  EXPECT_FALSE(ok(a.get("x")));  // given to the waiter
  EXPECT_GT(ok(b.token("x")), before);
}

TEST_P(ClientTest, SharedLocks) {
  Client a = open(), b = open();
  EXPECT_EQ(ok(a.shared_count("s")), 0u);
  EXPECT_EQ(ok(a.shared_get("s")), 1u);
  EXPECT_EQ(ok(b.shared_get("s")), 2u);
  EXPECT_EQ(ok(a.shared_get("s")), 2u);  // a counts once
  EXPECT_EQ(ok(a.shared_count("s")), 2u);
  EXPECT_FALSE(ok(a.is_locked("s")));  // exclusive names are separate
  EXPECT_TRUE(ok(a.shared_release("s")));
  EXPECT_FALSE(ok(a.shared_release("s")));
  EXPECT_EQ(ok(a.shared_count("s")), 1u);
  EXPECT_TRUE(ok(b.shared_release("s")));
  EXPECT_EQ(ok(b.shared_count("s")), 0u);
}

TEST_P(ClientTest, SharedWait) {
  Client a = open(), b = open(), c = open();
  EXPECT_EQ(ok(a.shared_wait(1, 0, "sem")), 1u);
  EXPECT_EQ(ok(b.shared_wait(1, 0, "sem")), 0u);  // the limit is respected
  EXPECT_EQ(ok(b.shared_wait(1, 50, "sem")), 0u);  // and the wait times out
  EXPECT_EQ(ok(b.shared_wait(2, 1000, "sem")), 2u);
  std::optional<Result<std::uint64_t>> got;
  std::thread waiter([&] { got = c.shared_wait(2, 60000, "sem"); });
  EXPECT_TRUE(eventually([&] { return waiters() == 1; }));
  EXPECT_TRUE(ok(a.shared_release("sem")));
  waiter.join();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(ok(std::move(*got)), 2u);
  EXPECT_EQ(ok(a.shared_count("sem")), 2u);
}

TEST_P(ClientTest, HoldersAndDumps) {
  Client a = open(), b = open();
  const std::string aa = ok(a.me()).addr, ba = ok(b.me()).addr;
  EXPECT_TRUE(ok(a.holders()).empty());
  EXPECT_EQ(ok(a.dump()), "map[]");
  EXPECT_EQ(ok(a.dump_shared()), "map[]");
  ASSERT_TRUE(ok(b.get("l2")));
  ASSERT_TRUE(ok(a.get("l1")));
  ASSERT_EQ(ok(a.shared_get("s")), 1u);
  ASSERT_EQ(ok(b.shared_get("s")), 2u);
  auto all = ok(a.holders());
  ASSERT_EQ(all.size(), 2u);  // sorted by lock name
  EXPECT_EQ(all[0].lock, "l1");
  EXPECT_EQ(all[0].holder, aa);
  EXPECT_EQ(all[1].lock, "l2");
  EXPECT_EQ(all[1].holder, ba);
  auto one = ok(a.holders("l2"));
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].holder, ba);
  EXPECT_TRUE(ok(a.holders("free")).empty());
  auto shared = ok(b.shared_holders());
  ASSERT_EQ(shared.size(), 2u);  // in the order they took it
  EXPECT_EQ(shared[0].lock, "s");
  EXPECT_EQ(shared[0].holder, aa);
  EXPECT_EQ(shared[1].holder, ba);
  EXPECT_EQ(ok(b.shared_holders("s")).size(), 2u);
  EXPECT_TRUE(ok(b.shared_holders("none")).empty());
  EXPECT_EQ(ok(a.dump()), "map[l1:" + aa + " l2:" + ba + "]");
  EXPECT_EQ(ok(a.dump_shared()), "map[s:[" + aa + " " + ba + "]]");
}

// A holder line is "NAME: HOLDER" and the library splits at the last ": ":
// right for a lock name with ": " held by an ADDR, and documented as wrong
// (glock locks re-splits) when the registered holder's name has one.
TEST_P(ClientTest, HolderLineWithColonSpace) {
  Client a = open();
  const std::string aa = ok(a.me()).addr;
  ASSERT_TRUE(ok(a.get("k: v")));
  auto h = ok(a.holders("k: v"));
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].lock, "k: v");
  EXPECT_EQ(h[0].holder, aa);
  ok(a.iam("x: y"));
  h = ok(a.holders("k: v"));
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].lock, "k: v: x");
  EXPECT_EQ(h[0].holder, "y");
  auto who = ok(a.who());  // an ADDR has no ": ", so who splits at the first
  ASSERT_EQ(who.size(), 1u);
  EXPECT_EQ(who[0].name, "x: y");
}

TEST_P(ClientTest, Registry) {
  Client a = open(), b = open();
  auto me = ok(a.me());
  EXPECT_EQ(me.addr.rfind(addr_prefix(), 0), 0u) << me.addr;
  EXPECT_EQ(me.name, me.addr);
  EXPECT_TRUE(ok(a.who()).empty());
  ok(a.iam("alice"));
  ok(b.iam("bob"));
  EXPECT_EQ(ok(a.me()).name, "alice");
  ASSERT_TRUE(ok(a.get("x")));
  auto h = ok(b.holders());
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].holder, "alice");
  auto who = ok(b.who());
  ASSERT_EQ(who.size(), 2u);  // in the order they registered
  EXPECT_EQ(who[0].addr, me.addr);
  EXPECT_EQ(who[0].name, "alice");
  EXPECT_EQ(who[1].name, "bob");
  auto bob = ok(a.who("bob"));
  ASSERT_EQ(bob.size(), 1u);
  EXPECT_EQ(bob[0].addr, ok(b.me()).addr);
  EXPECT_TRUE(ok(a.who("carol")).empty());
  ok(a.iam(""));  // dropped
  EXPECT_EQ(ok(a.me()).name, me.addr);
  EXPECT_EQ(ok(b.holders())[0].holder, me.addr);
  EXPECT_EQ(ok(b.who()).size(), 1u);
}

TEST_P(ClientTest, Stats) {
  Client a = open();
  ASSERT_TRUE(ok(a.get("x")));
  auto first = ok(a.stats());
  auto second = ok(a.stats());
  const std::vector<std::string> keys = {
      "command_d", "command_dump", "command_g", "command_i", "command_iam", "command_me", "command_q",
      "command_r", "command_sd", "command_sg", "command_si", "command_sr", "command_who", "connections",
      "invalid_commands", "locks", "orphans", "shared_locks", "shared_orphans"};
  ASSERT_EQ(second.size(), 19u);
  for (std::size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(second[i].key, keys[i]);
  EXPECT_EQ(second[6].value, first[6].value + 1);  // command_q, this one included
  EXPECT_EQ(second[3].value, first[3].value + 1);  // command_i: the end marker's `i`
  EXPECT_EQ(second[15].value, 1u);                 // locks
}

TEST_P(ClientTest, Tokens) {
  Client a = open();
  EXPECT_EQ(ok(a.token("x")), 0u);
  ASSERT_TRUE(ok(a.get("x")));
  const auto t1 = ok(a.token("x"));
  EXPECT_GT(t1, 0u);
  ASSERT_TRUE(ok(a.get("x")));
  EXPECT_EQ(ok(a.token("x")), t1);  // taken again: the same hold
  ASSERT_TRUE(ok(a.release("x")));
  EXPECT_EQ(ok(a.token("x")), 0u);
  ASSERT_TRUE(ok(a.wait(1000, "x")));
  const auto t2 = ok(a.token("x"));
  EXPECT_GT(t2, t1);
  ASSERT_TRUE(ok(a.get("y")));
  EXPECT_GT(ok(a.token("y")), t2);
  ASSERT_EQ(ok(a.shared_get("s")), 1u);
  EXPECT_EQ(ok(a.token("s")), 0u);  // shared locks have no token
}

TEST_P(ClientTest, ReleaseAll) {
  Client a = open(), b = open();
  ASSERT_TRUE(ok(a.get("x")));
  ASSERT_TRUE(ok(a.get("y")));
  ASSERT_EQ(ok(a.shared_get("s")), 1u);
  auto r = ok(a.release_all());
  EXPECT_EQ(r.exclusive, 2u);
  EXPECT_EQ(r.shared, 1u);
  EXPECT_FALSE(ok(b.is_locked("x")));
  EXPECT_EQ(ok(b.shared_count("s")), 0u);
  r = ok(a.release_all());
  EXPECT_EQ(r.exclusive + r.shared, 0u);
}

TEST_P(ClientTest, SessionsAndResume) {
  std::string session;
  std::uint64_t token = 0;
  {
    Client a = open();
    EXPECT_EQ(ok(a.grace(0)), 0u);
    EXPECT_EQ(ok(a.grace(60000)), 60000u);
    ASSERT_TRUE(ok(a.get("x")));
    ASSERT_EQ(ok(a.shared_get("s")), 1u);
    token = ok(a.token("x"));
    session = ok(a.session());
    EXPECT_EQ(session.size(), 32u);
    EXPECT_EQ(session.find_first_not_of("0123456789abcdef"), std::string::npos) << session;
    EXPECT_EQ(ok(a.session()), session);
    EXPECT_FALSE(ok(a.resume(session)).has_value());  // not its own
  }  // a drops; its locks are kept
  Client b = open();
  EXPECT_TRUE(eventually([&] { return stat(b, "connections") == 1; }));  // a's drop was seen
  EXPECT_TRUE(ok(b.is_locked("x")));
  EXPECT_FALSE(ok(b.resume(std::string(32, '0'))).has_value());
  auto r = ok(b.resume(session));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->exclusive, 1u);
  EXPECT_EQ(r->shared, 1u);
  EXPECT_EQ(ok(b.token("x")), token);
  EXPECT_TRUE(ok(b.release("x")));
  EXPECT_FALSE(ok(b.resume(session)).has_value());  // now its own
}

// Answers longer than one read: a `dump` line and a `d` of many lines.
TEST_P(ClientTest, LargeAnswers) {
  Client a = open();
  const std::string pad(200, 'n');
  for (int i = 0; i < 400; ++i) ASSERT_TRUE(ok(a.get(pad + std::to_string(1000 + i))));
  auto all = ok(a.holders());
  ASSERT_EQ(all.size(), 400u);
  EXPECT_EQ(all.back().lock, pad + "1399");
  const std::string addr = ok(a.me()).addr, dump = ok(a.dump());
  EXPECT_GT(dump.size(), 400u * pad.size());
  EXPECT_TRUE(dump.starts_with("map[" + pad + "1000:" + addr + " ")) << dump.substr(0, 300);
  EXPECT_TRUE(dump.ends_with(" " + pad + "1399:" + addr + "]"));
  EXPECT_TRUE(ok(a.is_locked(pad + "1000")));
}

TEST_P(ClientTest, Raw) {
  Client a = open();
  EXPECT_EQ(ok(a.raw("i foo", 1)), std::vector<std::string>{"0 Lock Not Locked: foo"});
  EXPECT_EQ(ok(a.raw("g  my \t lock", 1)), std::vector<std::string>{"1 Lock Get Success: my lock"});
  EXPECT_EQ(ok(a.raw("q", 19)).size(), 19u);
  EXPECT_TRUE(ok(a.is_locked("my lock")));  // in step after a multi-line raw
}

// --- errors as values ----------------------------------------------------------

TEST_P(ClientTest, Disabled) {
  Daemon off(daemon_args({"--dump=false", "--registry=false"}), tls_);
  ASSERT_EQ(off.start(), "");
  {
    Client c = open(off);
    EXPECT_EQ(failure(c.holders()), Errc::Disabled);
    EXPECT_EQ(failure(c.holders("x")), Errc::Disabled);
    EXPECT_EQ(failure(c.shared_holders()), Errc::Disabled);
    EXPECT_EQ(failure(c.shared_holders("x")), Errc::Disabled);
    EXPECT_EQ(failure(c.dump()), Errc::Disabled);
    EXPECT_EQ(failure(c.dump_shared()), Errc::Disabled);
    EXPECT_EQ(failure(c.who()), Errc::Disabled);
    EXPECT_EQ(failure(c.who("alice")), Errc::Disabled);
    EXPECT_EQ(failure(c.iam("alice")), Errc::Disabled);
    EXPECT_EQ(failure(c.iam("")), Errc::Disabled);
    auto me = ok(c.me());  // still answers, with no name
    EXPECT_EQ(me.name, me.addr);
    EXPECT_TRUE(ok(c.get("x")));  // and the connection is fine
  }
  expect_clean_stop(off);
}

TEST_P(ClientTest, BadRequestAndUsage) {
  Client a = open();
  auto g = a.grace(700000);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().code, Errc::BadRequest);
  EXPECT_NE(g.error().message.find("refused 'grace 700000': grace needs MS, a number from 0 to "
                                    "600000"),
            std::string::npos)
      << g.error().message;
  EXPECT_EQ(failure(a.get("a\nb")), Errc::Usage);
  EXPECT_EQ(failure(a.shared_count("a\nb")), Errc::Usage);
  EXPECT_EQ(failure(a.holders("a\nb")), Errc::Usage);
  EXPECT_EQ(failure(a.iam("a\nb")), Errc::Usage);
  EXPECT_EQ(failure(a.who("a\nb")), Errc::Usage);
  EXPECT_EQ(failure(a.raw("i a\ni b", 2)), Errc::Usage);
  EXPECT_EQ(failure(a.resume("two words")), Errc::Usage);
  EXPECT_EQ(failure(a.wait(kMaxWaitMs + 1u, "x")), Errc::Usage);
  EXPECT_EQ(failure(a.shared_wait(0, 0, "x")), Errc::Usage);
  EXPECT_TRUE(a.usable());  // nothing was sent: the connection is in step
  EXPECT_TRUE(ok(a.get("x")));
}

TEST_P(ClientTest, DaemonKilledMidCall) {
  Client holder = open(), waiter = open();
  ASSERT_TRUE(ok(holder.get("x")));
  EXPECT_FALSE(holder.check_link().has_value());
  std::thread killer([&] {
    EXPECT_TRUE(eventually([&] { return waiters() == 1; }));
    kill_daemon();
  });
  auto r = waiter.wait(60000, "x");
  killer.join();
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.error().code == Errc::Closed || r.error().code == Errc::Io) << r.error().message;
  EXPECT_FALSE(waiter.usable());
  EXPECT_EQ(failure(waiter.is_locked("x")), Errc::Closed);
  // The other connection learns it without a request, once the socket says so.
  pollfd p{holder.fd(), POLLIN | POLLRDHUP, 0};
  ASSERT_EQ(::poll(&p, 1, static_cast<int>(std::chrono::milliseconds(kPatience).count())), 1);
  auto e = holder.check_link();
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(e->code == Errc::Closed || e->code == Errc::Io) << e->message;
  EXPECT_FALSE(holder.usable());
}

std::string via_name(const ::testing::TestParamInfo<Via>& info) {
  constexpr const char* names[] = {"Unix", "Tcp4", "Tcp6", "Tls4", "Tls6"};
  return names[static_cast<int>(info.param)];
}

INSTANTIATE_TEST_SUITE_P(Via, ClientTest,
                         ::testing::Values(Via::Unix, Via::Tcp4, Via::Tcp6, Via::Tls4, Via::Tls6),
                         via_name);

// --- no daemon at all ------------------------------------------------------------

TEST(ClientErrors, ConnectNamesTheAddress) {
  auto a = ok(parse_address("unix:/nonexistent/glockd-test.sock"));
  auto c = Client::connect(a);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, Errc::Connect);
  EXPECT_TRUE(contains(c.error().message, "unix:/nonexistent/glockd-test.sock")) << c.error().message;
  std::uint16_t port = 0;
  UniqueFd closed = bound_tcp("127.0.0.1", port);  // bound, not listening: refused
  ASSERT_TRUE(closed);
  c = Client::connect(ok(parse_address("127.0.0.1:" + std::to_string(port))));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, Errc::Connect);
  EXPECT_TRUE(contains(c.error().message, "127.0.0.1:" + std::to_string(port))) << c.error().message;
  c = Client::connect(ok(parse_address("localhost:" + std::to_string(port))));  // each address tried
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, Errc::Connect);
  EXPECT_TRUE(contains(c.error().message, "localhost:" + std::to_string(port))) << c.error().message;
  EXPECT_TRUE(contains(c.error().message, "tried")) << c.error().message;
}

TEST(ClientErrors, SilentServerTimesOutAndClosesTheClient) {
  std::uint16_t port = 0;
  UniqueFd listener = bound_tcp("127.0.0.1", port);
  ASSERT_TRUE(listener);
  ASSERT_EQ(::listen(listener.get(), 4), 0);
  Options o;
  o.request_timeout = 300ms;
  auto c = ok(Client::connect(ok(parse_address("127.0.0.1:" + std::to_string(port))), o));
  UniqueFd peer(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));  // and never answers
  ASSERT_TRUE(peer);
  const auto start = SteadyClock::now();
  auto r = c.get("x");
  EXPECT_LT(SteadyClock::now() - start, kPatience);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::Timeout) << r.error().message;
  EXPECT_FALSE(c.usable());
  auto again = c.is_locked("x");  // an answer may still come: the client is done
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Errc::Closed);
  EXPECT_TRUE(c.check_link().has_value());
}

}  // namespace
