// Metrics: Prometheus text exposition of every q figure and the rest.
#include <gtest/gtest.h>

#include <sstream>

#include "metrics.hpp"

using namespace glockd;

TEST(Metrics, EveryFigureWithHelpAndType) {
  Stats stats;
  stats.commands[static_cast<int>(Command::g)] = 7;
  stats.commands[static_cast<int>(Command::w)] = 2;
  stats.invalid_commands = 3;
  stats.orphans = 4;
  stats.shared_orphans = 5;
  MetricsInput in;
  in.stats = &stats;
  in.connections = 9;
  in.by_transport = {6, 2, 1};
  in.locks = 11;
  in.shared_locks = 12;
  in.waiters = 13;
  in.lock_table_bytes = 4096;
  in.bytes_received = 100;
  in.bytes_sent = 200;
  in.uptime_seconds = 1.5;
  const std::string text = render_metrics(in);
  for (const char* line :
       {"glockd_requests_total{command=\"g\"} 7\n", "glockd_requests_total{command=\"w\"} 2\n",
        "glockd_requests_total{command=\"q\"} 0\n", "glockd_invalid_commands_total 3\n",
        "glockd_connections 9\n", "glockd_transport_connections{transport=\"tcp\"} 6\n",
        "glockd_transport_connections{transport=\"unix\"} 2\n",
        "glockd_transport_connections{transport=\"ws\"} 1\n", "glockd_locks 11\n",
        "glockd_shared_locks 12\n", "glockd_orphans_total 4\n",
        "glockd_shared_orphans_total 5\n", "glockd_waiters 13\n",
        "glockd_lock_table_bytes 4096\n", "glockd_received_bytes_total 100\n",
        "glockd_sent_bytes_total 200\n", "glockd_uptime_seconds 1.500\n"})
    EXPECT_NE(text.find(line), std::string::npos) << line;
  // Every sample belongs to a family announced with HELP and TYPE before it.
  std::istringstream lines(text);
  std::string l, family;
  int samples = 0;
  while (std::getline(lines, l)) {
    if (l.rfind("# TYPE ", 0) == 0) {
      family = l.substr(7, l.find(' ', 7) - 7);
      continue;
    }
    if (l.rfind("# HELP ", 0) == 0) continue;
    ASSERT_FALSE(family.empty()) << l;
    EXPECT_EQ(l.rfind(family, 0), 0u) << l;
    ++samples;
  }
  EXPECT_GT(samples, 30);
}
