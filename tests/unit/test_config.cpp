// Command line: Go-style flag forms, defaults and refused values.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config.hpp"
#include "memory_limit.hpp"

using namespace glockd;

namespace {
ParseOutcome parse(std::vector<std::string> args, Config& c) {
  args.insert(args.begin(), "glockd");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return parse_command_line(static_cast<int>(argv.size()), argv.data(), c);
}
}  // namespace

TEST(Config, Defaults) {
  Config c;
  EXPECT_EQ(parse({}, c).action, ParseOutcome::Action::Run);
  EXPECT_EQ(c.port, 9999);
  EXPECT_EQ(c.ws_port, 9998);
  EXPECT_TRUE(c.dump);
  EXPECT_TRUE(c.registry);
  EXPECT_FALSE(c.verbose);
  EXPECT_EQ(c.max_line, 8192u);
  EXPECT_EQ(c.unix_mode, 0666u);
  EXPECT_EQ(c.max_output_per_connection, 4u << 20);
  EXPECT_EQ(c.max_input_per_connection, 1u << 20);
  EXPECT_EQ(c.max_locks_per_connection, 10000u);
  EXPECT_EQ(c.max_memory, 0u);  // resolved at start (memory_limit.cpp)
  EXPECT_EQ(c.ws_message_timeout_seconds, 10);
}

TEST(Config, SizesTakeUnits) {
  Config c;
  ASSERT_EQ(parse({"--max-memory", "512MiB", "-max-output-per-connection=64KiB",
                   "--max-input-per-connection", "8192"}, c).action,
            ParseOutcome::Action::Run);
  EXPECT_EQ(c.max_memory, std::size_t{512} << 20);
  EXPECT_EQ(c.max_output_per_connection, 64u << 10);
  EXPECT_EQ(c.max_input_per_connection, 8192u);
}

TEST(Config, DefaultMemoryBudgetIsAQuarterOfTheTightestLimit) {
  const std::size_t gib = std::size_t{1} << 30;
  // No cgroup limit ("max" all the way up): physical memory.
  const std::string none[] = {"max", "max"};
  EXPECT_EQ(max_memory_from(none, 2, 16 * gib).bytes, 4 * gib);
  // The tightest memory.max of the chain, below physical memory.
  const std::string chain[] = {"max", std::to_string(2 * gib), std::to_string(8 * gib)};
  const MemoryLimit m = max_memory_from(chain, 3, 16 * gib);
  EXPECT_EQ(m.bytes, gib / 2);
  EXPECT_NE(m.source.find("memory.max"), std::string::npos);
  // Never under 64 MiB, and the log says it was raised.
  const std::string tiny[] = {std::to_string(100 << 20)};
  const MemoryLimit t = max_memory_from(tiny, 1, 16 * gib);
  EXPECT_EQ(t.bytes, std::size_t{64} << 20);
  EXPECT_NE(t.source.find("floor"), std::string::npos);
}

TEST(Config, GoStyleFlagForms) {
  for (auto args : std::vector<std::vector<std::string>>{
           {"-port", "1234"}, {"-port=1234"}, {"--port", "1234"}, {"--port=1234"}}) {
    Config c;
    ASSERT_EQ(parse(args, c).action, ParseOutcome::Action::Run) << args[0];
    EXPECT_EQ(c.port, 1234);
  }
  Config c;
  ASSERT_EQ(parse({"-dump=false", "-registry=false", "-verbose=true", "-ws", "0", "-unix",
                   "/tmp/x.sock", "-pidfile", "/tmp/x.pid"},
                  c)
                .action,
            ParseOutcome::Action::Run);
  EXPECT_FALSE(c.dump);
  EXPECT_FALSE(c.registry);
  EXPECT_TRUE(c.verbose);
  EXPECT_EQ(c.ws_port, 0);
  EXPECT_EQ(c.unix_path, "/tmp/x.sock");
  EXPECT_EQ(c.pidfile, "/tmp/x.pid");
}

