// Protocol: the inspection answers (d, sd, dump, who, q), which walk the
// whole table or registry and format it as the original glockd does.
#include <algorithm>
#include <utility>
#include <vector>

#include "protocol.hpp"

namespace glockd {

void Protocol::holder_name(ConnId conn, std::string& out) const {
  const std::string* reg = features_.registry ? registry_.name_of(conn) : nullptr;
  out.append(reg ? std::string_view(*reg) : addr(conn));
}

void Protocol::dump_lines(LockKind kind, std::string_view only, std::string& out) const {
  std::vector<std::pair<std::string_view, std::vector<ConnId>>> locks;
  table_.for_each(kind, [&](std::string_view name, const std::vector<ConnId>& holders) {
    if (only.empty() || only == name) locks.emplace_back(name, holders);
  });
  std::sort(locks.begin(), locks.end());
  for (const auto& [name, holders] : locks) {
    for (ConnId conn : holders) {
      out.append(name);
      out.append(": ");
      holder_name(conn, out);
      out.push_back('\n');
    }
  }
}

void Protocol::dump_map(LockKind kind, std::string& out) const {
  std::vector<std::pair<std::string_view, std::vector<ConnId>>> locks;
  table_.for_each(kind, [&](std::string_view name, const std::vector<ConnId>& holders) {
    locks.emplace_back(name, holders);
  });
  std::sort(locks.begin(), locks.end());
  // Go's %v of a map: keys sorted, "key:value" separated by spaces.
  out.append("map[");
  bool first = true;
  for (const auto& [name, holders] : locks) {
    if (!first) out.push_back(' ');
    first = false;
    out.append(name);
    out.push_back(':');
    if (kind == LockKind::Shared) out.push_back('[');
    for (std::size_t i = 0; i < holders.size(); ++i) {
      if (i) out.push_back(' ');
      out.append(addr(holders[i]));
    }
    if (kind == LockKind::Shared) out.push_back(']');
  }
  out.append("]\n");
}

void Protocol::who(std::string_view only, std::string& out) const {
  registry_.for_each([&](ConnId conn, const std::string& name) {
    if (!only.empty() && only != name) return;
    out.append(addr(conn));
    out.append(": ");
    out.append(name);
    out.push_back('\n');
  });
}

void Protocol::answer_stats(std::size_t connections, std::string& out) {
  auto line = [&](std::string_view key, std::uint64_t value) {
    out.append(key);
    out.append(": ");
    append_decimal(out, value);
    out.push_back('\n');
  };
  // Keys sorted bytewise; command_* come first and are already in order.
  for (std::size_t i = 0; i < static_cast<std::size_t>(Command::t); ++i) {
    out.append("command_");
    line(command_name(static_cast<Command>(i)), stats_.commands[i]);
  }
  line("connections", connections);
  line("invalid_commands", stats_.invalid_commands);
  line("locks", table_.exclusive_locks());
  line("orphans", stats_.orphans);
  line("shared_locks", table_.shared_locks());
  line("shared_orphans", stats_.shared_orphans);
}

}  // namespace glockd
