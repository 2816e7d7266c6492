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
