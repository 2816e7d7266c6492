// The client's typed calls: one per request of docs/PROTOCOL.md, each
// answer parsed into the call's type (the link is in client_link.cpp).
#include "client/client.hpp"
#include "client/text.hpp"

namespace glockd::client {

using std::chrono::milliseconds;

namespace {

// "N rest": the number and what follows the space.
std::optional<std::pair<std::uint64_t, std::string_view>> number_and_rest(std::string_view line) {
  const auto space = line.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  auto n = parse_u64(line.substr(0, space));
  if (!n) return std::nullopt;
  return std::pair{*n, line.substr(space + 1)};
}

}  // namespace

const char* errc_name(Errc code) {
  switch (code) {
    case Errc::Usage: return "usage";
    case Errc::Address: return "address";
    case Errc::Connect: return "connect";
    case Errc::Certificate: return "certificate";
    case Errc::Io: return "io";
    case Errc::Closed: return "closed";
    case Errc::Timeout: return "timeout";
    case Errc::Protocol: return "protocol";
    case Errc::Disabled: return "disabled";
    case Errc::BadRequest: return "bad request";
  }
  return "?";
}

Result<bool> Client::yes_no(std::string request, std::string_view yes, std::string_view no,
                            milliseconds extra) {
  auto line = call(request, extra);
  if (!line) return line.error();
  if (starts_with(*line, yes)) return true;
  if (starts_with(*line, no)) return false;
  if (starts_with(*line, "0 Bad Request: ")) return refused(request, *line);
  if (*line == "0 disabled") return Error{Errc::Disabled, "'" + request + "' is disabled on glockd at " + address_.text()};
  return broken(Errc::Protocol, unexpected(request, *line).message);
}

Result<std::uint64_t> Client::counted(std::string request, std::string_view ok_text,
                                      std::string_view fail_text, milliseconds extra) {
  auto line = call(request, extra);
  if (!line) return line.error();
  if (starts_with(*line, "0 Bad Request: ")) return refused(request, *line);
  if (auto nr = number_and_rest(*line)) {
    const auto [n, rest] = *nr;
    if (n > 0 && starts_with(rest, ok_text)) return n;
    if (n == 0 && starts_with(rest, fail_text)) return std::uint64_t{0};
  }
  return broken(Errc::Protocol, unexpected(request, *line).message);
}

// --- exclusive locks -------------------------------------------------------

Result<bool> Client::get(std::string_view name) {
  if (auto c = check_name(name, "a lock name"); !c) return c.error();
  return yes_no("g " + std::string(name), "1 Lock Get Success: ", "0 Lock Get Failure: ");
}

Result<bool> Client::release(std::string_view name) {
  if (auto c = check_name(name, "a lock name"); !c) return c.error();
  return yes_no("r " + std::string(name), "1 Lock Release Success: ", "0 Lock Release Failure: ");
}

Result<bool> Client::is_locked(std::string_view name) {
  if (auto c = check_name(name, "a lock name"); !c) return c.error();
  return yes_no("i " + std::string(name), "1 Lock Is Locked: ", "0 Lock Not Locked: ");
}

Result<bool> Client::wait(std::uint32_t ms, std::string_view name) {
  if (auto c = check_name(name, "a lock name"); !c) return c.error();
  if (ms > kMaxWaitMs) return Error{Errc::Usage, "a wait is at most 2147483647 ms"};
  return yes_no("w " + std::to_string(ms) + " " + std::string(name), "1 Lock Get Success: ",
                "0 Lock Get Failure: ", milliseconds(ms));
}

// --- shared locks ----------------------------------------------------------

Result<std::uint64_t> Client::shared_get(std::string_view name) {
  if (auto c = check_name(name, "a lock name"); !c) return c.error();
  return counted("sg " + std::string(name), "Shared Lock Get Success: ",
                 "Shared Lock Get Failure: ");
}

Result<bool> Client::shared_release(std::string_view name) {
  if (auto c = check_name(name, "a lock name"); !c) return c.error();
  return yes_no("sr " + std::string(name), "1 Shared Lock Release Success: ",
                "0 Shared Lock Release Failure: ");
}

Result<std::uint64_t> Client::shared_count(std::string_view name) {
  if (auto c = check_name(name, "a lock name"); !c) return c.error();
  return counted("si " + std::string(name), "Shared Lock Is Locked: ", "Shared Lock Not Locked: ");
}

Result<std::uint64_t> Client::shared_wait(std::uint32_t limit, std::uint32_t ms,
                                          std::string_view name) {
  if (auto c = check_name(name, "a lock name"); !c) return c.error();
  if (ms > kMaxWaitMs) return Error{Errc::Usage, "a wait is at most 2147483647 ms"};
  if (limit == 0) return Error{Errc::Usage, "a semaphore's limit must be at least 1"};
  return counted("sw " + std::to_string(limit) + " " + std::to_string(ms) + " " +
                     std::string(name),
                 "Shared Lock Get Success: ", "Shared Lock Get Failure: ", milliseconds(ms));
}

// --- inspection ------------------------------------------------------------

namespace {

Result<std::vector<Holder>> parse_holders(std::vector<std::string> lines, const std::string& request,
                                          const Address& address) {
  if (lines.size() == 1 && lines[0] == "0 disabled") {
    return Error{Errc::Disabled, "inspection ('" + request + "') is disabled on glockd at " +
                                     address.text() + " (it runs with --dump=false)"};
  }
  std::vector<Holder> out;
  out.reserve(lines.size());
  for (auto& line : lines) {
    // The holder is an address or a registered name; an address never
    // contains ": ", so the last one separates (see glock locks for names).
    const auto sep = line.rfind(": ");
    if (sep == std::string::npos) {
      return Error{Errc::Protocol, "unexpected line in the answer to '" + request + "': '" +
                                       printable(line, 200) + "'"};
    }
    out.push_back(Holder{line.substr(0, sep), line.substr(sep + 2)});
  }
  return out;
}

}  // namespace

Result<std::vector<Holder>> Client::holders(std::optional<std::string_view> name) {
  return inspect("d", name);
}

Result<std::vector<Holder>> Client::shared_holders(std::optional<std::string_view> name) {
  return inspect("sd", name);
}

Result<std::vector<Holder>> Client::inspect(std::string_view command,
                                            std::optional<std::string_view> name) {
  if (name) {
    if (auto c = check_name(*name, "a lock name"); !c) return c.error();
  }
  const std::string request = std::string(command) + (name ? " " + std::string(*name) : "");
  auto lines = call_lines(request);
  if (!lines) return lines.error();
  return parse_holders(std::move(*lines), request, address_);
}

Result<std::string> Client::dump() { return map_line("dump"); }

Result<std::string> Client::dump_shared() { return map_line("dump shared"); }

Result<std::string> Client::map_line(std::string request) {
  auto line = call(request);
  if (!line) return line.error();
  if (*line == "0 disabled") {
    return Error{Errc::Disabled, "'dump' is disabled on glockd at " + address_.text() +
                                     " (it runs with --dump=false)"};
  }
  if (!starts_with(*line, "map[")) return broken(Errc::Protocol, unexpected(request, *line).message);
  return line;
}

// --- registry --------------------------------------------------------------

Result<Identity> Client::me() {
  auto line = call("me");
  if (!line) return line.error();
  if (starts_with(*line, "1 ")) {
    const std::string_view rest = std::string_view(*line).substr(2);
    const auto space = rest.find(' ');
    if (space != std::string_view::npos) {
      return Identity{std::string(rest.substr(0, space)), std::string(rest.substr(space + 1))};
    }
  }
  return broken(Errc::Protocol, unexpected("me", *line).message);
}

Result<Done> Client::iam(std::string_view name) {
  if (auto c = check_name(name, "a client name"); !c) return c.error();
  const std::string request = name.empty() ? "iam" : "iam " + std::string(name);
  auto line = call(request);
  if (!line) return line.error();
  if (*line == "1 ok") return Done{};
  if (*line == "0 disabled") {
    return Error{Errc::Disabled, "the registry is disabled on glockd at " + address_.text() +
                                     " (it runs with --registry=false)"};
  }
  if (starts_with(*line, "0 Bad Request: ")) return refused(request, *line);
  return broken(Errc::Protocol, unexpected(request, *line).message);
}

Result<std::vector<Registration>> Client::who(std::optional<std::string_view> name) {
  if (name) {
    if (auto c = check_name(*name, "a client name"); !c) return c.error();
  }
  const std::string request = name ? "who " + std::string(*name) : "who";
  auto lines = call_lines(request);
  if (!lines) return lines.error();
  if (lines->size() == 1 && (*lines)[0] == "0 disabled") {
    return Error{Errc::Disabled, "'who' is disabled on glockd at " + address_.text() +
                                     " (it needs both --dump and --registry)"};
  }
  std::vector<Registration> out;
  for (auto& line : *lines) {
    const auto sep = line.find(": ");  // an address never contains ": "
    if (sep == std::string::npos) {
      return Error{Errc::Protocol, "unexpected line in the answer to 'who': '" +
                                       printable(line, 200) + "'"};
    }
    out.push_back(Registration{line.substr(0, sep), line.substr(sep + 2)});
  }
  return out;
}

Result<std::vector<Stat>> Client::stats() {
  auto lines = call_lines("q");
  if (!lines) return lines.error();
  std::vector<Stat> out;
  for (auto& line : *lines) {
    const auto sep = line.find(": ");
    std::optional<std::uint64_t> v;
    if (sep != std::string::npos) v = parse_u64(std::string_view(line).substr(sep + 2));
    if (!v) return Error{Errc::Protocol, "unexpected line in the answer to 'q': '" + printable(line, 200) + "'"};
    out.push_back(Stat{line.substr(0, sep), *v});
  }
  return out;
}

// --- Part 2 ----------------------------------------------------------------

Result<std::uint64_t> Client::token(std::string_view name) {
  if (auto c = check_name(name, "a lock name"); !c) return c.error();
  return counted("t " + std::string(name), "Lock Token: ", "Lock Token Failure: ");
}

namespace {

std::optional<Released> parse_released(std::string_view rest) {
  const auto space = rest.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  auto e = parse_u64(rest.substr(0, space));
  auto s = parse_u64(rest.substr(space + 1));
  if (!e || !s) return std::nullopt;
  return Released{*e, *s};
}

}  // namespace

Result<Released> Client::release_all() {
  auto line = call("ra");
  if (!line) return line.error();
  constexpr std::string_view ok = "1 Release All Success: ";
  if (starts_with(*line, ok)) {
    if (auto r = parse_released(std::string_view(*line).substr(ok.size()))) return *r;
  }
  return broken(Errc::Protocol, unexpected("ra", *line).message);
}

Result<std::uint32_t> Client::grace(std::uint32_t ms) {
  const std::string request = "grace " + std::to_string(ms);
  auto line = call(request);
  if (!line) return line.error();
  constexpr std::string_view ok = "1 Grace Set: ";
  if (starts_with(*line, ok)) {
    if (auto v = parse_u64(std::string_view(*line).substr(ok.size())); v && *v <= kMaxWaitMs) {
      return static_cast<std::uint32_t>(*v);
    }
  }
  if (starts_with(*line, "0 Bad Request: ")) return refused(request, *line);
  return broken(Errc::Protocol, unexpected(request, *line).message);
}

Result<std::string> Client::session() {
  auto line = call("session");
  if (!line) return line.error();
  constexpr std::string_view ok = "1 Session: ";
  if (starts_with(*line, ok) && line->size() > ok.size()) return line->substr(ok.size());
  if (starts_with(*line, "0 Bad Request: ")) return refused("session", *line);
  return broken(Errc::Protocol, unexpected("session", *line).message);
}

Result<std::optional<Released>> Client::resume(std::string_view token) {
  if (token.empty() || token.find_first_of(" \t\r\n") != std::string_view::npos) {
    return Error{Errc::Usage, "a session token is one word"};
  }
  const std::string request = "resume " + std::string(token);
  auto line = call(request);
  if (!line) return line.error();
  constexpr std::string_view ok = "1 Resume Success: ";
  if (starts_with(*line, ok)) {
    if (auto r = parse_released(std::string_view(*line).substr(ok.size()))) {
      return std::optional<Released>(*r);
    }
  }
  if (*line == "0 Resume Failure") return std::optional<Released>();
  if (starts_with(*line, "0 Bad Request: ")) return refused(request, *line);
  return broken(Errc::Protocol, unexpected(request, *line).message);
}

}  // namespace glockd::client