TEST(Config, NormaliseLeavesUnknownAndValuesAlone) {
  std::vector<std::string> args = {"glockd", "-port", "-1", "-x", "--bind", "::1"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  const auto out =
      normalise_go_flags(static_cast<int>(argv.size()), argv.data(), {"port", "bind"});
  EXPECT_EQ(out, (std::vector<std::string>{"glockd", "--port", "-1", "-x", "--bind", "::1"}));
}

TEST(Config, EmptyArgumentIsAValue) {
  // `--unix ''` (no unix socket) once threw out of the flag normaliser.
  Config c;
  ASSERT_EQ(parse({"--unix", "", "-port", "0"}, c).action, ParseOutcome::Action::Run);
  EXPECT_EQ(c.unix_path, "");
  EXPECT_EQ(c.port, 0);
}

TEST(Config, RepeatedBind) {
  Config c;
  ASSERT_EQ(parse({"--bind", "127.0.0.1", "--bind", "::1"}, c).action,
            ParseOutcome::Action::Run);
  EXPECT_EQ(c.bind, (std::vector<std::string>{"127.0.0.1", "::1"}));
}

TEST(Config, RefusedValuesSayWhatIsWrong) {
  struct Case { std::vector<std::string> args; std::string mention; };
  for (const Case& k : std::vector<Case>{{{"--port", "70000"}, "--port"},
                                         {{"--port", "abc"}, "--port"},
                                         {{"--ws", "-5"}, "--ws"},
                                         {{"--max-line", "0"}, "--max-line"},
                                         {{"--dump=maybe"}, "dump"},
                                         {{"--unix-mode", "999"}, "--unix-mode"},
                                         {{"--no-such-flag"}, "no-such-flag"},
                                         {{"--keepalive", "-1"}, "--keepalive"},
                                         {{"--max-memory", "100"}, "--max-memory"},
                                         {{"--max-memory", "lots"}, "--max-memory"},
                                         {{"--max-output-per-connection", "1"},
                                          "--max-output-per-connection"},
                                         {{"--ws-message-timeout", "0"},
                                          "--ws-message-timeout"}}) {
    Config c;
    const ParseOutcome out = parse(k.args, c);
    EXPECT_EQ(out.action, ParseOutcome::Action::ExitError) << k.args[0];
    EXPECT_NE(out.message.find(k.mention), std::string::npos) << out.message;
  }
}

TEST(Config, HelpAndVersionExitZero) {
  Config c;
  auto help = parse({"--help"}, c);
  EXPECT_EQ(help.action, ParseOutcome::Action::ExitOk);
  EXPECT_NE(help.message.find("--max-line"), std::string::npos);
  auto version = parse({"-version"}, c);
  EXPECT_EQ(version.action, ParseOutcome::Action::ExitOk);
  EXPECT_NE(version.message.find("glockd "), std::string::npos);
}

// TLS flags (issue 12): which go together is checked at parse time; files
// are checked at start (tests/integration/test_tls.py).
TEST(Config, TlsDefaultsAreOff) {
  Config c;
  ASSERT_EQ(parse({}, c).action, ParseOutcome::Action::Run);
  EXPECT_FALSE(c.ssl);
  EXPECT_FALSE(c.ws_ssl);
  EXPECT_FALSE(c.ssl_subject_name);
  EXPECT_FALSE(c.tls_anywhere());
  EXPECT_EQ(c.ssl_handshake_timeout_seconds, 10);
  EXPECT_TRUE(c.ssl_cert.empty() && c.ssl_key.empty() && c.ssl_ca.empty() &&
              c.ssl_crl.empty() && c.ws_ssl_ca.empty());
}

TEST(Config, TlsFlagsInEveryForm) {
  // The original's Go forms (-ssl -ssl-cert F ...) and GNU ones.
  for (auto args : std::vector<std::vector<std::string>>{
           {"-ssl", "-ssl-cert", "c.pem", "-ssl-key", "k.pem", "-ssl-ca", "ca.pem"},
           {"-ssl", "-ssl-cert=c.pem", "-ssl-key=k.pem", "-ssl-ca=ca.pem"},
           {"--ssl", "--ssl-cert", "c.pem", "--ssl-key", "k.pem", "--ssl-ca", "ca.pem"},
           {"-ssl=true", "--ssl-cert=c.pem", "-ssl-key", "k.pem", "--ssl-ca=ca.pem"}}) {
    Config c;
    const ParseOutcome out = parse(args, c);
    ASSERT_EQ(out.action, ParseOutcome::Action::Run) << args[0] << ": " << out.message;
    EXPECT_TRUE(c.ssl);
    EXPECT_EQ(c.ssl_cert, "c.pem");
    EXPECT_EQ(c.ssl_key, "k.pem");
    EXPECT_EQ(c.ssl_ca, "ca.pem");
    EXPECT_TRUE(c.tls_anywhere());
  }
  Config c;
  ASSERT_EQ(parse({"--ssl", "--ssl-cert", "c", "--ssl-key", "k", "--ssl-ca", "a", "--ssl-crl",
                   "r", "--ssl-handshake-timeout", "3", "--ssl-subject-name", "--ws-ssl",
                   "--ws-ssl-ca", "w"},
                  c)
                .action,
            ParseOutcome::Action::Run);
  EXPECT_EQ(c.ssl_crl, "r");
  EXPECT_EQ(c.ssl_handshake_timeout_seconds, 3);
  EXPECT_TRUE(c.ssl_subject_name);
  EXPECT_TRUE(c.ws_ssl);
  EXPECT_EQ(c.ws_ssl_ca, "w");
}

TEST(Config, WsSslAloneNeedsNoClientCa) {
  // Browsers rarely have a client certificate: --ws-ssl without any CA.
  Config c;
  const ParseOutcome out = parse({"--ws-ssl", "--ssl-cert", "c", "--ssl-key", "k"}, c);
  ASSERT_EQ(out.action, ParseOutcome::Action::Run) << out.message;
  EXPECT_TRUE(c.ws_ssl);
  EXPECT_FALSE(c.ssl);
  EXPECT_TRUE(c.tls_anywhere());
}

TEST(Config, TlsFlagsThatDoNotGoTogetherSayWhatIsMissing) {
  struct Case { std::vector<std::string> args; std::vector<std::string> mentions; };
  const std::vector<std::string> full = {"--ssl-cert", "c", "--ssl-key", "k", "--ssl-ca", "a"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> v = full;
    v.insert(v.end(), extra.begin(), extra.end());
    return v;
  };
  for (const Case& k : std::vector<Case>{
           {{"--ssl"}, {"--ssl-cert"}},
           {{"--ssl", "--ssl-cert", "c", "--ssl-ca", "a"}, {"--ssl-key"}},
           {{"--ssl", "--ssl-key", "k", "--ssl-ca", "a"}, {"--ssl-cert"}},
           {{"--ssl", "--ssl-cert", "c", "--ssl-key", "k"}, {"--ssl-ca"}},
           {{"--ws-ssl"}, {"--ws-ssl", "--ssl-cert"}},
           {{"--ws-ssl", "--ssl-cert", "c"}, {"--ws-ssl", "--ssl-key"}},
           {{"--ssl-cert", "c"}, {"--ssl-cert", "--ssl", "--ws-ssl"}},
           {{"--ssl-key", "k"}, {"--ssl-key"}},
           {{"--ssl-ca", "a"}, {"--ssl-ca"}},
           {{"--ssl-crl", "r"}, {"--ssl-crl"}},
           {{"--ssl-subject-name"}, {"--ssl-subject-name"}},
           {with({"--ssl", "--ws-ssl-ca", "w"}), {"--ws-ssl-ca", "--ws-ssl"}},
           {{"--ssl-handshake-timeout", "0"}, {"--ssl-handshake-timeout"}},
           {{"--ssl-handshake-timeout", "3601"}, {"--ssl-handshake-timeout"}},
           {{"--ssl-handshake-timeout", "soon"}, {"--ssl-handshake-timeout"}},
           {{"-ssl", "-ssl-cert=c", "-ssl-key=k"}, {"--ssl-ca"}}}) {
    Config c;
    const ParseOutcome out = parse(k.args, c);
    std::string argv;
    for (const auto& a : k.args) argv += a + " ";
    EXPECT_EQ(out.action, ParseOutcome::Action::ExitError) << argv;
    for (const auto& m : k.mentions)
      EXPECT_NE(out.message.find(m), std::string::npos) << argv << "-> " << out.message;
    EXPECT_EQ(out.message.rfind("glockd: ", 0), 0u) << out.message;
  }
}

TEST(Config, CheckTlsFlagsDirectly) {
  Config c;
  EXPECT_EQ(check_tls_flags(c), "");
  c.ssl = true;
  c.ssl_cert = "c";
  c.ssl_key = "k";
  EXPECT_NE(check_tls_flags(c).find("--ssl-ca"), std::string::npos);
  c.ssl_ca = "a";
  EXPECT_EQ(check_tls_flags(c), "");
  c.ws_ssl_ca = "w";
  EXPECT_NE(check_tls_flags(c).find("--ws-ssl-ca"), std::string::npos);
  c.ws_ssl = true;
  EXPECT_EQ(check_tls_flags(c), "");
  c.ssl = false;  // --ws-ssl alone
  c.ssl_ca.clear();
  EXPECT_EQ(check_tls_flags(c), "");
}

TEST(Config, TlsWithPortZeroIsAccepted) {
  // Under socket activation --port and --ws do not count (the sockets come
  // from systemd), so --ssl with --port 0 and --ws-ssl with --ws 0 start;
  // serve.cpp warns when no socket speaks TLS.
  for (auto args : std::vector<std::vector<std::string>>{
           {"--ssl", "--ssl-cert", "c", "--ssl-key", "k", "--ssl-ca", "a", "--port", "0"},
           {"--ws-ssl", "--ssl-cert", "c", "--ssl-key", "k", "--ws", "0"}}) {
    Config c;
    const ParseOutcome out = parse(args, c);
    EXPECT_EQ(out.action, ParseOutcome::Action::Run) << args[0] << ": " << out.message;
  }
}
